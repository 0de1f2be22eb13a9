"""`secateur prune` spellings of the earlier scripts that are more than a flag alias.

- the GQA structured toolkit: `--output_name NAME` (the output goes to results/NAME) and
  `--finetune --finetune_data_path --finetune_epochs --finetune_lr [--lora_r --lora_alpha]`
  (prune, then LoRA recovery of the result, in one command);
- the block-wise Wanda guide: `--save DIR`, the folder the run's summary and manifest go to
  (the model itself goes to `--save_model`/`--out`, as there).

Plain renames (`--base_model`, `--sparsity_ratio`, `--block_size`, ...) are aliases on the config
fields themselves.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from secateur.errors import SecateurError
from secateur.scratch import write_text_atomic

RESULTS = Path("results")  # where --output_name puts its output, as the GQA toolkit did
FINETUNE_FLAGS = {
    "finetune_data_path": "--finetune_data_path",
    "finetune_epochs": "--finetune_epochs",
    "finetune_lr": "--finetune_lr",
    "lora_r": "--lora_r",
    "lora_alpha": "--lora_alpha",
}


def add_seed_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("spellings of the earlier scripts")
    group.add_argument("--output_name", "--output-name", metavar="NAME", help="same as --out results/NAME")
    group.add_argument(
        "--save",
        metavar="DIR",
        help="also write the summary (summary.md) and manifest (secateur.json) to DIR",
    )
    group.add_argument(
        "--finetune",
        action="store_true",
        help="after pruning, recover with LoRA (`secateur recover`) into OUT_finetuned",
    )
    group.add_argument(
        "--finetune_data_path", metavar="DATA", help="--finetune: training data (`recover --data`)"
    )
    group.add_argument(
        "--finetune_epochs", type=float, metavar="N", help="--finetune: epochs (`recover --epochs`)"
    )
    group.add_argument("--finetune_lr", type=float, metavar="LR", help="--finetune: learning rate")
    group.add_argument("--lora_r", type=int, metavar="R", help="--finetune: LoRA rank (`recover --lora-r`)")
    group.add_argument("--lora_alpha", type=float, metavar="A", help="--finetune: LoRA alpha")
    group.add_argument(
        "--cache_dir", metavar="DIR", help="where hub model weights are downloaded and cached (HF_HUB_CACHE)"
    )


def apply_cache_dir(args: argparse.Namespace) -> None:
    """--cache_dir: the standalone Wanda pruner's weights cache, which is the hub cache here."""
    if args.cache_dir is not None:
        folder = str(Path(args.cache_dir).expanduser())
        os.environ["HF_HUB_CACHE"] = folder  # for what imports huggingface_hub later
        from huggingface_hub import constants

        constants.HF_HUB_CACHE = folder  # read at download time by hf_hub_download


def apply_seed_outputs(args: argparse.Namespace, data: dict) -> None:
    """--output_name -> out; refuse the finetune settings without --finetune; check --save early."""
    if args.output_name is not None:
        if data.get("out") is not None:
            raise SecateurError("--output_name NAME means --out results/NAME: give one of them")
        data["out"] = str(RESULTS / args.output_name)
    given = [flag for name, flag in FINETUNE_FLAGS.items() if getattr(args, name) is not None]
    if given and not args.finetune:
        raise SecateurError(
            f"{given[0]} is not used here: it sets the LoRA recovery of --finetune; add --finetune"
        )
    if args.finetune:
        if data.get("out") is None:
            raise SecateurError(
                "--finetune recovers the pruned output: give --out DIR (or --output_name NAME)"
            )
        from secateur.export.save import check_output_dir

        check_output_dir(recovery_out(data["out"]), bool(data.get("overwrite")))
    if args.save is not None:
        summary = Path(args.save).expanduser() / "summary.md"
        if summary.exists() and not data.get("overwrite"):
            raise SecateurError(
                f"--save {args.save} already holds a summary.md: pass --overwrite or another folder"
            )


def recovery_out(out: str) -> str:
    path = Path(out).expanduser()
    return str(path.with_name(path.name + "_finetuned"))


def write_results_folder(folder: str, summary: str, manifest: dict) -> None:
    """--save DIR: the summary table and the manifest, each written whole or not at all."""
    path = Path(folder).expanduser()
    write_text_atomic(path / "summary.md", summary + "\n")
    write_text_atomic(path / "secateur.json", json.dumps(manifest, indent=2, default=str) + "\n")


def run_finetune_after_prune(args: argparse.Namespace, recipe, show_progress: bool) -> str:
    """--finetune: LoRA recovery of the pruned output (the adapter goes to OUT_finetuned); its summary."""
    from secateur.recovery.config import LoraConfig, LoraTrainingConfig, RecoverRecipe
    from secateur.runs.recover import run_recover

    lora = {k: v for k, v in (("r", args.lora_r), ("alpha", args.lora_alpha)) if v is not None}
    training = {
        k: v
        for k, v in (
            ("dataset", args.finetune_data_path),
            ("epochs", args.finetune_epochs),
            ("learning_rate", args.finetune_lr),
        )
        if v is not None
    }
    if recipe.prune.device is not None:
        training["device"] = recipe.prune.device
    # No flag for it in the combined command: recovery examples are at most as long as the
    # calibration windows, which were checked against the model's context.
    training["seqlen"] = min(LoraTrainingConfig.seqlen, recipe.calibration.seqlen)
    evaluation = recipe.evaluation
    # The pruned perplexity was just measured, on the same windows: no "before" pass again.
    same_windows = {
        "dataset": evaluation.dataset or recipe.calibration.dataset,
        "seqlen": evaluation.seqlen or recipe.calibration.seqlen,
        "dense": False,
    }
    recover = RecoverRecipe(
        model=recipe.out,
        dtype="float32" if recipe.dtype == "auto" else recipe.dtype,
        out=recovery_out(recipe.out),
        overwrite=recipe.overwrite,
        lora=LoraConfig(**lora),
        finetune=LoraTrainingConfig(**training),
        evaluation=dataclasses.replace(evaluation, **same_windows) if evaluation.enabled else evaluation,
    )
    run = run_recover(recover, show_progress=show_progress, argv=None)
    after = f", perplexity {run.after.perplexity:.3f}" if run.after is not None else ""
    return f"LoRA recovery ({run.result.training.steps} steps{after}): adapter in {run.out}"
