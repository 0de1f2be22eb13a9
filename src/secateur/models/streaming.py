"""Models larger than RAM: decoder layers stay on disk until their turn (`--stream`).

The model is built with its parameters on the `meta` device (accelerate's `init_empty_weights`;
buffers such as rotary tables are real and small). Everything outside the decoder layers
(embeddings, final norm, LM head) is read from the checkpoint at once; a decoder layer is read from
the safetensors shards (memory-mapped) just before the pipeline visits it, written to the run's
own layer store once it has been changed, and put back on `meta`. Later passes (sparsity reports,
perplexity) read each layer from wherever it is now: the store if written, else the checkpoint.

Checkpoint names can differ from the model's own (transformers renames some families' weights on
load, e.g. Gemma 3 multimodal); `model_names` reads the renaming off the model itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from secateur.errors import SecateurError

ATTACHED = "_secateur_stream"
INDEX = "model.safetensors.index.json"


def model_names(model: nn.Module) -> dict[str, str]:
    """checkpoint name -> the model's parameter name, for the weights save_pretrained renames
    (with transformers' conversion mapping, reversed; read off the model, meta tensors included)."""
    try:
        from transformers.core_model_loading import revert_weight_conversion
    except ImportError:  # a transformers without conversion mappings saves the model's own names
        return {}
    own = model.state_dict()
    names = {id(tensor): name for name, tensor in own.items()}
    saved = revert_weight_conversion(model, dict(own))
    return {
        key: names[id(tensor)]
        for key, tensor in saved.items()
        if id(tensor) in names and key != names[id(tensor)]
    }


class Shards:
    """The tensors of a safetensors checkpoint folder (one file or sharded with an index), by name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        index = folder / INDEX
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            self.files = {name: folder / file for name, file in weight_map.items()}
        elif (folder / "model.safetensors").is_file():
            from safetensors import safe_open

            with safe_open(str(folder / "model.safetensors"), "pt") as handle:
                self.files = dict.fromkeys(handle.keys(), folder / "model.safetensors")
        else:
            raise SecateurError(
                f"--stream reads safetensors checkpoints; {folder} has none (convert it with "
                "save_pretrained first)"
            )

    def read(self, names: list[str], dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
        found: dict[str, torch.Tensor] = {}
        by_file: dict[Path, list[str]] = {}
        for name in names:
            by_file.setdefault(self.files[name], []).append(name)
        for file, wanted in by_file.items():
            found.update(read_tensors(file, wanted, dtype, device))
        return found


def read_tensors(file: Path, names: list[str], dtype: torch.dtype, device: torch.device) -> dict:
    """Some tensors of one safetensors file (memory-mapped: only these are read), floats cast."""
    from safetensors import safe_open

    found = {}
    with safe_open(str(file), "pt") as handle:
        for name in names:
            tensor = handle.get_tensor(name)
            found[name] = tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None)
    return found


def _all_tensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(file))


class LayerStream:
    """Where each decoder layer's weights are: the source checkpoint, or the run's layer store."""

    def __init__(self, model: nn.Module, layers_path: str, source: Shards, dtype: torch.dtype) -> None:
        self.model = model
        self.layers_path = layers_path
        self.source = source
        self.dtype = dtype
        self.store: Path | None = None  # set by the run: where changed layers are written
        self.written: dict[int, Path] = {}
        self.resume_key: str | None = None  # set by a run that can resume: what it computes
        # The checkpoint's index of each decoder layer now (depth pruning deletes layers).
        self.origin: list[int] = list(range(len(self.layers())))
        renamed = model_names(model)
        self.to_model = {ckpt: renamed.get(ckpt, ckpt) for ckpt in source.files}
        self.to_checkpoint = {name: ckpt for ckpt, name in self.to_model.items()}

    def check_layout(self) -> None:
        """Every tensor of a layer must be one tensor of the checkpoint (not merged on load, as
        Mixtral's per-expert weights are), or layers cannot be read one at a time."""
        missing = [n for n in self.layer_names(0) if n not in self.to_checkpoint]
        if missing:
            raise SecateurError(
                f"{self.source.folder} stores {missing[0]} in another layout than the model (transformers "
                "converts it while loading), so --stream cannot read it layer by layer: load it without "
                "--stream, or re-save it with save_pretrained from a transformers that keeps that layout"
            )

    def layers(self) -> nn.ModuleList:
        return self.model.get_submodule(self.layers_path)

    def _prefix(self, index: int) -> str:
        return f"{self.layers_path}.{index}."

    def layer_names(self, index: int) -> list[str]:
        """The model names of the layer's saved tensors (its state_dict, persistent buffers too)."""
        return [self._prefix(index) + name for name in self.layers()[index].state_dict()]

    def _source_names(self, index: int) -> list[str]:
        """The layer's tensors as the source checkpoint names them (under its original index)."""
        now, then = self._prefix(index), self._prefix(self.origin[index])
        return [then + name[len(now) :] for name in self.layer_names(index)]

    def removed(self, indices: list[int]) -> None:
        """Decoder layers were deleted (and the rest renumbered): follow them. A layer already in
        the store is written again under its new number (its tensors' names hold the number)."""
        gone = set(indices)
        kept = [i for i in range(len(self.origin)) if i not in gone]
        self.origin = [self.origin[i] for i in kept]
        written, self.written = self.written, {}
        for new, old in enumerate(kept):
            if old in written:
                self.written[new] = self._renumbered(written[old], old, new)

    def _renumbered(self, path: Path, old: int, new: int) -> Path:
        if old == new:
            return path
        from safetensors.torch import save_file

        then, now = self._prefix(old), self._prefix(new)
        with_model_names = {self.to_model.get(k, k): v for k, v in _all_tensors(path).items()}
        renamed = {now + name[len(then) :]: tensor for name, tensor in with_model_names.items()}
        target = self.store / f"layer-{new:05d}.safetensors"
        partial = target.with_suffix(".partial")
        save_file({self.to_checkpoint.get(k, k): v for k, v in renamed.items()}, str(partial))
        os.replace(partial, target)
        return target

    def load(self, index: int, device: torch.device) -> nn.Module:
        """Read layer `index` onto `device` (from the store if it was written there)."""
        layer = self.layers()[index]
        names = self.layer_names(index)
        if index in self.written:
            saved = [self.to_checkpoint.get(n, n) for n in names]
            read = read_tensors(self.written[index], saved, self.dtype, device)
            tensors = {self.to_model.get(k, k): v for k, v in read.items()}
        else:
            sources = self._source_names(index)
            missing = [n for n in sources if n not in self.to_checkpoint]
            if missing:
                raise SecateurError(
                    f"the checkpoint in {self.source.folder} lacks {missing[0]}: it does not match its "
                    "config; re-download or re-save it"
                )
            read = self.source.read([self.to_checkpoint[n] for n in sources], self.dtype, device)
            by_source = {self.to_model[k]: v for k, v in read.items()}
            tensors = {name: by_source[source] for name, source in zip(names, sources, strict=True)}
        prefix = self._prefix(index)
        layer.load_state_dict({n[len(prefix) :]: t for n, t in tensors.items()}, assign=True, strict=True)
        leftover = [n for n, t in [*layer.named_parameters(), *layer.named_buffers()] if t.is_meta]
        if leftover:
            raise SecateurError(
                f"--stream cannot rebuild {prefix}{leftover[0]} (state its layers keep outside the "
                "checkpoint); load this model without --stream"
            )
        return layer

    def save(self, index: int) -> None:
        """Write layer `index` as it is now to the store (atomically), under checkpoint names."""
        from safetensors.torch import save_file

        if self.store is None:
            raise SecateurError("internal: a streamed layer was changed but the run gave no layer store")
        self.store.mkdir(parents=True, exist_ok=True)
        prefix = self._prefix(index)
        state = {
            self.to_checkpoint.get(prefix + n, prefix + n): t.detach().to("cpu").contiguous()
            for n, t in self.layers()[index].state_dict().items()
        }
        path = self.store / f"layer-{index:05d}.safetensors"
        partial = path.with_suffix(".partial")
        save_file(state, str(partial), metadata={"format": "pt"})
        os.replace(partial, path)
        self.written[index] = path

    def release(self, index: int) -> None:
        """Put layer `index` back on `meta`: its memory is freed."""
        self.layers()[index].to("meta")

    # Resuming a killed run --------------------------------------------------------------------
    STATE = "state.json"
    ACTIVATIONS = "activations.pt"

    def finished(self) -> int:
        """Layers a killed run of the same recipe finished (0 when nothing matches)."""
        if self.store is None or self.resume_key is None:
            return 0
        state_file = self.store / self.STATE
        if not state_file.is_file():
            return 0
        state = json.loads(state_file.read_text())
        return int(state["done"]) if state.get("key") == self.resume_key else 0

    def resume_from(self) -> int:
        """The first layer the changing pass must still do; the finished ones are read from the
        store from now on."""
        done = self.finished()
        self.written.update({i: self.store / f"layer-{i:05d}.safetensors" for i in range(done)})
        return done

    def activations(self, device: torch.device) -> torch.Tensor:
        """The calibration activations entering the first layer still to do."""
        return torch.load(self.store / self.ACTIVATIONS, map_location=device, weights_only=True)

    def layer_done(self, index: int, hidden: torch.Tensor | None) -> None:
        """Layer `index` is written; record it (and the activations leaving it) for a resume."""
        if self.store is None or self.resume_key is None:
            return
        if hidden is not None:
            partial = self.store / (self.ACTIVATIONS + ".partial")
            torch.save(hidden.detach().to("cpu"), partial)
            os.replace(partial, self.store / self.ACTIVATIONS)
        partial = self.store / (self.STATE + ".partial")
        partial.write_text(json.dumps({"key": self.resume_key, "done": index + 1}))
        os.replace(partial, self.store / self.STATE)

    @contextmanager
    def visiting(self, index: int, device: torch.device, write: bool) -> Iterator[nn.Module]:
        layer = self.load(index, device)
        try:
            yield layer
            if write:
                self.save(index)
        finally:
            self.release(index)


def open_streamed(location: str, layers_path_of, dtype: torch.dtype) -> nn.Module:
    """The model with its decoder layers left on disk (parameters on `meta`), everything else read.

    `layers_path_of(model)` names where the decoder layers are (the adapter's table knows).
    """
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(location)
    with init_empty_weights():  # parameters on meta; buffers (rotary tables) real
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    layers_path = layers_path_of(model)
    stream = LayerStream(model, layers_path, Shards(Path(location)), dtype)
    stream.check_layout()
    outside = [n for n in model.state_dict() if not n.startswith(layers_path + ".")]
    present = [n for n in outside if n in stream.to_checkpoint]
    read = stream.source.read([stream.to_checkpoint[n] for n in present], dtype, torch.device("cpu"))
    model.load_state_dict({stream.to_model[k]: v for k, v in read.items()}, strict=False, assign=True)
    model.tie_weights()  # a tied LM head is not in the checkpoint: it is the embedding
    unread = [n for n, p in model.named_parameters() if p.is_meta and not n.startswith(layers_path + ".")]
    if unread:
        raise SecateurError(f"the checkpoint in {location} lacks {unread[0]}: re-download or re-save it")
    setattr(model, ATTACHED, stream)
    return model.eval()


def stream_of(model: nn.Module) -> LayerStream | None:
    return getattr(model, ATTACHED, None)


@contextmanager
def layer_store(model: nn.Module, out: str | None, resume_key: str | None = None) -> Iterator[Path | None]:
    """For a streamed model: the folder its changed layers are written to, beside `out` (so the
    output's shards are hard links of them) as `.NAME.stream`, else in the system's temporary folder.

    With `resume_key` (a description of what the run computes) the folder outlives a failed or
    killed run, and a rerun of the same recipe resumes after the last finished layer; a folder left
    by another recipe is discarded. It is removed once the run succeeds.
    """
    import shutil
    import tempfile

    from secateur.scratch import scratch_dir

    stream = stream_of(model)
    if stream is None:
        yield None
        return
    if out is None:
        folder = scratch_dir(Path(tempfile.gettempdir()), ".secateur-stream-")
        resume_key = None
    else:
        final = Path(out).expanduser().resolve()
        folder = final.parent / f".{final.name}.stream"
        folder.mkdir(parents=True, exist_ok=True)
        state = folder / LayerStream.STATE
        if state.is_file() and json.loads(state.read_text()).get("key") != resume_key:
            shutil.rmtree(folder)  # left by another recipe: nothing in it applies
            folder.mkdir()
    stream.store, stream.resume_key = folder, resume_key
    try:
        yield folder
    except BaseException:
        if resume_key is None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    else:
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        stream.store, stream.resume_key = None, None
        stream.written.clear()
