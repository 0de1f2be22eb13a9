"""`secateur prune`: build a PruneRecipe from flags (and an optional recipe file), run it, report."""

from __future__ import annotations

import argparse
import json
import sys

from secateur.cli.options import add_config_arguments, collect
from secateur.cli.seed_prune import (
    add_seed_arguments,
    apply_cache_dir,
    apply_seed_outputs,
    run_finetune_after_prune,
    write_results_folder,
)
from secateur.config import (
    CalibrationConfig,
    DepthConfig,
    EvalConfig,
    ExpertsConfig,
    OsscarConfig,
    PruneConfig,
    PruneRecipe,
    StructuredConfig,
    from_dict,
    load_recipe,
    to_dict,
)
from secateur.errors import SecateurError

SECTIONS = (
    ("calibration", CalibrationConfig),
    ("prune", PruneConfig),
    ("evaluation", EvalConfig),
    ("structured", StructuredConfig),
    ("depth", DepthConfig),
    ("osscar", OsscarConfig),
    ("experts", ExpertsConfig),
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "prune",
        help="prune a model: masks (magnitude, wanda, sparsegpt; unstructured, N:M, block, tiered) "
        "or structured (--method structured: heads and channels removed)",
        description="Prune every Linear of the decoder layers to a target sparsity, layer by layer.",
    )
    parser.add_argument(
        "--recipe", metavar="FILE", help="recipe (YAML/JSON) or a run's secateur.json; flags override it"
    )
    add_config_arguments(parser, PruneRecipe, "recipe")
    for name, cls in SECTIONS:
        add_config_arguments(parser.add_argument_group(name), cls, name)
    parser.add_argument(
        "--block-size",
        "--block_size",
        type=int,
        metavar="B",
        dest="block_size",
        help="tile size B: shorthand for --pattern block:B, or tiered:B with --pattern tiered",
    )
    output = parser.add_argument_group("reports")
    output.add_argument(
        "--save_log", "--save-log", "--log", dest="log", metavar="FILE", help="also write the summary to FILE"
    )
    output.add_argument("--json", metavar="FILE", help="write the run's manifest (secateur.json) to FILE too")
    output.add_argument("--quiet", action="store_true", help="no progress bars")
    add_seed_arguments(parser)
    parser.set_defaults(run=run)


def build_recipe(args: argparse.Namespace, note=print) -> PruneRecipe:
    data = to_dict(load_recipe(args.recipe)) if args.recipe else {}
    data.update(collect(args, "recipe"))
    for name, _ in SECTIONS:
        data[name] = {**data.get(name, {}), **collect(args, name)}
    block_size = getattr(args, "block_size", None)
    if block_size is not None:
        given = str(data["prune"].get("pattern") or "block").replace(" ", "").lower()
        kind = "tiered" if given.startswith("tiered") else "block"
        if not given.startswith(kind):
            raise SecateurError(
                f"--block-size {block_size} asks for block:{block_size} (or tiered:{block_size} with "
                f"--pattern tiered), but --pattern is {given}"
            )
        data["prune"]["pattern"] = f"{kind}:{block_size}"
    apply_seed_outputs(args, data)
    message = None if args.recipe else apply_demo_sizes(data)
    recipe = from_dict(PruneRecipe, data)
    if message:  # only once the recipe is valid, so a bad flag gets exactly one line
        note(message)
    return recipe


def apply_demo_sizes(data: dict) -> str | None:
    """Embedded models get demo-sized calibration unless the user chose sizes; returns the notice."""
    from secateur.models.embedded import embedded_model

    model = embedded_model(str(data.get("model", PruneRecipe.model)))
    if model is None:
        return None
    calibration, evaluation = data["calibration"], data["evaluation"]
    chosen = []
    for key, value in (("nsamples", model.demo.nsamples), ("seqlen", model.demo.seqlen)):
        if key not in calibration:
            calibration[key] = value
            chosen.append(f"--{key} {value}")
    # --no-eval: nothing is measured, so no window count is chosen for it (it would be refused).
    if model.demo.eval_windows and "max_windows" not in evaluation and evaluation.get("enabled", True):
        evaluation["max_windows"] = model.demo.eval_windows
        chosen.append(f"--eval-windows {model.demo.eval_windows}")
    if not chosen:
        return None
    return (
        f"note: demo-sized defaults for the embedded model {model.name}: {' '.join(chosen)} "
        f"(the papers use --nsamples 128 --seqlen 2048; pass them to change)"
    )


def run(args: argparse.Namespace) -> int:
    from secateur.distributed import is_main
    from secateur.methods.base import prune_step
    from secateur.runs.prune import run_prune

    recipe = build_recipe(args, note=lambda m: print(m, file=sys.stderr))
    apply_cache_dir(args)
    main_rank = is_main()  # under torchrun, rank 0 alone prints and writes; every rank computes
    result = run_prune(
        recipe,
        show_progress=not args.quiet and main_rank,
        note=(lambda m: print(m, file=sys.stderr)) if main_rank else (lambda m: None),
        argv=sys.argv,
    )
    summary = prune_step(recipe.prune.method).summary(result)
    if main_rank:
        print(summary)
        if args.save:
            write_results_folder(args.save, summary, result.manifest)
    if args.finetune:  # every rank trains (data parallel); rank 0 reports
        recovered = run_finetune_after_prune(args, recipe, show_progress=not args.quiet and main_rank)
        if main_rank:
            print(recovered)
    if not main_rank:
        return 0
    if args.log:
        with open(args.log, "w") as handle:
            handle.write(summary + "\n")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result.manifest, handle, indent=2, default=str)
    return 0
