"""LoRA adapters on disk: written beside their base model, loaded back as base + adapter.

An adapter folder holds peft's adapter_config.json + adapter_model.safetensors, the tokenizer and
secateur.json. Its `base_model_name_or_path` is what secateur was given (an absolute folder, a hub id
or an embedded name), so `secateur eval --model ADAPTER_DIR` (and every other command) finds the base,
loads it the secateur way (heterogeneous widths included) and merges the adapter in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

from secateur.errors import SecateurError
from secateur.export.save import MANIFEST, atomic_output_dir

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_folder(location: str | Path) -> bool:
    path = Path(location).expanduser()
    return (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file()


def base_reference(model_name: str) -> str:
    """A local base model is referenced by absolute path, so the adapter folder can move."""
    path = Path(model_name).expanduser()
    return str(path.resolve()) if path.exists() else model_name


def save_adapter(wrapped, tokenizer, out: str | Path, base: str, manifest: dict, overwrite: bool) -> Path:
    with atomic_output_dir(out, overwrite) as tmp:
        wrapped.save_pretrained(tmp)
        config_path = tmp / ADAPTER_CONFIG
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = base_reference(base)
        config_path.write_text(json.dumps(config, indent=2) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return Path(out).expanduser()


def load_with_adapter(location: str, dtype: str, device, load_base):
    """Base (through `load_base`, i.e. secateur's loader) + adapter, merged: a plain model."""
    from peft import PeftModel

    config = json.loads((Path(location) / ADAPTER_CONFIG).read_text())
    base_name = config.get("base_model_name_or_path")
    if not base_name:
        raise SecateurError(f"{location}/{ADAPTER_CONFIG} names no base model (base_model_name_or_path)")
    if is_adapter_folder(base_name):
        raise SecateurError(f"the base of adapter {location} is itself an adapter; merge it first")
    loaded = load_base(base_name, dtype, device)
    loaded.model = PeftModel.from_pretrained(loaded.model, location).merge_and_unload()
    loaded.model.eval()
    return loaded
