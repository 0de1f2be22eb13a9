"""Defaults that could quietly hurt (#12): masked on pruned models, validation never on the test split,
--no-eval measures nothing, a stopped run leaves no scratch folder."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import secateur
from helpers.tiny import tiny_model
from secateur.cli.main import main
from secateur.config import PruneConfig
from secateur.data.sources import resolve_source
from secateur.data.tokens import eval_stream, eval_windows
from secateur.errors import SecateurError
from secateur.recovery import finetune as module
from secateur.recovery.config import FinetuneConfig, FinetuneRecipe
from secateur.recovery.finetune import finetune, hold_out, training_windows, validation_size
from secateur.scratch import remove_stale, scratch_dir

FEW = dict(seqlen=32, max_steps=2, learning_rate=3e-3, batch_size=4, grad_accum=1, logging_steps=1)


def _pruned(token_windows):
    model = tiny_model()
    windows = token_windows(4, 32)
    secateur.prune(model, PruneConfig(method="wanda", pattern="2:4"), windows, show_progress=False)
    return model


def _revived(model, before):
    params = dict(model.named_parameters())
    return sum(int((params[n][zero] != 0).sum()) for n, zero in before.items())


def test_a_mask_pruned_model_is_fine_tuned_masked_by_default(tokenizer, corpus, token_windows):
    model = _pruned(token_windows)
    zeros = {n: (p == 0).clone() for n, p in model.named_parameters() if "layers" in n and (p == 0).any()}
    result = finetune(model, tokenizer, FinetuneConfig(**FEW), dataset=str(corpus), show_progress=False)
    assert result.masked.startswith("auto: 50.0% of decoder weights")
    assert result.masked_weights == sum(int(z.sum()) for z in zeros.values()) and _revived(model, zeros) == 0
    explicit = _pruned(token_windows)
    result = finetune(
        explicit, tokenizer, FinetuneConfig(masked=False, **FEW), dataset=str(corpus), show_progress=False
    )
    assert result.masked.startswith("off: --no-masked (50.0% of decoder weights were zero")
    assert result.masked_weights == 0 and _revived(explicit, zeros) > 0
    dense = finetune(tiny_model(), tokenizer, FinetuneConfig(**FEW), dataset=str(corpus), show_progress=False)
    assert dense.masked.startswith("off: auto, the model is dense")


def test_validation_is_held_out_of_the_train_split_never_the_test_split(tokenizer, corpus, monkeypatch):
    seen = {}
    real = module.train_model

    def spy(model, config, train, evaluation, **kwargs):
        seen["train"], seen["validation"] = train.windows, evaluation.windows
        return real(model, config, train, evaluation, **kwargs)

    monkeypatch.setattr(module, "train_model", spy)
    result = finetune(
        tiny_model(), tokenizer, FinetuneConfig(**FEW, eval_steps=1), dataset=str(corpus), show_progress=False
    )
    every = training_windows(tokenizer, str(corpus), 32, None, 0)
    test = eval_windows(eval_stream(tokenizer, resolve_source(str(corpus))), 32, None)
    rows = {tuple(w.tolist()) for w in every}
    held = {tuple(w.tolist()) for w in seen["validation"]}
    trained = {tuple(w.tolist()) for w in seen["train"]}
    assert held and held <= rows and not held & trained and held | trained == rows
    assert not held & {tuple(w.tolist()) for w in test}
    assert len(held) == validation_size(len(every), None) == result.validation_windows
    assert result.eval_losses and result.eval_split.startswith("validation")


def test_hold_out_is_seeded_and_sized():
    windows = torch.arange(100).reshape(50, 2)
    a_train, a_val = hold_out(windows, 5, seed=3)
    b_train, b_val = hold_out(windows, 5, seed=3)
    assert torch.equal(a_val, b_val) and torch.equal(a_train, b_train) and a_val.shape == (5, 2)
    assert not torch.equal(hold_out(windows, 5, seed=4)[1], a_val)
    assert (
        validation_size(1000, None) == 50
        and validation_size(10, None) == 1
        and validation_size(10**6, None) == 2000
    )
    with pytest.raises(SecateurError, match="leaves nothing to train on"):
        validation_size(4, 4)


def test_no_eval_runs_no_validation_pass_and_says_so(saved_llama, corpus, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr("transformers.Trainer.evaluate", lambda self, *a, **k: calls.append(1) or {})
    out = tmp_path / "tuned"
    args = ["finetune", "--model", str(saved_llama), "--dataset", str(corpus), "--train-seqlen", "32"]
    assert main([*args, "--max-steps", "2", "--no-eval", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert calls == [] and "validation" in printed and "none (--no-eval" in printed
    assert (
        main([*args, "--max-steps", "2", "--no-eval", "--val-set-size", "3", "--out", str(tmp_path / "x")])
        == 2
    )
    assert "--val-set-size is not used here: --no-eval" in capsys.readouterr().err


def test_recipe_refuses_no_eval_with_eval_steps():
    with pytest.raises(SecateurError, match="--eval-steps is not used here"):
        FinetuneRecipe(
            finetune=FinetuneConfig(eval_steps=3), evaluation=secateur.config.EvalConfig(enabled=False)
        )


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_scratch_folders_of_dead_processes_are_removed(tmp_path):
    stale = tmp_path / f".secateur-train-{_dead_pid()}-0badcafe"
    stale.mkdir()
    (stale / "checkpoint-1").mkdir()
    live = tmp_path / f".secateur-train-{os.getppid()}-12345678"
    live.mkdir()
    fresh = scratch_dir(tmp_path)
    assert (
        not stale.exists()
        and live.exists()
        and fresh.is_dir()
        and fresh.name.startswith(f".secateur-train-{os.getpid()}-")
    )
    assert remove_stale(tmp_path, ".secateur-train-") == []


def test_sigterm_during_finetune_leaves_no_scratch_and_no_output(saved_llama, corpus, tmp_path):
    out = tmp_path / "tuned"
    command = [
        sys.executable,
        "-m",
        "secateur",
        "finetune",
        "--model",
        str(saved_llama),
        "--dataset",
        str(corpus),
    ]
    command += ["--train-seqlen", "32", "--max-steps", "100000", "--no-eval", "--out", str(out), "--quiet"]
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".secateur-train-*")) and time.time() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.glob(".secateur-train-*")), "training never started"
    time.sleep(1.0)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143 and "terminated" in err.strip().splitlines()[-1]
    assert not list(tmp_path.glob(".secateur-train-*")) and not out.exists()
