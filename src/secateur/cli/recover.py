"""`secateur recover`: LoRA recovery of a pruned model on instruction data or text."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from secateur.cli.options import add_config_arguments, collect
from secateur.config import EvalConfig, from_dict
from secateur.errors import SecateurError
from secateur.recovery.config import LoraConfig, LoraTrainingConfig, RecoverRecipe

TRAINING_FLAGS = {"dataset": ["--data", "--data-path", "--data_path", "--train-dataset", "--dataset"]}
EVAL_FLAGS = {"dense": ["--eval-before"]}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "recover",
        help="recover a pruned model's quality with LoRA (peft); --merge writes a standalone checkpoint",
        description="LoRA on Alpaca instruction data (.json/.jsonl, hub) or plain text, with the "
        "Hugging Face Trainer (several GPUs: run it under `accelerate launch`). Mask-pruned models keep "
        "their zeros through --merge (re-applied and verified).",
    )
    add_config_arguments(parser, RecoverRecipe, "recipe")
    add_config_arguments(parser.add_argument_group("LoRA"), LoraConfig, "lora")
    add_config_arguments(
        parser.add_argument_group("training"),
        LoraTrainingConfig,
        "finetune",
        flags=TRAINING_FLAGS,
        skip=("masked",),  # pruned zeros are always kept on merge
    )
    add_config_arguments(parser.add_argument_group("evaluation"), EvalConfig, "evaluation", flags=EVAL_FLAGS)
    parser.add_argument("--json", metavar="FILE", help="write the run's manifest to FILE too")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or loss logs")
    parser.set_defaults(run=run)


def build_recipe(args: argparse.Namespace) -> RecoverRecipe:
    from secateur.models.embedded import embedded_model

    data = collect(args, "recipe")
    data["lora"] = collect(args, "lora")
    data["finetune"] = collect(args, "finetune")
    data["evaluation"] = collect(args, "evaluation")
    if data.get("out") is None:
        raise SecateurError("recover needs --out DIR for the adapter (or, with --merge, the checkpoint)")
    model = Path(str(data.get("model", ""))).expanduser()
    if model.is_file() or model.suffix in (".bin", ".pt", ".pth"):
        raise SecateurError(
            f"--model {model} is a file: give the model's folder (secateur writes folders); a whole model "
            "pickled in one .bin (as LLM-Pruner saves it) is never unpickled, it could run code"
        )
    embedded = embedded_model(str(data.get("model", RecoverRecipe.model)))
    if embedded is not None and embedded.demo.eval_windows:
        data["evaluation"].setdefault("max_windows", embedded.demo.eval_windows)
    return from_dict(RecoverRecipe, data)


def run(args: argparse.Namespace) -> int:
    from secateur.cli.training_rows import loss_rows, perplexity_rows
    from secateur.distributed import is_main
    from secateur.evaluation.summary import format_table
    from secateur.runs.recover import run_recover

    recipe = build_recipe(args)
    main_rank = is_main()  # under accelerate launch / torchrun, rank 0 alone prints
    quiet = args.quiet or not main_rank
    note = (lambda message: None) if quiet else (lambda message: print(message, file=sys.stderr))
    run_ = run_recover(recipe, show_progress=not quiet, note=note, argv=sys.argv)
    if not main_rank:
        return 0
    result, tuned = run_.result, run_.result.training
    held = f"{tuned.train_windows} train / {tuned.validation_windows} validation held out of it"
    rows = [
        ["data", f"{result.data} ({result.data_kind}, {held})"],
        ["LoRA", f"r={recipe.lora.r} alpha={recipe.lora.alpha:g} on {recipe.lora.target_modules}"],
        ["trainable parameters", f"{result.trainable_params:,}"],
        ["steps", str(tuned.steps)],
        *loss_rows(tuned),
    ]
    if recipe.lora.merge:
        rows.append(["pruned weights held at zero", f"{result.masked_weights:,} (verified after merge)"])
    rows += perplexity_rows(run_.before, run_.after)
    rows.append(["time", f"{tuned.seconds:.1f}s"])
    if run_.out is not None:
        rows.append(["saved to", f"{run_.out}" + ("" if recipe.lora.merge else " (adapter)")])
    print(format_table(["recover", "value"], rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(run_.manifest, handle, indent=2, default=str)
    return 0
