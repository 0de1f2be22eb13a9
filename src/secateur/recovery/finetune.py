"""Causal-LM fine-tuning with the Hugging Face Trainer, optionally keeping pruned weights at zero.

The Trainer brings what a home-made loop would not: accelerate underneath (so `accelerate launch`
or `torchrun` runs it on several GPUs), gradient accumulation, bf16 autocast, gradient
checkpointing, periodic evaluation and keeping the best checkpoint. Its checkpoints hold only the
model (safetensors) and live in a scratch folder that is removed at the end; the result is written
by secateur's own atomic save.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from secateur.data.sources import resolve_source
from secateur.data.tokens import calibration_stream, tokenize
from secateur.distributed import is_main
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.recovery.config import VAL_SET_MAX, FinetuneConfig
from secateur.recovery.masks import WeightMasks
from secateur.scratch import scratch_dir


@dataclass
class FinetuneResult:
    steps: int
    train_windows: int
    validation_windows: int  # held out of the train split; the eval losses below are on them
    masked_weights: int  # pruned weights held at zero (0 when not masked)
    first_loss: float | None
    last_loss: float | None
    eval_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss) as logged
    best_eval_loss: float | None = None
    seconds: float = 0.0
    bf16: bool = False
    masked: str = ""  # why the zeros were (not) held: "--masked", "auto: 50.0% zero", "--no-masked", ...
    eval_split: str = "validation (held out of the train split)"

    def to_dict(self) -> dict:
        return asdict(self)


class WindowDataset(torch.utils.data.Dataset):
    """(n, seqlen) token windows as causal-LM examples (labels = inputs; the model shifts them)."""

    def __init__(self, windows: torch.Tensor) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return self.windows.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.windows[index]
        return {"input_ids": ids, "labels": ids, "attention_mask": torch.ones_like(ids)}


def training_windows(tokenizer, dataset: str, seqlen: int, limit: int | None, seed: int) -> torch.Tensor:
    """Non-overlapping windows of the train split (the Trainer shuffles them each epoch)."""
    source = resolve_source(dataset)
    if limit is None:
        docs = source.documents("train")
        if not docs:
            raise SecateurError(f"dataset {dataset!r} has an empty train split; use another --train-dataset")
        stream = tokenize(tokenizer, source.joiner.join(docs))
    else:
        stream = calibration_stream(tokenizer, source, limit * seqlen, seed)
    count = stream.numel() // seqlen
    if count == 0:
        raise SecateurError(
            f"the training text {dataset!r} has {stream.numel()} tokens, fewer than --train-seqlen {seqlen}: "
            f"lower --train-seqlen or use more text"
        )
    count = min(count, limit) if limit else count
    return stream[: count * seqlen].reshape(count, seqlen)


def validation_size(count: int, requested: int | None) -> int:
    """How many of `count` training examples are held out: the request, else 5% (at least 1, at
    most VAL_SET_MAX), never so many that nothing is left to train on."""
    if requested is None:
        requested = min(VAL_SET_MAX, max(1, round(0.05 * count))) if count >= 2 else 0
    if requested >= count:
        raise SecateurError(
            f"--val-set-size {requested} leaves nothing to train on ({count} training examples): "
            "lower it or use more text"
        )
    return requested


def hold_out(windows: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation): `size` windows drawn with `seed`, the rest in their order."""
    order = torch.randperm(windows.shape[0], generator=torch.Generator().manual_seed(seed))
    held = torch.zeros(windows.shape[0], dtype=torch.bool)
    held[order[:size]] = True
    return windows[~held], windows[held]


MASK_AUTO_SHARE = 0.01  # at least this share of exact zeros in the decoder Linears: a mask-pruned model


def masking_decision(adapter: ModelAdapter, requested: bool | None) -> tuple[WeightMasks, str]:
    """The masks to hold and why: explicit --masked/--no-masked, else on when the model has pruned zeros."""
    masks = WeightMasks.from_zeros(adapter)
    total = sum(
        linear.weight.numel()
        for layer in adapter.decoder_layers()
        for linear in adapter.linears(layer).values()
    )
    share = masks.pruned / max(1, total)
    if requested is True:
        return masks, "--masked"
    if requested is False:
        note = f" ({share:.1%} of decoder weights were zero and may grow back)" if share else ""
        return WeightMasks([]), f"off: --no-masked{note}"
    if share >= MASK_AUTO_SHARE:
        return masks, f"auto: {share:.1%} of decoder weights are pruned zeros"
    return WeightMasks([]), f"off: auto, the model is dense ({share:.2%} zeros)"


def _scratch_dir(work_dir: str | Path | None) -> Path:
    """The Trainer's checkpoint folder; under a multi-process launch every rank must see the same one
    (the best checkpoint is reloaded by all of them), so it is named by the launch's run id."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id is None:
        return scratch_dir(Path(work_dir or tempfile.gettempdir()))
    scratch = Path(work_dir or tempfile.gettempdir()) / f".secateur-train-{run_id}"
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch


def _bf16_supported() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return True  # CPU autocast handles bf16


def _checkpointing_argument() -> str:
    """transformers 5 renamed TrainingArguments.gradient_checkpointing to activation_checkpointing."""
    import inspect

    from transformers import TrainingArguments

    names = inspect.signature(TrainingArguments).parameters
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def _training_arguments(
    config: FinetuneConfig, work: Path, n_train: int, has_eval: bool, bf16: bool, quiet: bool
):
    from transformers import TrainingArguments

    checkpointing = {_checkpointing_argument(): config.gradient_checkpointing}
    steps_per_epoch = max(1, math.ceil(math.ceil(n_train / config.batch_size) / config.grad_accum))
    total = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    eval_steps = min(config.eval_steps or steps_per_epoch, total)
    keep_best = has_eval and config.keep_best
    return TrainingArguments(
        output_dir=str(work),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps,
        bf16=bf16,
        **checkpointing,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        save_strategy="steps" if keep_best else "no",
        save_steps=eval_steps,
        save_only_model=True,  # safetensors only: no pickled optimizer state
        load_best_model_at_end=keep_best,
        metric_for_best_model="eval_loss" if keep_best else None,
        greater_is_better=False if keep_best else None,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=quiet,
        seed=config.seed,
        data_seed=config.seed,
        remove_unused_columns=False,
        dataloader_pin_memory=torch.cuda.is_available() and config.device != "cpu",
        use_cpu=not _use_cuda(config.device),
        save_total_limit=config.save_total_limit if keep_best else None,
    )


def _use_cuda(device: str | None) -> bool:
    """--device cpu | cuda | cuda:N (the Trainer trains on the current CUDA device, so N is made current)."""
    if device is None:
        return torch.cuda.is_available()
    if device == "cpu":
        return False
    if not torch.cuda.is_available():
        raise SecateurError(f"--device {device}: no CUDA device is visible here; use --device cpu")
    if ":" in device:
        index = int(device.split(":")[1])
        if index >= torch.cuda.device_count():
            raise SecateurError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
        torch.cuda.set_device(index)
    return True


def _mask_callback(masks: WeightMasks):
    from transformers import TrainerCallback

    class ReapplyMasks(TrainerCallback):
        """After every optimizer step, multiply the pruned weights by their masks again."""

        def on_optimizer_step(self, args, state, control, **kwargs):
            masks.apply()

    return ReapplyMasks()


def finetune(
    model,
    tokenizer,
    config: FinetuneConfig,
    *,
    dataset: str,
    validate: bool = True,
    work_dir: str | Path | None = None,
    show_progress: bool = True,
    callbacks: tuple = (),
) -> FinetuneResult:
    """Train `model` in place. Masked (explicitly, or by default on a mask-pruned model), weights
    that are zero now end exactly zero. The validation loss (and --keep-best) use windows held out
    of the train split; `validate=False` (--no-eval) measures none.

    Raises VerificationError if a pruned weight is nonzero at the end (the model is then not saved).
    """
    adapter = ModelAdapter(model)
    windows = training_windows(tokenizer, dataset, config.seqlen, config.train_windows, config.seed)
    size = validation_size(windows.shape[0], config.val_set_size) if validate else 0
    train, validation = hold_out(windows, size, config.seed)
    masks, reason = masking_decision(adapter, config.masked)
    result = train_model(
        model,
        config,
        WindowDataset(train),
        WindowDataset(validation),
        masks=masks,
        work_dir=work_dir,
        show_progress=show_progress,
        callbacks=callbacks,
    )
    result.masked = reason
    return result


def train_model(
    model,
    config: FinetuneConfig,
    train: torch.utils.data.Dataset,
    evaluation: torch.utils.data.Dataset,
    *,
    masks: WeightMasks,
    work_dir: str | Path | None = None,
    show_progress: bool = True,
    callbacks: tuple = (),
    collator=None,
) -> FinetuneResult:
    """The Trainer run shared by full and LoRA fine-tuning; `masks` are held (empty: nothing held)."""
    started = time.perf_counter()
    bf16 = config.bf16 and _bf16_supported()
    if config.bf16 and not bf16:
        print("note: this GPU has no bf16; training in fp32", flush=True)
    if config.max_steps is None and config.epochs == 0:
        return FinetuneResult(0, len(train), len(evaluation), masks.pruned, None, None)

    from transformers import Trainer

    scratch = _scratch_dir(work_dir)
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = False
    try:
        args = _training_arguments(config, scratch, len(train), len(evaluation) > 0, bf16, not show_progress)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=evaluation,
            data_collator=collator,
            callbacks=[_mask_callback(masks), *callbacks],
        )
        if not show_progress:
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        with masks.guarding_gradients():
            trainer.train()
    finally:
        model.config.use_cache = use_cache
        model.eval()
        if is_main():
            shutil.rmtree(scratch, ignore_errors=True)
    masks.verify()
    history = trainer.state.log_history
    curve = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
    losses = [loss for _, loss in curve]
    evals = [(entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry]
    return FinetuneResult(
        steps=trainer.state.global_step,
        train_windows=len(train),
        validation_windows=len(evaluation),
        masked_weights=masks.pruned,
        first_loss=losses[0] if losses else None,
        last_loss=losses[-1] if losses else None,
        eval_losses=evals,
        losses=curve,
        best_eval_loss=trainer.state.best_metric if args.load_best_model_at_end else None,
        seconds=time.perf_counter() - started,
        bf16=bf16,
    )
