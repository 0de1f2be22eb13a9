"""Progressive three-tier runs on a tiny model: outputs per iteration, one-way tiers, resume after a crash."""

import json

import pytest
import torch

from secateur.cli.main import main
from secateur.export.tier_maps import TIER_MAPS, load_tier_maps
from secateur.patterns.tiered import tier_counts
from secateur.runs import progressive

SCHEDULE = (
    "iteration,dense,mid_2_4,topk,dense_to_2_4,epochs\n"
    "1,0.75,0.25,0,0.25,1\n2,0.5,0.25,0.25,0.25,1\n3,0.25,0.5,0.25,0.25,0\n"
)


def _args(model, corpus, schedule, out, *extra):
    return [
        "progressive", "--model", str(model), "--schedule", str(schedule), "--out", str(out),
        "--dataset", str(corpus), "--nsamples", "4", "--seqlen", "32", "--eval-windows", "2",
        "--train-seqlen", "32", "--max-steps", "2", "--train-batch-size", "2", "--grad-accum", "1",
        "--learning-rate", "1e-3", "--block-size", "16", "--topk", "6", "--quiet", *extra,
    ]  # fmt: skip


@pytest.fixture
def schedule(tmp_path):
    path = tmp_path / "schedule.csv"
    path.write_text(SCHEDULE)
    return path


def test_every_iteration_writes_its_outputs_and_tiers_only_move_down(
    saved_llama, corpus, schedule, tmp_path, capsys
):
    out = tmp_path / "run"
    assert main(_args(saved_llama, corpus, schedule, out)) == 0
    printed = capsys.readouterr().out
    assert "ppl finetuned" in printed and "dense perplexity" in printed
    previous = None
    for k, shares in ((1, (0.75, 0.25, 0)), (2, (0.5, 0.25, 0.25)), (3, (0.25, 0.5, 0.25))):
        folder = out / f"iter{k}"
        for item in ("pruned_model", "finetuned_model", TIER_MAPS, "log.json", "tier_maps.png"):
            assert (folder / item).exists(), f"iter{k}/{item}"
        maps, _ = load_tier_maps(folder / TIER_MAPS)
        for name, tiers in maps.items():
            counts = tuple(int((tiers == code).sum()) for code in range(3))
            assert counts == tier_counts(tiers.numel(), shares), name
            if previous is not None:
                assert (tiers >= previous[name]).all(), f"{name} moved up a tier at iteration {k}"
        previous = maps
        log = json.loads((folder / "log.json").read_text())
        assert log["tiers"] == pytest.approx(
            dict(zip(("dense", "nm", "topk"), shares, strict=True)), abs=0.05
        )
        assert log["finetune"]["steps"] == (0 if k == 3 else 2)
        assert log["perplexity"]["pruned"] > 1
    # epochs 0: the fine-tuned model is the pruned one.
    from safetensors.torch import load_file

    pruned = load_file(out / "iter3/pruned_model/model.safetensors")
    tuned = load_file(out / "iter3/finetuned_model/model.safetensors")
    assert all(torch.equal(pruned[k], tuned[k]) for k in pruned)
    assert main(_args(saved_llama, corpus, schedule, out)) == 2  # exists: needs --resume or --overwrite


def test_resume_after_a_crash_redoes_only_the_unfinished_iteration(
    saved_llama, corpus, schedule, tmp_path, monkeypatch, capsys
):
    reference = tmp_path / "reference"
    assert main(_args(saved_llama, corpus, schedule, reference)) == 0

    out = tmp_path / "run"
    real = progressive.finetune
    calls = []

    def crash_in_iteration_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the machine goes away mid-iteration
        return real(*args, **kwargs)

    monkeypatch.setattr(progressive, "finetune", crash_in_iteration_two)
    assert main(_args(saved_llama, corpus, schedule, out)) == 130
    assert (out / "iter1/log.json").exists() and not (out / "iter2/log.json").exists()
    first_log = (out / "iter1/log.json").read_text()
    monkeypatch.setattr(progressive, "finetune", real)

    assert main(_args(saved_llama, corpus, schedule, out, "--resume")) == 0
    assert "resumed after 1 completed iteration" in capsys.readouterr().out
    assert (out / "iter1/log.json").read_text() == first_log  # the completed iteration was not redone
    for k in (2, 3):
        ours, _ = load_tier_maps(out / f"iter{k}" / TIER_MAPS)
        theirs, _ = load_tier_maps(reference / f"iter{k}" / TIER_MAPS)
        assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    assert main(_args(saved_llama, corpus, schedule, out, "--resume")) == 0  # all done: nothing to redo


def test_a_broken_schedule_fails_before_any_work(saved_llama, corpus, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("iteration,dense,mid_2_4,topk,epochs\n1,0.8,0.2,0,1\n2,0.9,0.1,0,1\n")
    out = tmp_path / "run"
    assert main(_args(saved_llama, corpus, bad, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("secateur: error: bad.csv line 3 (iteration 2): dense rises")
    assert not out.exists()


def test_resume_refuses_a_different_schedule(saved_llama, corpus, schedule, tmp_path, capsys):
    out = tmp_path / "run"
    one = tmp_path / "one.csv"
    one.write_text("iteration,dense,mid_2_4,topk,epochs\n1,0.75,0.25,0,0\n")
    assert main(_args(saved_llama, corpus, one, out)) == 0
    other = tmp_path / "other.csv"
    other.write_text("iteration,dense,mid_2_4,topk,epochs\n1,0.5,0.5,0,0\n2,0.25,0.5,0.25,0\n")
    assert main(_args(saved_llama, corpus, other, out, "--resume")) == 2
    assert "differs from the one" in capsys.readouterr().err
