"""Recipes for recovery: masked fine-tuning and progressive three-tier schedules.

Same conventions as `secateur.config`: frozen dataclasses whose field metadata are the CLI flags,
checked when built. Aliases are the Hugging Face Trainer spellings (`--learning_rate`,
`--gradient_accumulation_steps`, ...) that users of the older fine-tuning scripts type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from secateur.config import DTYPES, CalibrationConfig, EvalConfig, PruneConfig, option
from secateur.errors import SecateurError
from secateur.unused_options import check_training_fields

VAL_SET_MAX = 2000  # as alpaca-lora's default validation set


@dataclass(frozen=True)
class FinetuneConfig:
    """Causal-LM fine-tuning with the Hugging Face Trainer (accelerate underneath)."""

    dataset: str | None = option(
        None,
        "training text: embedded corpus, hub dataset or local .txt/.jsonl (default: the calibration "
        "dataset, or lee); trains on its train split minus a held-out validation part (--val-set-size)",
        "--dataset_name",
        flag="--train-dataset",
    )
    seqlen: int = option(1024, "tokens per training window", flag="--train-seqlen")
    epochs: float = option(
        1.0, "passes over the training windows", "--num_train_epochs", "--num-train-epochs"
    )
    max_steps: int | None = option(None, "stop after this many optimizer steps (overrides --epochs)")
    learning_rate: float = option(2e-5, "AdamW learning rate", "--lr")
    batch_size: int = option(
        4, "training windows per device per step", "--per_device_train_batch_size", flag="--train-batch-size"
    )
    grad_accum: int = option(
        4,
        "micro-batches per optimizer step",
        "--gradient_accumulation_steps",
        "--gradient-accumulation-steps",
    )
    weight_decay: float = option(0.0, "AdamW weight decay (pruned weights stay zero either way)")
    warmup_steps: int = option(0, "linear learning-rate warm-up steps")
    bf16: bool = option(False, "bf16 mixed precision where the device supports it (else fp32, with a note)")
    gradient_checkpointing: bool = option(False, "recompute activations in the backward pass to save memory")
    eval_steps: int | None = option(
        None, "measure the validation loss every N steps (default: once per epoch)"
    )
    # Never the test split: checkpoints are chosen on text the final perplexity is not measured on.
    val_set_size: int | None = option(
        None,
        "training examples (windows, or instruction records) held out of the train split, seeded, "
        f"for the validation loss and --keep-best (default: 5%%, at least 1, at most {VAL_SET_MAX}; 0: none)",
        "--val_set_size",
        "--eval-loss-windows",
    )
    keep_best: bool = option(
        True,
        "end with the checkpoint of lowest validation loss",
        "--load_best_model_at_end",
        flag="--keep-best",
    )
    masked: bool | None = option(
        None,
        "keep every zero weight of the decoder Linears exactly zero (default: on when at least "
        "1%% of them are zero, i.e. the model was mask-pruned; --no-masked lets them grow back)",
    )
    train_windows: int | None = option(
        None, "use at most this many training windows (default: the whole split)"
    )
    logging_steps: int = option(10, "log the training loss every N steps")
    seed: int = option(0, "seed for shuffling and initialisation", flag="--train-seed")
    device: str | None = option(
        None, "training device: cpu, cuda or cuda:N (default: cuda when present; several: accelerate launch)"
    )
    save_total_limit: int = option(
        2, "checkpoints kept at once in the scratch folder while training (the best one among them)"
    )

    def __post_init__(self) -> None:
        positive = {
            "--train-seqlen": self.seqlen - 1,
            "--train-batch-size": self.batch_size,
            "--grad-accum": self.grad_accum,
            "--logging-steps": self.logging_steps,
            "--save-total-limit": self.save_total_limit,
        }
        for flag, value in positive.items():
            if value < 1:
                raise SecateurError(
                    f"{flag} is too small: must be at least {'2' if 'seqlen' in flag else '1'}"
                )
        if not self.epochs >= 0:
            raise SecateurError(f"--epochs must be >= 0, got {self.epochs}")
        if not self.learning_rate > 0:
            raise SecateurError(f"--learning-rate must be > 0, got {self.learning_rate}")
        for flag, value in (
            ("--max-steps", self.max_steps),
            ("--eval-steps", self.eval_steps),
            ("--train-windows", self.train_windows),
        ):
            if value is not None and value < 1:
                raise SecateurError(f"{flag} must be at least 1, got {value}")
        if self.warmup_steps < 0 or self.weight_decay < 0:
            raise SecateurError("--warmup-steps and --weight-decay must be >= 0")
        if self.val_set_size is not None and self.val_set_size < 0:
            raise SecateurError(f"--val-set-size must be >= 0, got {self.val_set_size}")
        if self.device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise SecateurError(f"--device must be cpu, cuda or cuda:N, got {self.device!r}")


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise SecateurError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


@dataclass(frozen=True)
class FinetuneRecipe:
    """Everything `secateur finetune` does."""

    model: str = option(
        "smollm2-135m",
        "model to fine-tune: a pruned checkpoint folder, embedded name or hub id",
        "--model_name_or_path",
        "--model-name-or-path",
    )
    dtype: str = option("float32", "weights' dtype while training (use --bf16 for mixed precision)")
    out: str | None = option(
        None, "output folder for the fine-tuned checkpoint", "--output_dir", "--output-dir"
    )
    overwrite: bool = option(False, "replace an existing --out folder", "--overwrite_output_dir")
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        _check_dtype(self.dtype)
        check_training_fields(self, "finetune")


@dataclass(frozen=True)
class ProgressiveRecipe:
    """Everything `secateur progressive` does: a schedule of tier mixes with fine-tuning between."""

    model: str = option("smollm2-135m", "dense model to start from: embedded name, local folder or hub id")
    schedule: str | None = option(
        None,
        "CSV with columns iteration,dense,mid_2_4,topk,epochs, one row per iteration "
        "(default: the reference 5-step schedule shipped with secateur)",
    )
    dtype: str = option("float32", "weights' dtype (fine-tuning uses --bf16 for mixed precision)")
    out: str | None = option(None, "output folder; iteration K writes iterK/ inside it")
    overwrite: bool = option(False, "replace an existing --out folder (start over)")
    resume: bool = option(False, "continue after the last completed iteration in --out")
    iteration: int | None = option(
        None,
        "run ONE iteration of the schedule (prune only, as the seed's manual mode): from --model (the "
        "previous iteration's fine-tuned model) and --tier-maps (its tier map); writes OUT/iterK",
    )
    tier_maps: str | None = option(
        None, "--iteration K > 1: the tier_maps.safetensors of iteration K-1 (tiers only move down from it)"
    )
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    prune: PruneConfig = field(default_factory=lambda: PruneConfig(pattern="tiered"))
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        _check_dtype(self.dtype)
        if self.resume and self.overwrite:
            raise SecateurError("--resume continues a run and --overwrite starts over: pass one of them")
        if self.iteration is None and self.tier_maps is not None:
            raise SecateurError("--tier-maps is not used here: it starts one --iteration K; add --iteration")
        if self.iteration is not None and self.resume:
            raise SecateurError("--resume is not used here: --iteration K runs that one step; drop --resume")
        from secateur.patterns.tiered import Tiered

        if not isinstance(self.prune.pattern_object(), Tiered):
            raise SecateurError(f"progressive schedules use --pattern tiered[:B], not {self.prune.pattern}")
        if self.prune.tiers is not None:
            raise SecateurError("--tiers is set per iteration by the --schedule file; drop --tiers")


LORA_ROLES = ("q", "k", "v", "o", "gate", "up", "down")


@dataclass(frozen=True)
class LoraConfig:
    """The low-rank adapters of `secateur recover` (peft LoRA)."""

    r: int = option(8, "LoRA rank", "--lora_r", flag="--lora-r")
    alpha: float = option(
        16.0, "LoRA scaling alpha (the update is scaled by alpha / r)", "--lora_alpha", flag="--lora-alpha"
    )
    dropout: float = option(0.05, "dropout on the LoRA input", "--lora_dropout", flag="--lora-dropout")
    target_modules: str = option(
        ",".join(LORA_ROLES),
        "Linears that get adapters: roles q,k,v,o,gate,up,down or module names (q_proj, ...)",
        "--lora_target_modules",
        "--lora-target-modules",
    )
    train_on_inputs: bool = option(False, "instruction data: also train on the prompt, not only the response")
    merge: bool = option(
        False, "merge the adapters into the weights and write a standalone checkpoint (else: the adapter)"
    )

    def __post_init__(self) -> None:
        if self.r < 1:
            raise SecateurError(f"--lora-r must be at least 1, got {self.r}")
        if not self.alpha > 0:
            raise SecateurError(f"--lora-alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise SecateurError(f"--lora-dropout must be in [0, 1), got {self.dropout}")
        if not self.targets():
            raise SecateurError("--lora-target-modules is empty; give roles like q,k,v,o,gate,up,down")

    def is_default_targets(self) -> bool:
        return self.targets() == LORA_ROLES

    def targets(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in str(self.target_modules).split(",") if part.strip())


@dataclass(frozen=True)
class LoraTrainingConfig(FinetuneConfig):
    """FinetuneConfig with the defaults of LoRA recovery (alpaca-lora / LLM-Pruner post-training)."""

    dataset: str | None = option(
        None,
        "training data: Alpaca records (.json/.jsonl with instruction/input/output, or a hub dataset "
        "such as yahma/alpaca-cleaned) or plain text (embedded corpus, hub dataset, .txt) (default: lee)",
        "--data_path",
        "--data-path",
        flag="--data",
    )

    seqlen: int = option(
        256,
        "tokens per example: instruction records are cut here, plain text is windowed",
        "--cutoff_len",
        "--cutoff-len",
        flag="--train-seqlen",
    )
    epochs: float = option(
        2.0,
        "passes over the training data",
        "--num_epochs",
        "--num-epochs",
        "--num_train_epochs",
        "--num-train-epochs",
    )
    learning_rate: float = option(3e-4, "AdamW learning rate", "--lr")


@dataclass(frozen=True)
class RecoverRecipe:
    """Everything `secateur recover` does: LoRA on a (pruned) model, then merge or keep the adapter."""

    model: str = option(
        "smollm2-135m",
        "model to recover: any secateur output, local folder or hub id",
        "--pruned_model",
        "--pruned-model",
        "--base_model",
    )
    dtype: str = option("float32", "weights' dtype while training (use --bf16 for mixed precision)")
    out: str | None = option(
        None,
        "output folder: the adapter, or with --merge a standalone checkpoint",
        "--output_dir",
        "--output-dir",
    )
    overwrite: bool = option(False, "replace an existing --out folder", "--overwrite_output_dir")
    lora: LoraConfig = field(default_factory=LoraConfig)
    finetune: LoraTrainingConfig = field(default_factory=LoraTrainingConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        _check_dtype(self.dtype)
        check_training_fields(self, "recover")
