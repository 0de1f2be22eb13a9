"""LoRA recovery (peft): adapters on the decoder Linears of any secateur output, trained with the Trainer.

Works on mask-pruned models (their zeros are recorded before training and put back after a merge,
then verified: a merged LoRA update is dense, so without this the sparsity would silently vanish),
on uniform and heterogeneous structured models (adapters follow each layer's own widths; removed
sub-blocks have no Linears to adapt) and on depth-pruned models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from secateur.config import DEFAULT_DATASET
from secateur.errors import SecateurError
from secateur.models.adapter import ROLES, ModelAdapter
from secateur.recovery.config import LoraConfig, LoraTrainingConfig
from secateur.recovery.finetune import (
    FinetuneResult,
    WindowDataset,
    hold_out,
    train_model,
    training_windows,
    validation_size,
)
from secateur.recovery.instructions import PadCollator, instruction_datasets, instruction_records
from secateur.recovery.masks import WeightMasks


def target_names(adapter: ModelAdapter, targets: tuple[str, ...], default: bool = False) -> list[str]:
    """Roles (q, ..., down) -> the module leaf names peft matches; other entries are taken as names.

    Fused families map generic roles onto theirs (Phi-3: q, k, v -> qkv). With the default targets,
    a role the family or checkpoint lacks (OPT has no gate) is left out; asked for by name, it is an
    error. Routed experts are never LoRA targets (fused 3-D tensors; peft wraps Linears).
    """
    present = {
        name.split(".")[-1]
        for name, module in adapter.model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    names = []
    roles, aliases = adapter.spec.roles, adapter.spec.role_aliases
    for target in targets:
        role = aliases.get(target, target)
        name = roles.get(role, role).split(".")[-1]
        # Default targets skip what this family or checkpoint lacks (OPT's gate; a Qwen3-MoE
        # without dense layers has no gate_proj: its routed experts are fused tensors, not Linears).
        if default and target in ROLES and (role not in roles or name not in present):
            continue
        names.append(name)
    missing = [name for name in names if name not in present]
    if missing:
        raise SecateurError(
            f"--lora-target-modules {missing[0]!r} matches no Linear of this model; "
            f"use roles {','.join(adapter.spec.roles)} or module names"
        )
    return sorted(set(names), key=names.index)


def attach_lora(model, config: LoraConfig, gradient_checkpointing: bool = False, seed: int = 0):
    """Wrap `model` with fresh LoRA adapters (the base weights are frozen).

    The adapters' random A matrices are drawn from `seed` (--train-seed), not from whatever state
    the global generator is in: the same command gives the same adapters, in one process or in
    several (where joining the process group may have drawn numbers already)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    adapter = ModelAdapter(model)
    peft_config = PeftLoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=target_names(adapter, config.targets(), default=config.is_default_targets()),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):  # the caller's generator state is left as it was
        torch.manual_seed(seed)
        wrapped = get_peft_model(model, peft_config)
    if gradient_checkpointing:  # checkpointed blocks need an input that requires grad
        model.enable_input_require_grads()
    return wrapped


@torch.no_grad()
def merge_keeping_masks(wrapped, masks: WeightMasks):
    """Merge the adapters into the base weights, zero the pruned weights again, verify; the plain model."""
    merged = wrapped.merge_and_unload()
    held = WeightMasks([(name, merged.get_parameter(name), keep) for name, _, keep in masks.entries])
    held.apply()
    held.verify()
    return merged


@dataclass
class RecoverResult:
    data: str
    data_kind: str  # "instructions" or "text"
    trainable_params: int
    training: FinetuneResult
    masked_weights: int  # pruned weights found before training and held at zero on merge

    def to_dict(self) -> dict:
        return asdict(self)


def recovery_datasets(
    tokenizer, data: str, lora: LoraConfig, training: LoraTrainingConfig, validate: bool = True
):
    """(kind, train, validation, collator) for Alpaca records or plain text; the validation part
    is held out of the training data (never the test split), none with `validate=False`."""
    records = instruction_records(data)
    if records is not None:
        val_size = validation_size(len(records), training.val_set_size) if validate else 0
        train, val = instruction_datasets(
            tokenizer, records, training.seqlen, lora.train_on_inputs, val_size, training.seed
        )
        if training.train_windows is not None:
            train.examples = train.examples[: training.train_windows]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return "instructions", train, val, PadCollator(pad or 0)
    windows = training_windows(tokenizer, data, training.seqlen, training.train_windows, training.seed)
    size = validation_size(windows.shape[0], training.val_set_size) if validate else 0
    train, val = hold_out(windows, size, training.seed)
    return "text", WindowDataset(train), WindowDataset(val), None


def recover(
    model,
    tokenizer,
    lora: LoraConfig,
    training: LoraTrainingConfig,
    *,
    validate: bool = True,
    work_dir=None,
    show_progress: bool = True,
):
    """Train LoRA adapters on `model` (changed in place: it now holds them).

    Returns (wrapped model, the pruned-weight masks found before training, RecoverResult)."""
    data = training.dataset or DEFAULT_DATASET
    kind, train, val, collator = recovery_datasets(tokenizer, data, lora, training, validate)
    masks = WeightMasks.from_zeros(ModelAdapter(model))
    wrapped = attach_lora(model, lora, training.gradient_checkpointing, training.seed)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    result = train_model(
        wrapped,
        training,
        train,
        val,
        masks=WeightMasks([]),  # base weights are frozen; the masks matter when merging
        work_dir=work_dir,
        show_progress=show_progress,
        collator=collator,
    )
    return wrapped, masks, RecoverResult(data, kind, trainable, result, masks.pruned)
