"""The `secateur` command: subcommands only parse arguments and call secateur.api."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from secateur import __version__


class _Parser(argparse.ArgumentParser):
    """No abbreviations: `--eval` must not quietly become `--eval-windows`, nor a typo another flag."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from secateur.cli import (
        apply_plan,
        bench,
        catalogue,
        compare,
        eval,
        export,
        finetune,
        progressive,
        prune,
        recover,
        report_dir,
    )

    parser = _Parser(
        prog="secateur", description="Prune Hugging Face causal language models, measure what it cost."
    )
    parser.add_argument("--version", action="version", version=f"secateur {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    prune.add_parser(subparsers)
    eval.add_parser(subparsers)
    compare.add_parser(subparsers)
    finetune.add_parser(subparsers)
    progressive.add_parser(subparsers)
    recover.add_parser(subparsers)
    bench.add_parser(subparsers)
    export.add_parser(subparsers)
    report_dir.add_parser(subparsers)
    apply_plan.add_parser(subparsers)
    catalogue.add_parsers(subparsers)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, `kill`), raised like Ctrl-C so every clean-up block runs."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def _silence_libraries() -> None:
    """--quiet: no progress bars from transformers/huggingface_hub either (e.g. "Loading weights")."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    from secateur.errors import SecateurError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    if getattr(args, "quiet", False):
        _silence_libraries()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        return args.run(args)
    except SecateurError as exc:
        print(f"secateur: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        stopped = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"secateur: {stopped}; no partial output was left", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
