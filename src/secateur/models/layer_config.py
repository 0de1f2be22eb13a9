"""A decoder layer's own view of the model config, for layers whose widths differ from it.

Some attention modules read their head counts from the shared config in every forward (Phi-3 splits
its fused qkv_proj at `config.num_attention_heads · head_dim`). Once one layer has fewer heads than
the config says, that module gets a `LayerConfig`: its own head counts, everything else read through
from the shared config (so a later change there, e.g. the attention implementation, still reaches it).
"""

from __future__ import annotations

from typing import Any


class LayerConfig:
    def __init__(self, base: Any, **overrides: Any) -> None:
        while isinstance(base, LayerConfig):  # a layer shrunk twice: one view over the real config
            overrides = {**base.__dict__["_overrides"], **overrides}
            base = base.__dict__["_base"]
        self.__dict__["_base"] = base
        self.__dict__["_overrides"] = dict(overrides)

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__
        if "_base" not in state:  # copy/pickle probing a half-built instance
            raise AttributeError(name)
        if name in state["_overrides"]:
            return state["_overrides"][name]
        return getattr(state["_base"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dict__["_overrides"]:
            self.__dict__["_overrides"][name] = value
        else:
            setattr(self.__dict__["_base"], name, value)

    def __repr__(self) -> str:
        return f"LayerConfig({self.__dict__['_overrides']}, base={type(self.__dict__['_base']).__name__})"
