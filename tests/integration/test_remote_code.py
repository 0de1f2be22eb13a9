"""--trust-remote-code: an architecture whose code ships with the checkpoint, pruned by a mask method
from what its modules show (models.discovery), compared with the same weights as a known family."""

import json

import pytest
import torch

from helpers.cli import assert_refused, prune_args
from helpers.tiny import save_tiny

# A family secateur has no row for: LLaMA's modules under another model_type, as remote code.
MODELING = """
from transformers import LlamaConfig, LlamaForCausalLM


class TinyRemoteConfig(LlamaConfig):
    model_type = "tiny_remote"


class TinyRemoteForCausalLM(LlamaForCausalLM):
    config_class = TinyRemoteConfig
"""


def _remote(folder):
    save_tiny(folder, "llama")
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="tiny_remote",
        architectures=["TinyRemoteForCausalLM"],
        auto_map={
            "AutoConfig": "modeling_tiny.TinyRemoteConfig",
            "AutoModelForCausalLM": "modeling_tiny.TinyRemoteForCausalLM",
        },
    )
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_tiny.py").write_text(MODELING)
    return folder


def test_remote_code_is_pruned_like_the_known_family(corpus, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from secateur.cli.main import main

    remote = _remote(tmp_path / "remote")
    known = save_tiny(tmp_path / "known", "llama")  # the very same weights (seed 0)
    outs = {}
    for name, source, extra in (("remote", remote, ["--trust-remote-code"]), ("known", known, [])):
        outs[name] = tmp_path / f"out-{name}"
        args = prune_args(source, corpus, "--method", "sparsegpt", "--pattern", "2:4", "--no-eval")
        assert main([*args, "--out", str(outs[name]), "--quiet", *extra]) == 0
    ours, reference = (
        load_file(outs["remote"] / "model.safetensors"),
        load_file(outs["known"] / "model.safetensors"),
    )
    assert ours.keys() == reference.keys()
    for key in reference:
        assert torch.equal(ours[key], reference[key]), key
    reloaded = AutoModelForCausalLM.from_pretrained(outs["remote"], trust_remote_code=True)
    assert reloaded.config.model_type == "tiny_remote"


def test_remote_code_refusals(corpus, tmp_path, capsys):
    remote = _remote(tmp_path / "remote")
    out = tmp_path / "out"
    assert_refused(capsys, prune_args(remote, corpus, "--out", out), "--trust-remote-code", out=out)
    args = prune_args(remote, corpus, "--method", "structured", "--trust-remote-code", "--out", out)
    assert_refused(capsys, args, "comes with its own code: use magnitude, wanda or sparsegpt", out=out)


def test_discovery_says_what_it_could_not_find():
    from secateur.errors import SecateurError
    from secateur.models.discovery import discover_spec

    flat = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10))
    with pytest.raises(SecateurError, match="found no decoder layers"):
        discover_spec(flat, "flat")
