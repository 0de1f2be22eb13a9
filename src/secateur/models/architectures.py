"""The table of supported architectures. Adding one is a new row, not a new pipeline."""

from __future__ import annotations

import torch

from secateur.models.adapter import ArchitectureSpec
from secateur.models.experts import ExpertLayout
from secateur.models.fused import ATTENTION_PARTS, MLP_PARTS, FusedProjection
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
GEMMA3 = register("architecture", "gemma3")(
    # The multimodal checkpoints (4B and up) load as Gemma3ForConditionalGeneration: the text
    # decoder is model.language_model, configured by text_config; the vision tower is left alone.
    ArchitectureSpec(
        model_type="gemma3",
        base_path="model.language_model",
        layers_path="model.language_model.layers",
        final_norm_path="model.language_model.norm",
        # Its head applies no soft-capping (Gemma 3's released configs set none anyway).
        notes="Gemma 3 multimodal (4B+): the text decoder is pruned, the vision tower kept",
    )
)
PHI3 = register("architecture", "phi3")(
    # Fused qkv_proj and gate_up_proj: mask pruning treats each as one Linear, which is exact for
    # every pattern (N:M groups and blocks run along a row's inputs, shared by all its parts);
    # structured pruning slices one KV group's / one channel's rows in every part (models.fused).
    # Its attention reads the query width from the config: a shrunk layer gets its own view of it.
    ArchitectureSpec(
        model_type="phi3",
        roles={
            "qkv": "self_attn.qkv_proj",
            "o": "self_attn.o_proj",
            "gate_up": "mlp.gate_up_proj",
            "down": "mlp.down_proj",
        },
        fused=(FusedProjection("qkv", ATTENTION_PARTS), FusedProjection("gate_up", MLP_PARTS)),
        notes="Phi-3, Phi-3.5, Phi-4 (fused qkv_proj/gate_up_proj, sliced part by part)",
    )
)
OPT = register("architecture", "opt")(
    # The Wanda and SparseGPT papers' own tables: biases everywhere, LayerNorm, learned positions,
    # a ReLU fc1/fc2 MLP without a gate, the decoder under model.decoder.
    ArchitectureSpec(
        model_type="opt",
        layers_path="model.decoder.layers",
        final_norm_path="model.decoder.final_layer_norm",
        head_input_paths=("model.decoder.project_out",),
        mlp_path=None,
        roles={
            "q": "self_attn.q_proj",
            "k": "self_attn.k_proj",
            "v": "self_attn.v_proj",
            "o": "self_attn.out_proj",
            "up": "fc1",
            "down": "fc2",
        },
        attention_bias=True,
        # Its attention derives head_dim from hidden / heads, so a config cannot carry fewer heads:
        # outputs with heads removed keep per_layer_config and load through secateur.load_pruned.
        heads_in_config=False,
        config_names={"intermediate_size": "ffn_dim"},
        notes="OPT (gate-less fc1/fc2 MLP: a channel is an fc1 row + bias and an fc2 column; "
        "fewer heads load through secateur.load_pruned)",
    )
)
OLMO2 = register("architecture", "olmo2")(
    # q_norm/k_norm normalize the whole q/k projection (all heads at once), so removing heads would
    # change every remaining head's normalization: structured slicing is not exact there, not offered.
    ArchitectureSpec(
        model_type="olmo2",
        structured=False,
        notes="OLMo 2 (norms after each sub-block; q/k norms over all heads: no structured slicing)",
    )
)

# Mixture of experts. transformers 5 fuses each layer's experts into 3-D parameters (see
# models.experts); the router (mlp.gate) is never pruned, nor Qwen2-MoE's shared-expert gate.
_ATTENTION_ROLES = {role: f"self_attn.{role}_proj" for role in ("q", "k", "v", "o")}
_DENSE_MLP_ROLES = {role: f"mlp.{role}_proj" for role in ("gate", "up", "down")}
MIXTRAL = register("architecture", "mixtral")(
    ArchitectureSpec(
        model_type="mixtral",
        roles=dict(_ATTENTION_ROLES),
        experts=ExpertLayout(count_key="num_local_experts"),
        structured=False,
        notes="Mixtral (routed experts; structured width not yet: masks, depth, experts)",
    )
)
QWEN2_MOE = register("architecture", "qwen2_moe")(
    # A shared expert beside the routed ones, and dense MLP layers where mlp_only_layers says.
    ArchitectureSpec(
        model_type="qwen2_moe",
        roles={
            **_ATTENTION_ROLES,
            **{f"shared_{role}": f"mlp.shared_expert.{role}_proj" for role in ("gate", "up", "down")},
            **_DENSE_MLP_ROLES,
        },
        optional_roles=frozenset({"shared_gate", "shared_up", "shared_down", "gate", "up", "down"}),
        attention_bias=True,
        experts=ExpertLayout(),
        structured=False,
        notes="Qwen1.5-MoE, Qwen2-MoE (shared expert; structured width not yet: masks, depth, experts)",
    )
)
QWEN3_MOE = register("architecture", "qwen3_moe")(
    ArchitectureSpec(
        model_type="qwen3_moe",
        roles={**_ATTENTION_ROLES, **_DENSE_MLP_ROLES},
        optional_roles=frozenset({"gate", "up", "down"}),
        experts=ExpertLayout(),
        structured=False,
        notes="Qwen3-MoE (q/k norms per head; structured width not yet: masks, depth, experts)",
    )
)
DEEPSEEK_V3 = register("architecture", "deepseek_v3")(
    # Multi-head latent attention: queries through a low-rank pair (q_a, q_b; or one q_proj when
    # q_lora_rank is unset), keys and values from one compressed projection (kv_a, then kv_b). Its
    # heads are not groups of rows structured pruning could slice, so masks, depth and experts only.
    # The first first_k_dense_replace layers are dense; the rest route to experts in groups
    # (n_group) beside shared experts.
    ArchitectureSpec(
        model_type="deepseek_v3",
        roles={
            "q": "self_attn.q_proj",
            "q_a": "self_attn.q_a_proj",
            "q_b": "self_attn.q_b_proj",
            "kv_a": "self_attn.kv_a_proj_with_mqa",
            "kv_b": "self_attn.kv_b_proj",
            "o": "self_attn.o_proj",
            **{f"shared_{role}": f"mlp.shared_experts.{role}_proj" for role in ("gate", "up", "down")},
            **_DENSE_MLP_ROLES,
        },
        optional_roles=frozenset(
            {"q", "q_a", "q_b", "shared_gate", "shared_up", "shared_down", "gate", "up", "down"}
        ),
        experts=ExpertLayout(
            count_key="n_routed_experts",
            groups_key="n_group",
            followed_by=("shared_gate", "shared_up", "shared_down"),
        ),
        structured=False,
        notes="DeepSeek-V3 (latent attention; grouped routing, shared experts: masks, depth, experts)",
    )
)
