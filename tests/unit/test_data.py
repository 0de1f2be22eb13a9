import json
import os

import pytest
import torch

from secateur.data.local import LocalText
from secateur.data.sources import resolve_source, split_documents
from secateur.data.tokens import calibration_stream, eval_stream, eval_windows, sample_windows, tokenize
from secateur.errors import SecateurError


def test_split_is_three_quarters_then_one_quarter():
    docs = [str(i) for i in range(8)]
    assert split_documents(docs, "train") == docs[:6]
    assert split_documents(docs, "test") == docs[6:]


def test_txt_jsonl_and_folder_sources(tmp_path, tokenizer):
    txt = tmp_path / "a.txt"
    txt.write_text("one\n\ntwo\n\n\nthree\n\nfour\n")
    assert LocalText(txt).documents("train") == ["one", "two", "three"]
    assert LocalText(txt).documents("test") == ["four"]
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t}) for t in "abcd") + "\n")
    assert resolve_source(str(jsonl)).documents("test") == ["d"]
    folder = tmp_path / "split"
    folder.mkdir()
    (folder / "train.txt").write_text("alpha\n\nbeta")
    (folder / "test.jsonl").write_text(json.dumps({"text": "gamma"}))
    source = resolve_source(str(folder))
    assert source.documents("train") == ["alpha", "beta"]
    assert source.documents("test") == ["gamma"]


def test_bad_local_sources(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "x"}\n{"body": "y"}\n')
    with pytest.raises(SecateurError, match=r"bad\.jsonl:2 has no string field 'text'"):
        resolve_source(str(tmp_path / "bad.jsonl")).documents("train")
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    with pytest.raises(SecateurError, match="no text"):
        resolve_source(str(tmp_path / "empty.txt")).documents("train")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(SecateurError, match="unsupported file type"):
        resolve_source(str(tmp_path / "x.csv"))
    with pytest.raises(SecateurError, match="does not exist"):
        resolve_source(str(tmp_path / "missing.txt"))
    with pytest.raises(SecateurError, match="unknown dataset 'nope'"):
        resolve_source("nope")


def test_windows_are_reproducible_and_inside_the_stream(corpus, tokenizer):
    source = resolve_source(str(corpus))
    stream = calibration_stream(tokenizer, source, needed_tokens=8 * 32, seed=0)
    a = sample_windows(stream, 8, 32, seed=3)
    b = sample_windows(stream, 8, 32, seed=3)
    c = sample_windows(stream, 8, 32, seed=4)
    assert a.shape == (8, 32) and a.dtype == torch.long
    assert torch.equal(a, b) and not torch.equal(a, c)
    joined = stream.tolist()
    for row in a.tolist():  # every window is a contiguous slice of the stream
        starts = [i for i in range(len(joined) - 31) if joined[i : i + 32] == row]
        assert starts


def test_windows_longer_than_the_corpus_are_an_error(tokenizer):
    stream = tokenize(tokenizer, "short text")
    with pytest.raises(SecateurError, match="exceeds the calibration text"):
        sample_windows(stream, 2, 64, seed=0)
    with pytest.raises(SecateurError, match="fewer than --seqlen 64"):
        eval_windows(stream, 64)


def test_eval_windows_are_non_overlapping_from_the_start(corpus, tokenizer):
    stream = eval_stream(tokenizer, resolve_source(str(corpus)))
    windows = eval_windows(stream, 100)
    assert windows.shape == (stream.numel() // 100, 100)
    assert torch.equal(windows.flatten(), stream[: windows.numel()])
    assert eval_windows(stream, 100, max_windows=2).shape == (2, 100)


def test_large_train_split_is_subsampled_reproducibly(tokenizer):
    class Big:
        name, joiner = "big", "\n\n"

        def documents(self, split):
            return [f"document number {i} " * 20 for i in range(2000)]

    a = calibration_stream(tokenizer, Big(), needed_tokens=100, seed=1)
    b = calibration_stream(tokenizer, Big(), needed_tokens=100, seed=1)
    assert torch.equal(a, b)
    assert 8 * 100 * 4 <= a.numel() < 2000 * 300  # about the budget, not everything


def test_hub_dataset_offline_fails_with_one_line():
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"
    with pytest.raises(SecateurError) as info:
        resolve_source("wikitext2").documents("test")
    message = str(info.value)
    assert "\n" not in message and "local .txt/.jsonl" in message and "Salesforce/wikitext" in message
