"""The `secateur` command: subcommands only parse arguments and call secateur.api."""

from __future__ import annotations

import argparse
import sys

from secateur import __version__


def build_parser() -> argparse.ArgumentParser:
    from secateur.cli import (
        apply_plan,
        bench,
        catalogue,
        compare,
        eval,
        finetune,
        progressive,
        prune,
        recover,
        report_dir,
    )

    parser = argparse.ArgumentParser(
        prog="secateur", description="Prune Hugging Face causal language models, measure what it cost."
    )
    parser.add_argument("--version", action="version", version=f"secateur {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    prune.add_parser(subparsers)
    eval.add_parser(subparsers)
    compare.add_parser(subparsers)
    finetune.add_parser(subparsers)
    progressive.add_parser(subparsers)
    recover.add_parser(subparsers)
    bench.add_parser(subparsers)
    report_dir.add_parser(subparsers)
    apply_plan.add_parser(subparsers)
    catalogue.add_parsers(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from secateur.errors import SecateurError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except SecateurError as exc:
        print(f"secateur: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("secateur: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
