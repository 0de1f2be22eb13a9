"""What `secateur prune` prints at the end."""

from __future__ import annotations

from secateur.evaluation.summary import change, format_table, percent


def prune_summary(run) -> str:
    recipe, report = run.recipe, run.report
    cal = recipe.calibration
    lines = [
        f"secateur prune: {recipe.model} | {report.method} | {report.pattern} | "
        f"target sparsity {percent(report.target_sparsity)}",
        f"calibration: {cal.dataset}, {cal.nsamples} x {cal.seqlen} tokens, seed {cal.seed}"
        + (
            f" | skipped layers: {','.join(map(str, report.skipped_layers))}" if report.skipped_layers else ""
        ),
        "",
        layer_table(report.sparsity.per_layer()),
        "",
    ]
    rows = [["sparsity (targeted Linears)", percent(report.sparsity.actual)], ["verified", "yes"]]
    rows.append(["prune time", f"{report.timings['prune_s']:.1f}s"])
    if run.dense is not None:
        rows.append(
            [
                f"perplexity dense ({run.dense.dataset}, {run.dense.windows} x {run.dense.seqlen})",
                f"{run.dense.perplexity:.3f}",
            ]
        )
    if run.pruned is not None:
        rows.append(
            [
                f"perplexity pruned ({run.pruned.dataset}, {run.pruned.windows} x {run.pruned.seqlen})",
                f"{run.pruned.perplexity:.3f}",
            ]
        )
    if run.dense is not None and run.pruned is not None:
        rows.append(["perplexity change", change(run.dense.perplexity, run.pruned.perplexity)])
    tiers = report.tier_summary()
    if tiers:
        shares = " / ".join(f"{percent(tiers[t])} {t}" for t in ("dense", "nm", "topk"))
        rows.insert(1, ["tiles (dense / N:M / top-k)", shares])
    if recipe.prune.owl:
        rows.insert(1, ["OWL (M, lambda)", recipe.prune.owl])
    if run.out is not None:
        rows.append(["saved to", str(run.out)])
    lines.append(format_table(["summary", "value"], rows))
    return "\n".join(lines)


def layer_table(per_layer: list[dict]) -> str:
    """Per-layer target vs actual sparsity; tiles kept/pruned for block patterns."""
    tiered = any("tiles_topk" in row for row in per_layer)
    tiled = not tiered and any("tiles" in row for row in per_layer)
    headers = ["layer", "target", "actual", "zeros", "weights"]
    headers += ["tiles pruned", "tiles"] if tiled else []
    headers += ["dense tiles", "N:M tiles", "top-k tiles"] if tiered else []
    rows = []
    for row in per_layer:
        cells = [
            row["layer"],
            percent(row["target"]),
            percent(row["actual"]),
            f"{row['zeros']:,}",
            f"{row['numel']:,}",
        ]
        if tiled:
            cells += [f"{row.get('tiles_pruned', 0):,}", f"{row.get('tiles', 0):,}"]
        if tiered:
            cells += [f"{row.get(f'tiles_{tier}', 0):,}" for tier in ("dense", "nm", "topk")]
        rows.append(cells)
    return format_table(headers, rows)


def outcome_rows(run) -> list[list[str]]:
    """Perplexity before/after, its change, and where the model went: the tail of every summary."""
    rows = []
    if run.dense is not None:
        rows.append([f"perplexity dense ({run.dense.dataset})", f"{run.dense.perplexity:.3f}"])
    if run.pruned is not None:
        rows.append([f"perplexity pruned ({run.pruned.dataset})", f"{run.pruned.perplexity:.3f}"])
    if run.dense is not None and run.pruned is not None:
        rows.append(["perplexity change", change(run.dense.perplexity, run.pruned.perplexity)])
    if run.out is not None:
        rows.append(["saved to", str(run.out)])
    return rows


def structured_summary(run) -> str:
    """Per-layer kept widths and the parameter accounting of a structured prune."""
    from secateur.structured.outputs import analysis

    recipe, report = run.recipe, run.report.inner
    config = recipe.structured
    summary = report.summary()
    lines = [
        f"secateur prune: {recipe.model} | structured | importance {config.importance} | "
        f"pruning ratio {percent(config.pruning_ratio)} | T {config.temperature:g}"
        + (f" | tau {summary['tau']:.4g}" if summary["tau"] is not None else "")
        + (" | uniform" if config.uniform else ""),
        "",
    ]
    rows = []
    for row in analysis(report)["layers"]:
        rows.append(
            [
                row["layer"],
                f"{row['heads']['after']}/{row['heads']['before']}",
                f"{row['kv_heads']['after']}/{row['kv_heads']['before']}",
                f"{row['channels']['after']}/{row['channels']['before']}",
                f"{row['params']['after']:,}",
                "frozen" if not row["planned"] else "",
            ]
        )
    lines += [format_table(["layer", "heads", "KV heads", "MLP channels", "params", ""], rows), ""]
    table = [
        ["parameters", f"{summary['params_before']:,} -> {summary['params_after']:,}"],
        ["removed (of all parameters)", percent(summary["ratio_of_total"])],
        ["removed (of decoder Linears)", percent(summary["ratio_of_prunable"])],
        ["widths", "uniform (standard config)" if summary["uniform"] else "heterogeneous (per_layer_config)"],
        ["prune time", f"{run.report.timings['prune_s']:.1f}s"],
    ]
    table += outcome_rows(run)
    lines.append(format_table(["summary", "value"], table))
    return "\n".join(lines)


def depth_summary(run) -> str:
    """Window scores and what depth pruning removed."""
    report = run.report
    data = report.to_dict()
    lines = [f"secateur prune: {run.recipe.model} | depth | removed layers {report.removed}", ""]
    if report.scores:
        unit = "calibration perplexity without the window" if report.score == "ppl" else "block influence"
        last = len(report.removed) - 1
        rows = [
            [
                start,
                f"{start}-{start + last}",
                f"{value:.4f}",
                "removed" if start == report.removed[0] else "",
            ]
            for start, value in sorted(report.scores.items())
        ]
        lines += [format_table(["start", "layers", unit, ""], rows), ""]
    table = [
        [
            "parameters",
            f"{report.params_before:,} -> {report.params_after:,} "
            f"({percent(data['ratio_of_total'])} removed)",
        ],
        ["prune time", f"{report.timings['prune_s']:.1f}s"],
    ]
    table += outcome_rows(run)
    lines.append(format_table(["summary", "value"], table))
    return "\n".join(lines)


def osscar_summary(run) -> str:
    """Per-layer reconstruction errors of OSSCAR's channel choice, and the parameter change."""
    data = run.report.data
    rows = [
        [
            layer["layer"],
            layer["kept"],
            f"{layer['error_wanda_no_refit']:.4g}",
            f"{layer['error_search'][0]:.4g}",
            f"{layer['error_search'][-1]:.4g}",
            len(layer["error_search"]) - 1,
        ]
        for layer in data["layers"]
    ]
    headers = ["layer", "channels kept", "error: Wanda, no refit", "Wanda + refit", "after search", "swaps"]
    table = [
        ["parameters", f"{data['params_before']:,} -> {data['params_after']:,}"],
        ["prune time", f"{data['seconds']:.1f}s"],
    ]
    table += outcome_rows(run)
    ratio = percent(run.recipe.osscar.mlp_pruning_ratio)
    title = f"secateur prune: {run.recipe.model} | osscar | MLP ratio {ratio}"
    return "\n".join([title, "", format_table(headers, rows), "", format_table(["summary", "value"], table)])
