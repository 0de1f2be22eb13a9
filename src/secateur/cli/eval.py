"""`secateur eval`: perplexity of a model (a pruned output folder, an embedded model, a hub id)."""

from __future__ import annotations

import argparse
import json
import sys

from secateur.cli.options import add_config_arguments, collect
from secateur.config import DEFAULT_DATASET, CalibrationConfig, EvalConfig, PruneRecipe
from secateur.errors import SecateurError

_FLAGS = {
    "dataset": ["--dataset", "--eval-dataset", "--eval_dataset"],
    "seqlen": ["--seqlen", "--eval-seqlen", "--eval_seqlen"],
    "batch_size": ["--batch-size", "--batch_size", "--eval-batch-size"],
    "max_windows": ["--windows", "--eval-windows", "--max-windows"],
}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure perplexity and zero-shot task accuracy",
        description="Perplexity over non-overlapping windows of a test split; with --tasks, zero-shot "
        "tasks through lm-eval (pip install 'secateur[eval]'). An adapter folder from `secateur recover` "
        "is loaded as base + adapter.",
    )
    parser.add_argument("--model", default=PruneRecipe.model, help="output folder, embedded model, or hub id")
    parser.add_argument("--dtype", default="auto", help="float32, float16, bfloat16 or auto")
    parser.add_argument(
        "--device", default=None, help="compute device (default: cuda when present, else cpu)"
    )
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON to FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    # --eval/--eval-dense mean nothing here (eval always measures, and has no dense twin): not offered.
    add_config_arguments(parser, EvalConfig, "evaluation", flags=_FLAGS, skip=("dense", "enabled"))
    tasks = parser.add_argument_group("zero-shot tasks (lm-eval)")
    tasks.add_argument(
        "--tasks",
        help="comma-separated lm-eval tasks, e.g. arc_easy,arc_challenge,hellaswag,"
        "piqa,winogrande,boolq (perplexity then runs only if --dataset is given too)",
    )
    tasks.add_argument(
        "--num-fewshot", "--num_fewshot", type=int, default=0, help="examples in context (default: 0)"
    )
    tasks.add_argument("--limit", type=int, default=None, help="at most this many examples per task")
    tasks.add_argument(
        "--tasks-path",
        "--include-path",
        "--include_path",
        default=None,
        help="folder of extra lm-eval task YAMLs (local tasks)",
    )
    tasks.add_argument("--tasks-batch-size", type=int, default=8, help="lm-eval batch size (default: 8)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from secateur.api import evaluate, load_model
    from secateur.evaluation.summary import format_table
    from secateur.models.embedded import embedded_model

    given = collect(args, "evaluation")
    embedded = embedded_model(args.model)
    if embedded is not None:
        given.setdefault("seqlen", embedded.demo.seqlen)
        if embedded.demo.eval_windows:
            given.setdefault("max_windows", embedded.demo.eval_windows)
    config = EvalConfig(
        **{k: v for k, v in given.items() if k in ("dataset", "seqlen", "batch_size", "max_windows")}
    )
    tasks = [t.strip() for t in (args.tasks or "").split(",") if t.strip()]
    if args.tasks is not None and not tasks:
        raise SecateurError("--tasks is empty; name lm-eval tasks like arc_easy,hellaswag")
    if tasks:
        from secateur.evaluation.zeroshot import _require_lm_eval

        _require_lm_eval()  # before the model loads
    loaded = load_model(args.model, args.dtype, args.device)
    report = {"model": args.model}
    if tasks:
        report["tasks"] = _run_tasks(args, loaded, tasks)
        if "dataset" not in given:
            _write_json(args.json, report)
            return 0
    result = evaluate(
        loaded,
        dataset=config.dataset or DEFAULT_DATASET,
        seqlen=config.seqlen or CalibrationConfig.seqlen,
        batch_size=config.batch_size,
        max_windows=config.max_windows,
        device=args.device,
        show_progress=not args.quiet,
    )
    print(
        format_table(
            ["model", "dataset", "windows", "seqlen", "tokens", "perplexity", "seconds"],
            [
                [
                    args.model,
                    result.dataset,
                    result.windows,
                    result.seqlen,
                    result.tokens,
                    f"{result.perplexity:.3f}",
                    f"{result.seconds:.1f}",
                ]
            ],
        )
    )
    _write_json(args.json, report | result.to_dict())
    print(f"perplexity: {result.perplexity:.4f}", file=sys.stderr)
    return 0


def _run_tasks(args: argparse.Namespace, loaded, tasks: list[str]) -> list[dict]:
    from secateur.devices import resolve_device
    from secateur.evaluation.summary import format_table
    from secateur.evaluation.zeroshot import zero_shot

    if args.num_fewshot < 0 or (args.limit is not None and args.limit < 1) or args.tasks_batch_size < 1:
        raise SecateurError("--num-fewshot must be >= 0, --limit and --tasks-batch-size >= 1")
    scores = zero_shot(
        loaded.model,
        loaded.tokenizer,
        tasks,
        device=resolve_device(args.device),
        batch_size=args.tasks_batch_size,
        num_fewshot=args.num_fewshot,
        limit=args.limit,
        tasks_path=args.tasks_path,
    )
    rows = [
        [
            s.task,
            s.metric,
            f"{s.value:.4f}",
            f"{s.stderr:.4f}" if s.stderr is not None else "-",
            s.samples or "-",
        ]
        for s in scores
    ]
    print(format_table(["task", "metric", "value", "stderr", "examples"], rows))
    return [s.to_dict() for s in scores]


def _write_json(path: str | None, report: dict) -> None:
    if path:
        with open(path, "w") as handle:
            json.dump(report, handle, indent=2, default=str)
