"""Writing a streamed model (--stream): the layers already on disk become the output's shards.

Each decoder layer was written to the run's layer store as it was pruned; the output is a sharded
safetensors checkpoint with an index: one shard per decoder layer (hard-linked from the store when
it is on the same file system, else copied) and one for everything else, so no step holds more
than one layer in memory. Names are the checkpoint's (as save_pretrained writes them).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from secateur.models.streaming import INDEX, LayerStream


def _place(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, target)


def _tensor_names(file: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(file), "pt") as handle:
        return list(handle.keys())


def write_streamed(model, stream: LayerStream, folder: Path) -> None:
    """config.json, generation config, shards and index of a streamed model into `folder`."""
    layers = stream.layers()
    count = len(layers)
    total = count + 1
    weight_map: dict[str, str] = {}
    size = 0
    for index in range(count):
        name = f"model-{index + 1:05d}-of-{total:05d}.safetensors"
        if index not in stream.written:  # never changed: written once from the source
            _save_unchanged(stream, index)
        _place(stream.written[index], folder / name)
        for key in _tensor_names(folder / name):
            weight_map[key] = name
        size += (folder / name).stat().st_size
    prefix = f"{stream.layers_path}."
    outside, seen = {}, set()
    for n, t in model.state_dict().items():
        if n.startswith(prefix) or t.data_ptr() in seen:  # a tied LM head is the embedding: once
            continue
        seen.add(t.data_ptr())
        outside[stream.to_checkpoint.get(n, n)] = t.detach().contiguous()
    name = f"model-{total:05d}-of-{total:05d}.safetensors"
    # Nothing outside the layers changes in a streamed run (mask methods): those tensors are copied
    # from the source a block of rows at a time, so the embedding's pages are never all resident.
    from_source = {key: _blocks(stream, key) for key in outside if key in stream.source.files}
    write_safetensors(outside, folder / name, from_source)
    weight_map.update(dict.fromkeys(outside, name))
    size += (folder / name).stat().st_size
    index = {"metadata": {"total_size": size}, "weight_map": dict(sorted(weight_map.items()))}
    (folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    model.config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)


_DTYPE_NAMES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}  # fmt: skip


def write_safetensors(
    tensors: dict[str, torch.Tensor],
    path: Path,
    chunks: dict[str, Callable[[], Iterator[torch.Tensor]]] | None = None,
) -> None:
    """A safetensors file written tensor by tensor from the tensors' own memory.

    safetensors.torch.save_file first turns every tensor into bytes (a copy of the embedding, about
    1 GB for a 150k vocabulary in fp32, more than the rest of a streamed run holds), so the format's
    documented layout is written here directly: an 8-byte little-endian header length, the JSON
    header (names, dtypes, shapes, byte offsets; padded with spaces to a multiple of 8), the data.
    `chunks[name]()`, where given, yields that tensor's data in row blocks (read from the source
    checkpoint a block at a time) instead of from the tensor's memory.
    """
    chunks = chunks or {}
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, tensor in tensors.items():
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _DTYPE_NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as handle:
        handle.write(len(encoded).to_bytes(8, "little"))
        handle.write(encoded)
        for name, tensor in tensors.items():
            for block in chunks[name]() if name in chunks else (tensor,):
                flat = block.detach().to("cpu", tensor.dtype).contiguous().reshape(-1)
                if flat.numel():  # bytes as they lie in memory (little-endian machines), no copy
                    handle.write(memoryview(flat.view(torch.uint8).numpy()))


def _blocks(stream: LayerStream, name: str, rows: int = 4096) -> Callable[[], Iterator[torch.Tensor]]:
    def read() -> Iterator[torch.Tensor]:
        from safetensors import safe_open

        with safe_open(str(stream.source.files[name]), "pt") as handle:
            part = handle.get_slice(name)
            length = part.get_shape()[0] if part.get_shape() else 0
            if length == 0:
                yield handle.get_tensor(name)
                return
            for start in range(0, length, rows):
                yield part[start : start + rows]

    return read


def _save_unchanged(stream: LayerStream, index: int) -> None:
    """A layer no pass wrote: read it from the source and write it to the store as it is."""
    with stream.visiting(index, torch.device("cpu"), write=True):
        pass
