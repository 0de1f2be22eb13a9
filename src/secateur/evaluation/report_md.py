"""`secateur report DIR`: any secateur output folder as a Markdown report with plots.

Each section reads one thing a command leaves behind and is skipped when it is absent:
secateur.json (recipe, perplexity, per-layer sparsity), structured/depth/OSSCAR analyses, tier maps,
a `compare` table, `bench` results (in DIR or DIR/bench), progressive iterations. Plots that a
command already drew are copied, so the report folder stands alone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from secateur.evaluation import report_plots
from secateur.evaluation.summary import format_table
from secateur.export.save import MANIFEST

Section = Callable[[Path, Path], list[str]]


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _image(out: Path, name: str, caption: str) -> list[str]:
    return [f"![{caption}]({name})", ""]


def _copy(source: Path, out: Path, caption: str) -> list[str]:
    if not source.is_file():
        return []
    shutil.copy2(source, out / source.name)
    return _image(out, source.name, caption)


def overview(folder: Path, out: Path) -> list[str]:
    manifest = _json(folder / MANIFEST) or _json(folder / "progressive.json") or {}
    recipe = next((manifest[k] for k in ("recipe", "finetune_recipe", "recover_recipe") if k in manifest), {})
    lines = [f"# secateur report: {folder.name}", ""]
    rows = [["folder", str(folder)]]
    if recipe.get("model"):
        rows.append(["from model", str(recipe["model"])])
    model = manifest.get("model", {})
    if model.get("parameters"):
        rows.append(["parameters", f"{model['parameters']:,}"])
    prune = manifest.get("prune", {})
    if prune.get("method"):
        rows.append(["method", f"{prune['method']} {prune.get('pattern') or ''}".strip()])
    for key in ("created", "secateur_version"):
        if manifest.get(key):
            rows.append([key.replace("_", " "), str(manifest[key])])
    lines += [format_table(["", "value"], rows), ""]
    if manifest.get("command"):
        lines += ["```", " ".join(map(str, manifest["command"])), "```", ""]
    return lines


def perplexity(folder: Path, out: Path) -> list[str]:
    results = (_json(folder / MANIFEST) or {}).get("perplexity") or {}
    rows = [
        [k, f"{v['perplexity']:.3f}", v.get("dataset", ""), v.get("windows", "")]
        for k, v in results.items()
        if isinstance(v, dict)
    ]
    if not rows:
        return []
    return ["## Perplexity", "", format_table(["model", "perplexity", "dataset", "windows"], rows), ""]


def sparsity(folder: Path, out: Path) -> list[str]:
    prune = (_json(folder / MANIFEST) or {}).get("prune") or {}
    layers = (prune.get("sparsity") or {}).get("layers")
    if not layers:
        return []
    report_plots.layer_sparsity(layers, out / "layer_sparsity.png")
    total = prune["sparsity"].get("actual", 0.0)
    lines = ["## Sparsity", "", f"Decoder Linears: {total:.2%} of weights are zero.", ""]
    return (
        lines
        + _image(out, "layer_sparsity.png", "per-layer sparsity")
        + _copy(folder / "tier_maps.png", out, "tier maps")
    )


def structured(folder: Path, out: Path) -> list[str]:
    lines = []
    analysis = _json(folder / "pruning_analysis.json")
    if analysis:
        lines += ["## Structured pruning", "", *_copy(folder / "kept_width.png", out, "kept width per layer")]
    depth = _json(folder / "depth_analysis.json")
    if depth:
        lines += [
            "## Depth pruning",
            "",
            f"Removed layers: {depth['removed_layers']}; "
            f"{depth['params_before']:,} -> {depth['params_after']:,} parameters.",
            "",
        ]
        if depth.get("window_scores"):
            scores = {int(k): v for k, v in depth["window_scores"].items()}
            report_plots.per_layer_values(
                {depth["score"]: scores},
                out / "depth_scores.png",
                "score (lower: safer to remove)",
                "window scores by first layer",
            )
            lines += _image(out, "depth_scores.png", "depth window scores")
    osscar = _json(folder / "osscar_analysis.json")
    if osscar and osscar.get("layers"):
        series = {
            "Wanda channels, no refit": {r["layer"]: r["error_wanda_no_refit"] for r in osscar["layers"]},
            "OSSCAR (search + refit)": {r["layer"]: r["error_search"][-1] for r in osscar["layers"]},
        }
        report_plots.per_layer_values(
            series,
            out / "osscar_errors.png",
            "reconstruction error",
            "down_proj reconstruction error per layer",
            log=True,
        )
        lines += ["## OSSCAR", "", *_image(out, "osscar_errors.png", "OSSCAR reconstruction errors")]
    return lines


def comparison(folder: Path, out: Path) -> list[str]:
    data = _json(folder / "comparison.json")
    if not data or not data.get("rows"):
        return []
    rows = [[r["name"], f"{r['actual_sparsity']:.2%}", f"{r['perplexity']:.3f}"] for r in data["rows"]]
    lines = ["## Comparison", "", format_table(["run", "sparsity", "perplexity"], rows), ""]
    return lines + _copy(folder / "perplexity_vs_sparsity.png", out, "perplexity against sparsity")


def speed(folder: Path, out: Path) -> list[str]:
    for where in (folder, folder / "bench"):
        data = _json(where / "bench.json")
        if data:
            break
    else:
        return []
    lines = ["## Speed", "", f"Measured on {data['device']}.", ""]
    if data.get("speedups"):
        rows = [
            [
                s["kernels"],
                f"{s['batch_size']}x{s['prompt_len']}",
                f"{s['prefill']:.2f}x",
                f"{s['decode']:.2f}x" if s.get("decode") else "-",
            ]
            for s in data["speedups"]
        ]
        lines += [format_table(["kernels", "batch x prompt", "prefill speedup", "decode speedup"], rows), ""]
    for m in data.get("models", []):
        lines.append(
            f"- {m['label']}: {m['name']}, {m['parameters']:,} parameters; 2:4 kernels: {m['sparse_kernels']}"
        )
    return [*lines, "", *_copy(where / "bench.png", out, "throughput before/after")]


def progressive(folder: Path, out: Path) -> list[str]:
    logs = [(p, _json(p) or {}) for p in folder.glob("iter*/log.json")]
    logs = sorted((log for log in logs if "iteration" in log[1]), key=lambda log: log[1]["iteration"])
    if not logs:
        return []
    labels = [f"iter{log['iteration']}" for _, log in logs]
    series = {
        kind: [(log.get("perplexity") or {}).get(kind) for _, log in logs] for kind in ("pruned", "finetuned")
    }
    report_plots.perplexity_steps(labels, series, out / "progressive.png")
    rows = [
        [label, f"{log.get('sparsity', 0):.2%}", *(f"{v:.2f}" if v else "-" for v in values)]
        for label, (_, log), *values in zip(labels, logs, series["pruned"], series["finetuned"], strict=True)
    ]
    table = format_table(["iteration", "sparsity", "pruned ppl", "fine-tuned ppl"], rows)
    return [
        "## Progressive schedule",
        "",
        table,
        "",
        *_image(out, "progressive.png", "perplexity by iteration"),
    ]


SECTIONS: tuple[Section, ...] = (overview, perplexity, sparsity, structured, comparison, progressive, speed)


def write_report(folder: Path, out: Path) -> Path:
    lines: list[str] = []
    for section in SECTIONS:
        lines += section(folder, out)
    (out / "report.md").write_text("\n".join(lines).rstrip() + "\n")
    return out / "report.md"
