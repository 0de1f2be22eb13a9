"""Progressive schedules: a CSV of tier mixes, one row per iteration, checked before any work.

Columns `iteration,dense,mid_2_4,topk,epochs` (as the progressive three-tier scripts write them;
`nm` is accepted for `mid_2_4`); extra columns such as `dense_to_2_4` are tolerated and ignored.
Rules: each row's shares sum to 1 (±1e-6), dense never rises, topk never falls, epochs >= 0.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

from secateur.errors import SecateurError

REQUIRED = ("iteration", "dense", "mid_2_4", "topk", "epochs")
ALIASES = {"nm": "mid_2_4", "mid": "mid_2_4", "2_4": "mid_2_4", "mid_nm": "mid_2_4"}
TOLERANCE = 1e-6


@dataclass(frozen=True)
class ScheduleRow:
    iteration: int
    dense: float
    mid: float
    topk: float
    epochs: float

    @property
    def shares(self) -> tuple[float, float, float]:
        return (self.dense, self.mid, self.topk)

    def tiers_arg(self) -> str:
        return ",".join(repr(s) for s in self.shares)

    def to_dict(self) -> dict:
        return asdict(self)


def _number(row: dict, column: str, where: str, kind=float):
    text = (row.get(column) or "").strip()
    try:
        return kind(text)
    except ValueError:
        raise SecateurError(f"{where}: {column} {text!r} is not a number") from None


def parse_schedule(text: str, name: str = "schedule") -> list[ScheduleRow]:
    """Rows of a schedule CSV, validated; errors name the file and line."""
    reader = csv.DictReader(line for line in text.splitlines() if line.strip())
    if reader.fieldnames is None:
        raise SecateurError(f"{name} is empty: give a header {','.join(REQUIRED)} and one row per iteration")
    reader.fieldnames = [ALIASES.get(c.strip().lower(), c.strip().lower()) for c in reader.fieldnames]
    missing = [c for c in REQUIRED if c not in reader.fieldnames]
    if missing:
        raise SecateurError(
            f"{name} lacks column(s) {', '.join(missing)}: the header must have {','.join(REQUIRED)}"
        )
    rows: list[ScheduleRow] = []
    for line, raw in enumerate(reader, start=2):
        where = f"{name} line {line}"
        row = ScheduleRow(
            iteration=_number(raw, "iteration", where, int),
            dense=_number(raw, "dense", where),
            mid=_number(raw, "mid_2_4", where),
            topk=_number(raw, "topk", where),
            epochs=_number(raw, "epochs", where),
        )
        _check_row(row, rows[-1] if rows else None, f"{where} (iteration {row.iteration})")
        rows.append(row)
    if not rows:
        raise SecateurError(f"{name} has a header but no rows: add one row per iteration")
    return rows


def _check_row(row: ScheduleRow, previous: ScheduleRow | None, where: str) -> None:
    if row.iteration < 1:
        raise SecateurError(f"{where}: iterations are numbered from 1")
    if previous is not None and row.iteration <= previous.iteration:
        raise SecateurError(
            f"{where}: iteration numbers must increase (previous row is {previous.iteration})"
        )
    if not all(0.0 <= s <= 1.0 for s in row.shares):
        raise SecateurError(f"{where}: dense, mid_2_4 and topk must each lie in [0, 1]")
    if abs(sum(row.shares) - 1.0) > TOLERANCE:
        raise SecateurError(
            f"{where}: dense + mid_2_4 + topk = {sum(row.shares):.6g}, must be 1 (±{TOLERANCE:g})"
        )
    if not row.epochs >= 0:
        raise SecateurError(f"{where}: epochs {row.epochs:g} must be >= 0")
    if previous is not None and row.dense > previous.dense + TOLERANCE:
        raise SecateurError(
            f"{where}: dense rises from {previous.dense:g} to {row.dense:g}; "
            "tiers only move down, dense never rises"
        )
    if previous is not None and row.topk < previous.topk - TOLERANCE:
        raise SecateurError(
            f"{where}: topk falls from {previous.topk:g} to {row.topk:g}; "
            "tiers only move down, topk never falls"
        )


REFERENCE_SCHEDULE = "progressive_three_tier.csv"  # the three-tier paper's 5 steps, shipped in the package


def load_schedule(path: str | Path | None) -> list[ScheduleRow]:
    """--schedule FILE, or without it the reference 5-step schedule (35% dense, 45% 2:4, 20% top-k)."""
    if path is None:
        from importlib.resources import files

        text = files("secateur").joinpath("recipes", REFERENCE_SCHEDULE).read_text()
        return parse_schedule(text, f"the reference schedule {REFERENCE_SCHEDULE}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise SecateurError(f"schedule file {path} does not exist")
    return parse_schedule(path.read_text(), path.name)


def schedule_csv(rows: list[ScheduleRow]) -> str:
    lines = [",".join(REQUIRED)]
    lines += [f"{r.iteration},{r.dense!r},{r.mid!r},{r.topk!r},{r.epochs!r}" for r in rows]
    return "\n".join(lines) + "\n"
