"""Masked fine-tuning: pruned weights stay exactly zero after every step, loss falls, failures are loud."""

import json

import pytest
import torch
from transformers import TrainerCallback

import secateur
from helpers.cli import prune_args
from helpers.tiny import tiny_model
from secateur.cli.main import main
from secateur.config import PruneConfig
from secateur.errors import VerificationError
from secateur.models.adapter import ModelAdapter
from secateur.recovery.config import FinetuneConfig
from secateur.recovery.finetune import finetune

STEPS = dict(
    seqlen=32, max_steps=8, learning_rate=3e-3, batch_size=4, grad_accum=1, logging_steps=1, eval_steps=4
)


def _pruned(token_windows):
    model = tiny_model()
    windows = token_windows(4, 32)
    secateur.prune(model, PruneConfig(method="wanda", pattern="2:4"), windows, show_progress=False)
    zeros = {name: (p == 0).clone() for name, p in model.named_parameters() if (p == 0).any()}
    return model, zeros


class WatchZeros(TrainerCallback):
    """After every optimizer step (and the masks' re-application), count revived pruned weights."""

    def __init__(self, model, zeros):
        self.params = dict(model.named_parameters())
        self.zeros = zeros
        self.revived_per_step = []

    def on_step_end(self, args, state, control, **kwargs):
        self.revived_per_step.append(sum(int((self.params[n][z] != 0).sum()) for n, z in self.zeros.items()))


def test_masked_finetuning_keeps_every_pruned_weight_zero_while_loss_falls(tokenizer, corpus, token_windows):
    model, zeros = _pruned(token_windows)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    watch = WatchZeros(model, zeros)
    result = finetune(
        model,
        tokenizer,
        FinetuneConfig(masked=True, **STEPS),
        dataset=str(corpus),
        show_progress=False,
        callbacks=(watch,),
    )
    assert result.steps == 8 and watch.revived_per_step == [0] * 8
    assert result.masked_weights == sum(int(z.sum()) for z in zeros.values()) > 0
    assert result.last_loss < result.first_loss
    assert [step for step, _ in result.eval_losses] == [4, 8]
    assert result.best_eval_loss == min(loss for _, loss in result.eval_losses)
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any("q_proj" in n for n in moved)  # kept weights did train


def test_without_masks_the_same_run_revives_pruned_weights(tokenizer, corpus, token_windows):
    model, zeros = _pruned(token_windows)
    watch = WatchZeros(model, zeros)
    finetune(
        model,
        tokenizer,
        FinetuneConfig(masked=False, **STEPS),
        dataset=str(corpus),
        show_progress=False,
        callbacks=(watch,),
    )
    assert watch.revived_per_step[-1] > 0  # so the masked test above could have failed


class Saboteur(TrainerCallback):
    """Revives one pruned weight after the masks were applied: the final check must catch it."""

    def __init__(self, weight):
        self.weight = weight

    def on_optimizer_step(self, args, state, control, **kwargs):
        with torch.no_grad():
            self.weight.view(-1)[(self.weight.view(-1) == 0).nonzero()[0]] = 1.0


def test_a_revived_weight_fails_loudly(tokenizer, corpus, token_windows):
    model, _ = _pruned(token_windows)
    weight = ModelAdapter(model).linears(ModelAdapter(model).decoder_layers()[1])["up"].weight
    with pytest.raises(VerificationError, match="revived"):
        finetune(
            model,
            tokenizer,
            FinetuneConfig(masked=True, **{**STEPS, "max_steps": 2}),
            dataset=str(corpus),
            show_progress=False,
            callbacks=(Saboteur(weight),),
        )


def test_cli_finetune_masked_writes_a_checkpoint_whose_zeros_survive_reload(
    saved_llama, corpus, tmp_path, capsys
):
    from transformers import AutoModelForCausalLM

    pruned = tmp_path / "pruned"
    args = prune_args(saved_llama, corpus)
    assert main([*args, "--pattern", "2:4", "--no-eval", "--out", str(pruned), "--quiet"]) == 0
    out = tmp_path / "tuned"
    args = ["finetune", "--model", str(pruned), "--dataset", str(corpus), "--masked", "--train-seqlen", "32"]
    args += ["--max-steps", "4", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2"]
    args += [
        "--learning_rate",
        "1e-3",
        "--gradient-checkpointing",
        "--eval-windows",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "(verified)" in printed and "perplexity after" in printed
    manifest = json.loads((out / "secateur.json").read_text())
    assert manifest["finetune"]["steps"] == 4
    assert manifest["finetune_recipe"]["finetune"]["grad_accum"] == 2
    start = AutoModelForCausalLM.from_pretrained(pruned)
    tuned = AutoModelForCausalLM.from_pretrained(out)
    for (name, p0), (_, p1) in zip(start.named_parameters(), tuned.named_parameters(), strict=True):
        if "layers" in name and p0.dim() == 2:
            assert torch.equal(p1[p0 == 0], torch.zeros_like(p1[p0 == 0])), name
    assert not list(tmp_path.glob(".secateur-train-*"))  # the Trainer's scratch is gone
    assert main(args) == 2  # the output exists now: refused without --overwrite
