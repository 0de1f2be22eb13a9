"""The table of supported architectures. Adding one is a new row, not a new pipeline."""

from __future__ import annotations

import torch

from secateur.models.adapter import ArchitectureSpec
from secateur.registry import register

LLAMA = register("architecture", "llama")(
    ArchitectureSpec(model_type="llama", notes="LLaMA 2, 3, 3.x; SmolLM2")
)
QWEN2 = register("architecture", "qwen2")(
    ArchitectureSpec(model_type="qwen2", attention_bias=True, notes="Qwen2, Qwen2.5 (q/k/v biases)")
)
MISTRAL = register("architecture", "mistral")(ArchitectureSpec(model_type="mistral", notes="Mistral"))
QWEN3 = register("architecture", "qwen3")(
    # q_norm/k_norm normalize each head over head_dim with one weight shared by all heads, so
    # removing a KV group (and its query heads) leaves them valid; head_dim comes from the config.
    ArchitectureSpec(
        model_type="qwen3", notes="Qwen3 dense (q_norm/k_norm per head; head_dim from the config)"
    )
)
GRANITE = register("architecture", "granite")(
    # Its embedding, attention and residual multipliers live inside the modules secateur runs; only
    # the logit scaling is done by the CausalLM head, which perplexity reproduces.
    ArchitectureSpec(
        model_type="granite",
        logits_transform=lambda config, logits: logits / config.logits_scaling,
        notes="IBM Granite 3.x dense (multipliers; logits divided by logits_scaling)",
    )
)


def _final_softcap(config, logits):
    """Gemma 2/3 squash logits into (-cap, cap) in their CausalLM head: cap · tanh(logits / cap)."""
    cap = getattr(config, "final_logit_softcapping", None)
    return logits if cap is None else torch.tanh(logits / cap) * cap


# Gemma 2 and 3 mix sliding-window and global layers (each kind gets its own mask and rotary base:
# the capture keeps one set of arguments per kind, see calibration.capture), normalize before and
# after each sub-block inside the layer's own forward, scale the tied embeddings in the model's
# forward, and give head_dim in the config; only the final logit soft-capping is in the head.
GEMMA2 = register("architecture", "gemma2")(
    ArchitectureSpec(model_type="gemma2", logits_transform=_final_softcap, notes="Gemma 2")
)
GEMMA3_TEXT = register("architecture", "gemma3_text")(
    ArchitectureSpec(
        model_type="gemma3_text", logits_transform=_final_softcap, notes="Gemma 3 (text models, 1B)"
    )
)
