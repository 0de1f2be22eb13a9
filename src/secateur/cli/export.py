"""`secateur export`: a pruned model in the format a serving engine reads (GGUF for llama.cpp)."""

from __future__ import annotations

import argparse
import json
import sys

from secateur.cli.options import add_config_arguments, collect
from secateur.config import from_dict
from secateur.export.export_config import ExportRecipe


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a (pruned) model for a serving engine: GGUF for llama.cpp / Ollama / LM Studio",
        description="Every secateur output (mask-pruned, uniform or per-layer structured, depth, OSSCAR, "
        "LoRA-merged) as one GGUF file; per-layer widths use llama.cpp's deci architecture.",
    )
    add_config_arguments(parser, ExportRecipe, "export")
    parser.add_argument("--json", metavar="FILE", help="write the export report to FILE too")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from secateur.evaluation.summary import format_table
    from secateur.runs.export import run_export

    recipe = from_dict(ExportRecipe, collect(args, "export"))
    note = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    report = run_export(recipe, note)
    rows = _gguf_rows(report) if recipe.format == "gguf" else _nas_rows(report)
    rows += [*(["note", line] for line in report.notes), ["time", f"{report.seconds:.1f}s"]]
    print(format_table(["export", "value"], rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report.to_dict(), handle, indent=2)
    return 0


def _gguf_rows(report) -> list[list[str]]:
    return [
        ["file", f"{report.path} ({report.bytes / 2**20:.1f} MiB)"],
        ["architecture", report.arch],
        ["type", report.outtype],
        ["layers", str(report.layers)],
        ["heads / KV heads", f"{_span(report.head_count)} / {_span(report.head_count_kv)}"],
        ["feed-forward width", _span(report.feed_forward_length)],
        ["tensors", str(report.tensors)],
        ["pre-tokenizer", report.pre_tokenizer],
    ]


def _nas_rows(report) -> list[list[str]]:
    return [
        ["folder", f"{report.path} ({report.bytes / 2**20:.1f} MiB of weights)"],
        ["architecture", "DeciLMForCausalLM (nemotron-nas); vLLM: trust_remote_code=True"],
        ["layers", str(report.layers)],
        ["query heads (global)", str(report.global_heads)],
        ["KV heads", _span(report.kv_heads)],
        ["MLP width", _span(report.intermediate)],
        ["attention removed", str(sum(1 for kv in report.kv_heads if kv == 0))],
        ["MLP removed", str(sum(1 for width in report.intermediate if width == 0))],
    ]


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}..{high} (per layer)"
