"""Loading a model by name: an embedded model, a local Hugging Face folder, or a hub id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from secateur.errors import SecateurError
from secateur.export.adapters import is_adapter_folder, load_with_adapter
from secateur.export.structured import is_heterogeneous, load_pruned
from secateur.models.adapter import ModelAdapter, attach_spec, spec_for
from secateur.models.discovery import check_discovered, discover_spec
from secateur.models.embedded import embedded_model
from secateur.models.streaming import open_streamed
from secateur.registry import REGISTRY

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    adapter: ModelAdapter
    name: str  # what the user asked for
    location: str  # the folder or hub id it was loaded from


def locate_model(name: str) -> str:
    """Resolve a --model value to a loadable folder or hub id, fetching embedded models once."""
    path = Path(name).expanduser()
    if path.exists():
        if is_adapter_folder(path):
            return str(path)
        if not (path / "config.json").is_file():
            raise SecateurError(f"{path} is not a Hugging Face model folder (it has no config.json)")
        return str(path)
    embedded = embedded_model(name)
    if embedded is not None:
        return str(embedded.ensure())
    if _HUB_ID.match(name) and not name.startswith("."):
        return name
    raise SecateurError(
        f"model path {name} does not exist; give a model folder, a hub id (org/name), "
        f"or an embedded model (see `secateur models`)"
    )


def resolve_dtype(dtype: str, device: torch.device, checkpoint_dtype: object = None) -> torch.dtype:
    """'auto': fp32 on CPU (bf16 is 4-5x slower there), the checkpoint's dtype on an accelerator."""
    if dtype != "auto":
        if dtype not in _DTYPES:
            raise SecateurError(f"--dtype must be auto, float32, float16 or bfloat16, got {dtype!r}")
        return _DTYPES[dtype]
    if device.type == "cpu":
        return torch.float32
    if isinstance(checkpoint_dtype, torch.dtype):
        return checkpoint_dtype
    return _DTYPES.get(str(checkpoint_dtype).replace("torch.", ""), torch.float16)


def load_model(
    name: str,
    dtype: str = "auto",
    device: torch.device | None = None,
    trust_remote_code: bool = False,
    stream: bool = False,
) -> LoadedModel:
    """Load model + tokenizer on the CPU (layers visit the compute device one at a time).

    `trust_remote_code`: run the modeling code that ships with the checkpoint; an architecture
    secateur has no row for is then described from its modules (models.discovery), mask methods only.
    `stream`: leave the decoder layers on disk until their turn (models.streaming).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    location = locate_model(name)
    if stream:
        location = _check_streamable(name, location, trust_remote_code)

    if is_adapter_folder(location):  # a LoRA adapter saved by `secateur recover`: base + adapter
        loaded = load_with_adapter(location, dtype, device, load_model)
        loaded.adapter = ModelAdapter(loaded.model)
        loaded.name, loaded.location = name, location
        return loaded
    _check_local_config(location, trust_remote_code)
    if is_heterogeneous(location):  # a structurally pruned model with per-layer widths
        return _read_weights(location, lambda: _load_heterogeneous(name, location, dtype, device))
    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise SecateurError(
            f"could not load model {name!r}: {reason}. Offline? Give a local model folder "
            f"or an embedded model (see `secateur models`)"
        ) from None
    model_type = str(getattr(config, "model_type", None))
    unknown = REGISTRY.find("architecture", model_type) is None
    if unknown and not trust_remote_code:
        spec_for(model_type)  # raises: unsupported architectures fail before the weights load
    checkpoint_dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    torch_dtype = resolve_dtype(dtype, device or torch.device("cpu"), checkpoint_dtype)
    if stream:
        model = _read_weights(location, lambda: open_streamed(location, _layers_path, torch_dtype))
    else:
        model = _read_weights(
            location,
            lambda: AutoModelForCausalLM.from_pretrained(
                location, dtype=torch_dtype, trust_remote_code=trust_remote_code
            ),
        )
    model.eval()
    if unknown:  # remote code: describe it from its modules
        spec = discover_spec(model, model_type)
        check_discovered(model, spec)
        attach_spec(model, spec)
    tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    return LoadedModel(model, tokenizer, ModelAdapter(model), name, location)


def loaded_size(location: str, dtype: str, device: torch.device) -> int | None:
    """Bytes the model's weights take once loaded (its safetensors files, scaled to the dtype it
    loads in); None when that cannot be known without downloading (a hub id) or is not safetensors."""
    import json

    folder = Path(location)
    files = list(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    size = sum(file.stat().st_size for file in files)
    config = json.loads((folder / "config.json").read_text())
    stored = _DTYPES.get(str(config.get("dtype") or config.get("torch_dtype") or "float32"), torch.float32)
    target = resolve_dtype(dtype, device, stored)
    return size * target.itemsize // stored.itemsize


def _layers_path(model: torch.nn.Module) -> str:
    return ModelAdapter(model).spec.layers_path


def _check_streamable(name: str, location: str, trust_remote_code: bool) -> str:
    """--stream reads a local safetensors folder layer by layer (a hub id is downloaded first)."""
    if trust_remote_code:
        raise SecateurError("--stream and --trust-remote-code do not combine yet: load remote code in RAM")
    if not Path(location).is_dir():
        from huggingface_hub import snapshot_download

        location = snapshot_download(location, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"])
    if is_adapter_folder(location) or is_heterogeneous(location):
        raise SecateurError(
            f"--stream reads plain checkpoints; {name} is a LoRA adapter or has per-layer widths: "
            "load it without --stream"
        )
    return location


def _check_local_config(location: str, trust_remote_code: bool = False) -> None:
    """A local folder's config.json must parse and name a supported architecture, before any weights."""
    import json

    path = Path(location) / "config.json"
    if not path.is_file():
        return  # a hub id: transformers fetches and checks it
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SecateurError(f"{path} is not valid JSON ({exc}): re-save or re-download the model") from None
    if not isinstance(config, dict):
        raise SecateurError(f"{path} is not a model config (a JSON object): re-save or re-download the model")
    if trust_remote_code and "auto_map" in config:
        return  # its own code describes it; checked once the model is built
    spec_for(config.get("model_type"))


def _read_weights(location: str, load):
    """Run `load`; a truncated/corrupted safetensors file or a .bin pickle that holds more than tensors
    (loaded with weights_only=True: its code never runs) becomes one line that says what to do."""
    import pickle

    from safetensors import SafetensorError

    try:
        return load()
    except pickle.UnpicklingError:
        raise SecateurError(
            f"the .bin checkpoint in {location} holds more than tensors; secateur reads pickles only with "
            "weights_only=True and never runs their code: convert it to safetensors from a trusted copy"
        ) from None
    except (SafetensorError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise SecateurError(
            f"the weights in {location} are truncated or corrupted ({first}): re-download or re-save them"
        ) from None


def _load_heterogeneous(name: str, location: str, dtype: str, device: torch.device | None) -> LoadedModel:
    import json

    from transformers import AutoTokenizer

    config = json.loads((Path(location) / "config.json").read_text())
    spec_for(config.get("model_type"))
    checkpoint_dtype = config.get("dtype") or config.get("torch_dtype")
    model = load_pruned(location, resolve_dtype(dtype, device or torch.device("cpu"), checkpoint_dtype))
    tokenizer = AutoTokenizer.from_pretrained(location, config=model.config)  # not the per-layer config.json
    return LoadedModel(model, tokenizer, ModelAdapter(model), name, location)
