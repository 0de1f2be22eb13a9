import json

import pytest
import torch

from helpers.tiny import tiny_model, tiny_tokenizer
from secateur import api
from secateur.config import PruneConfig
from secateur.errors import SecateurError
from secateur.export.save import atomic_output_dir


def test_save_reload_gives_the_same_logits_and_masks(tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_model("qwen2")
    windows = torch.randint(0, 256, (4, 16), generator=torch.Generator().manual_seed(0))
    api.prune(model, PruneConfig(pattern="2:4"), windows, show_progress=False)
    out = api.save_pruned(model, tiny_tokenizer(), tmp_path / "out", {"hello": 1})
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert json.loads((out / "secateur.json").read_text()) == {"hello": 1}
    assert not list(tmp_path.glob(".out*"))  # no temporary left behind
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(windows).logits, model(windows).logits, rtol=0, atol=0)
    for (name, a), (_, b) in zip(model.named_parameters(), reloaded.named_parameters(), strict=False):
        assert torch.equal(a == 0, b == 0), name


def test_existing_output_needs_overwrite_and_is_replaced_atomically(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(SecateurError, match="already exists: pass --overwrite"):
        api.save_pruned(tiny_model(), None, out)
    assert (out / "old.txt").read_text() == "keep me"
    with pytest.raises(RuntimeError), atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("crash while writing")
    assert (out / "old.txt").is_file() and not (out / "half").exists()  # the old output survives a crash
    api.save_pruned(tiny_model(), None, out, {}, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "config.json").is_file()


def test_unwritable_output_is_refused_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os

        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(SecateurError, match="not writable"):
            api.save_pruned(tiny_model(), None, locked / "out")
    finally:
        locked.chmod(0o700)
