"""The table `secateur progressive` prints at the end, and writes as summary.md/summary.json."""

from __future__ import annotations

from secateur.evaluation.summary import format_table, percent


def _ppl(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def progressive_table(run) -> str:
    headers = [
        "iter",
        "dense",
        "N:M",
        "top-k",
        "sparsity",
        "ppl pruned",
        "ppl finetuned",
        "steps",
        "re-tier s",
        "prune s",
        "finetune s",
    ]
    rows = []
    for log in run.logs:
        tiers, ppl, timings = log["tiers"], log["perplexity"], log["timings"]
        rows.append(
            [
                log["iteration"],
                percent(tiers["dense"], 1),
                percent(tiers["nm"], 1),
                percent(tiers["topk"], 1),
                percent(log["sparsity"]),
                _ppl(ppl["pruned"]),
                _ppl(ppl["finetuned"]),
                log["finetune"]["steps"],
                f"{timings.get('retier_s', 0):.1f}",
                f"{timings['prune_s']:.1f}",
                f"{timings['finetune_s']:.1f}",
            ]
        )
    lines = [f"secateur progressive: {run.out}"]
    if run.dense_perplexity is not None:
        lines.append(f"dense perplexity: {run.dense_perplexity:.3f}")
    if run.resumed_after:
        lines.append(f"resumed after {run.resumed_after} completed iteration(s)")
    lines += ["", format_table(headers, rows)]
    return "\n".join(lines)
