"""Tables for people: Markdown pipe tables that read well in a terminal and paste into docs."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Numbers right-aligned, text left-aligned; every cell already formatted or str()-able."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in cells) and bool(cells) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "| " + " | ".join(parts) + " |"

    dashes = ["-" * (w + 1) + ":" if num else "-" * (w + 2) for w, num in zip(widths, numeric, strict=True)]
    rule = "|" + "|".join(dashes) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("%").replace(",", "").lstrip("+"))
    except ValueError:
        return text in ("-", "")
    return True


def percent(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def change(before: float, after: float) -> str:
    return f"{(after - before) / before * 100:+.1f}%"
