"""`secateur report DIR`: a Markdown report with plots of any secateur output folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from secateur.errors import SecateurError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="turn an output folder into a Markdown report with plots",
        description="Reads what secateur commands leave in DIR (secateur.json, analyses, tier maps, "
        "comparison, bench results, progressive iterations) and writes report.md with PNG plots.",
    )
    parser.add_argument("folder", metavar="DIR", help="a secateur output folder")
    parser.add_argument("--out", help="report folder (default: DIR/report)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from secateur.evaluation.report_md import write_report
    from secateur.export.save import atomic_output_dir

    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise SecateurError(f"{folder} is not a folder; give a secateur output folder")
    out = Path(args.out).expanduser() if args.out else folder / "report"
    with atomic_output_dir(out, args.overwrite) as tmp:
        write_report(folder, tmp)
        if len((tmp / "report.md").read_text().splitlines()) < 8:
            raise SecateurError(f"{folder} holds no secateur results (no secateur.json, analyses or bench)")
    print(f"wrote {out / 'report.md'}")
    return 0
