"""The table of supported architectures. Adding one is a new row, not a new pipeline."""

from __future__ import annotations

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
