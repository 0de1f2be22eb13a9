"""Turn config dataclasses into argparse flags and back, so CLI and API cannot drift apart.

Each field becomes `--field-name` (or its metadata `flag`), plus its metadata aliases and the
snake_case spelling users of the older research scripts type. Defaults are suppressed: only the
flags a user actually gave come back, so recipe files and embedded-model defaults can fill the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any


def _flag_names(f: dataclasses.Field, with_snake: bool) -> list[str]:
    primary = f.metadata.get("flag") or f"--{f.name.replace('_', '-')}"
    names = [primary]
    snake = ["--" + primary[2:].replace("-", "_")] if with_snake else []
    for extra in (*snake, *f.metadata.get("aliases", ())):
        if extra not in names:
            names.append(extra)
    return names


def _value_type(hint: Any) -> Any:
    """int | None -> int; tuple[int, ...] -> str (parsed by the config); bool -> 'bool'."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and args:
        hint = args[0]
    if hint is bool:
        return "bool"
    if hint in (int, float, str):
        return hint
    return str


def add_config_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    dest_prefix: str,
    *,
    flags: dict[str, list[str]] | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """Add one flag per field of dataclass `cls`; dest is '<dest_prefix>.<field>'.

    `flags` overrides the spellings of some fields (e.g. `secateur eval` says --dataset, not
    --eval-dataset).
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("help") is None or f.name in skip:
            continue  # nested configs are added by their own call
        kind = _value_type(hints[f.name])
        # --no-x negations make snake_case twins of boolean flags noise, so those get none.
        names = (flags or {}).get(f.name) or _flag_names(f, with_snake=kind != "bool")
        default = f.default
        shown = "" if default is None or kind == "bool" else f" (default: {_show(default)})"
        common = {"dest": f"{dest_prefix}.{f.name}", "default": argparse.SUPPRESS}
        if kind == "bool":
            parser.add_argument(
                *names, action=argparse.BooleanOptionalAction, help=f.metadata["help"], **common
            )
        else:
            parser.add_argument(
                *names,
                type=kind,
                metavar=f.metadata.get("metavar") or f.name.upper(),
                help=f.metadata["help"] + shown,
                **common,
            )


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)


def collect(args: argparse.Namespace, dest_prefix: str) -> dict[str, Any]:
    """The values the user gave for one config section, keyed by field name."""
    prefix = dest_prefix + "."
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}
