"""`secateur finetune`: causal-LM fine-tuning; with --masked, pruned weights stay exactly zero."""

from __future__ import annotations

import argparse
import json
import sys

from secateur.cli.options import add_config_arguments, collect
from secateur.cli.trainer_flags import add_trainer_arguments, apply_trainer_flags
from secateur.config import EvalConfig, from_dict
from secateur.errors import SecateurError
from secateur.recovery.config import FinetuneConfig, FinetuneRecipe

# Standalone, the training text is simply --dataset; perplexity before/after is "dense" = before.
FINETUNE_FLAGS = {"dataset": ["--dataset", "--train-dataset", "--dataset_name"]}
EVAL_FLAGS = {"dense": ["--eval-before"]}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a (pruned) model; --masked keeps pruned weights at zero",
        description="Causal-LM fine-tuning with the Hugging Face Trainer "
        "(several GPUs: run it under `accelerate launch`).",
    )
    add_config_arguments(parser, FinetuneRecipe, "recipe")
    add_config_arguments(
        parser.add_argument_group("training"), FinetuneConfig, "finetune", flags=FINETUNE_FLAGS
    )
    add_config_arguments(parser.add_argument_group("evaluation"), EvalConfig, "evaluation", flags=EVAL_FLAGS)
    add_trainer_arguments(parser)
    parser.add_argument("--json", metavar="FILE", help="write the run's manifest to FILE too")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or loss logs")
    parser.set_defaults(run=run)


def build_recipe(args: argparse.Namespace) -> FinetuneRecipe:
    from secateur.models.embedded import embedded_model

    data = collect(args, "recipe")
    data["finetune"] = collect(args, "finetune")
    data["evaluation"] = collect(args, "evaluation")
    apply_trainer_flags(args, data["finetune"])
    if data.get("out") is None:
        raise SecateurError("finetune needs --out DIR for the fine-tuned checkpoint")
    embedded = embedded_model(str(data.get("model", FinetuneRecipe.model)))
    if embedded is not None:
        data["finetune"].setdefault("seqlen", embedded.demo.seqlen)
        if embedded.demo.eval_windows and data["evaluation"].get("enabled", True):  # not with --no-eval
            data["evaluation"].setdefault("max_windows", embedded.demo.eval_windows)
    return from_dict(FinetuneRecipe, data)


def run(args: argparse.Namespace) -> int:
    from secateur.cli.training_rows import loss_rows, perplexity_rows
    from secateur.distributed import is_main
    from secateur.evaluation.summary import format_table
    from secateur.runs.finetune import run_finetune

    recipe = build_recipe(args)
    main_rank = is_main()  # under accelerate launch / torchrun, rank 0 alone prints
    note = (lambda m: print(m, file=sys.stderr)) if main_rank else (lambda m: None)
    result = run_finetune(recipe, show_progress=not args.quiet and main_rank, note=note, argv=sys.argv)
    if not main_rank:
        return 0
    tuned = result.result
    rows = [
        ["steps", str(tuned.steps)],
        ["training windows", f"{tuned.train_windows} x {recipe.finetune.seqlen}"],
        ["masked", tuned.masked],
        [
            "pruned weights held at zero",
            f"{tuned.masked_weights:,}" + (" (verified)" if tuned.masked_weights else ""),
        ],
        *loss_rows(tuned),
        *perplexity_rows(result.before, result.after),
    ]
    rows.append(["time", f"{tuned.seconds:.1f}s"])
    if result.out is not None:
        rows.append(["saved to", str(result.out)])
    print(format_table(["finetune", "value"], rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result.manifest, handle, indent=2, default=str)
    return 0
