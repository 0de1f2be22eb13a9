"""An adapter row for an architecture whose code ships with its checkpoint (`--trust-remote-code`).

Nothing is known about such a model but what its modules show, so only what mask pruning needs is
looked for: the decoder layers (the longest list of identical blocks that hold Linear layers), the
module above them (the base model) with its final norm, and each layer's Linears. Structured
methods are refused for it. Before anything is pruned, the found paths are checked against the
model's own forward: logits formed from the base model's output through the LM head must equal
the model's, or the model is refused (a head that transforms logits is not known here).
"""

from __future__ import annotations

import torch
from torch import nn

from secateur.errors import SecateurError
from secateur.models.adapter import ArchitectureSpec

_HINT = "this architecture needs a row in secateur's adapter table (models/architectures.py)"


def discover_spec(model: nn.Module, model_type: str) -> ArchitectureSpec:
    lists = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and len({type(block) for block in module}) == 1
        and any(isinstance(m, nn.Linear) for m in module[0].modules())
    ]
    if not lists:
        raise SecateurError(
            f"--trust-remote-code: found no decoder layers in this {model_type} model (no list of "
            f"identical blocks holding Linear layers); {_HINT}"
        )
    layers_path, layers = max(lists, key=lambda item: len(item[1]))
    if "." not in layers_path:
        raise SecateurError(
            f"--trust-remote-code: {model_type}'s layers sit at the model's top level; {_HINT}"
        )
    base_path = layers_path.rsplit(".", 1)[0]
    base = model.get_submodule(base_path)
    norms = [
        name
        for name, child in base.named_children()
        if "norm" in type(child).__name__.lower() or "norm" in name.lower()
    ]
    if not norms:
        raise SecateurError(f"--trust-remote-code: found no final norm beside {model_type}'s layers; {_HINT}")
    roles = {name: name for name, m in layers[0].named_modules() if isinstance(m, nn.Linear)}
    return ArchitectureSpec(
        model_type=model_type,
        base_path=base_path,
        layers_path=layers_path,
        final_norm_path=f"{base_path}.{norms[-1]}",
        roles=roles,
        structured=False,
        remote_code=True,
        notes="found in remote code (--trust-remote-code): mask methods only",
    )


@torch.no_grad()
def check_discovered(model: nn.Module, spec: ArchitectureSpec) -> None:
    """The base model's output through the LM head must give the model's own logits."""
    vocab = model.get_input_embeddings().weight.shape[0]
    ids = torch.arange(8, device=model.get_input_embeddings().weight.device)[None] % vocab
    try:
        hidden = model.get_submodule(spec.base_path)(input_ids=ids, use_cache=False).last_hidden_state
        ours = model.get_output_embeddings()(hidden)
        theirs = model(input_ids=ids, use_cache=False).logits
    except Exception as exc:  # remote code may fail in any way: say where, in one line
        raise SecateurError(
            f"--trust-remote-code: {spec.model_type}'s base model {spec.base_path!r} does not run as "
            f"transformers models do ({type(exc).__name__}); {_HINT}"
        ) from None
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4):
        raise SecateurError(
            f"--trust-remote-code: {spec.model_type}'s logits are not its LM head applied to "
            f"{spec.base_path!r}'s output, so secateur cannot measure it; {_HINT}"
        )
