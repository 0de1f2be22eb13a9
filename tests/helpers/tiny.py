"""Tiny models, a byte-level tokenizer and a small corpus, all built in memory in milliseconds."""

from __future__ import annotations

import random
from pathlib import Path

import torch

VOCAB = 260  # 256 byte symbols + end-of-text, rounded up


# Every supported family, for the tests that run on each. Qwen3's head_dim (32) is not
# hidden/heads (16), so the geometry is exercised where the two differ.
# Granite's multipliers are set away from 1 so a missed one (the logit scaling) changes results.
# Gemma: a sliding window (8) shorter than the test windows, mixed with a global layer, so a layer
# given the other kind's mask computes something else; logit soft-capping on.
MODEL_TYPES = (
    "llama", "qwen2", "mistral", "qwen3", "granite", "gemma2", "gemma3_text", "phi3", "opt", "olmo2",
    "mixtral", "qwen2_moe", "qwen3_moe", "gemma3", "deepseek_v3",
)  # fmt: skip
# Mixture-of-experts families (4 experts, 2 per token; Qwen2-MoE with a shared expert and a dense
# middle layer, so both kinds of layer are exercised).
MOE_TYPES = ("mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3")
# Families without structured width (masks and depth only; MoE: experts too).
MASK_ONLY = ("olmo2", *MOE_TYPES)
_GEMMA = {
    "head_dim": 32,
    "sliding_window": 8,
    "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
    "final_logit_softcapping": 5.0,
}
_FAMILY_OVERRIDES = {
    "qwen3": {"head_dim": 32},
    "gemma2": _GEMMA,
    "gemma3_text": _GEMMA,
    "phi3": {"pad_token_id": 0},
    # OPT's sizes go by other names; its decoder has no rms_norm_eps (LayerNorm) and no GQA.
    "opt": {"ffn_dim": 128, "word_embed_proj_dim": 64, "pad_token_id": 1},
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2_moe": {
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 32,
        "shared_expert_intermediate_size": 48,
        "mlp_only_layers": [1],
    },
    # Latent attention with a low-rank query pair; one dense layer first; one routing group here
    # (the grouped routing of the real model has its own test).
    "deepseek_v3": {
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "n_group": 1,
        "topk_group": 1,
        "first_k_dense_replace": 1,
        "moe_intermediate_size": 32,
        "n_shared_experts": 1,
        "kv_lora_rank": 32,
        "q_lora_rank": 32,
        "qk_rope_head_dim": 16,
        "qk_nope_head_dim": 16,
        "v_head_dim": 16,
        "num_key_value_heads": 4,
    },
    "qwen3_moe": {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "head_dim": 32},
    "granite": {
        "logits_scaling": 4.0,
        "embedding_multiplier": 2.0,
        "residual_multiplier": 0.5,
        "attention_multiplier": 0.1,
    },
}


def tiny_config(model_type: str = "llama", **overrides):
    from transformers import (
        DeepseekV3Config,
        Gemma2Config,
        Gemma3TextConfig,
        GraniteConfig,
        LlamaConfig,
        MistralConfig,
        MixtralConfig,
        Olmo2Config,
        OPTConfig,
        Phi3Config,
        Qwen2Config,
        Qwen2MoeConfig,
        Qwen3Config,
        Qwen3MoeConfig,
    )

    common = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    )
    if model_type == "opt":  # plain multi-head attention, LayerNorm, ffn_dim instead
        for key in ("num_key_value_heads", "intermediate_size", "rms_norm_eps"):
            common.pop(key)
    common.update(_FAMILY_OVERRIDES.get(model_type, {}))
    common.update(overrides)
    if "layer_types" in common and "layer_types" not in overrides:  # follow a changed layer count
        kinds = ("sliding_attention", "full_attention")
        common["layer_types"] = [kinds[i % 2] for i in range(common["num_hidden_layers"])]
    classes = {
        "llama": LlamaConfig,
        "qwen2": Qwen2Config,
        "mistral": MistralConfig,
        "qwen3": Qwen3Config,
        "granite": GraniteConfig,
        "gemma2": Gemma2Config,
        "gemma3_text": Gemma3TextConfig,
        "phi3": Phi3Config,
        "opt": OPTConfig,
        "olmo2": Olmo2Config,
        "mixtral": MixtralConfig,
        "qwen2_moe": Qwen2MoeConfig,
        "qwen3_moe": Qwen3MoeConfig,
        "deepseek_v3": DeepseekV3Config,
    }
    if model_type == "gemma3":  # multimodal: the text decoder's config nested, a tiny vision tower
        from transformers import Gemma3Config

        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      image_size=32, patch_size=8)  # fmt: skip
        text = tiny_config("gemma3_text", **overrides).to_dict()
        return Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    cls = classes[model_type]
    return cls(**common)


def tiny_model(model_type: str = "llama", seed: int = 0, dtype: torch.dtype = torch.float32, **overrides):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(model_type, **overrides)).to(dtype)
    # Default init is tiny (std 0.02) and makes every token look alike; widen it so activations
    # carry real structure and score ties are vanishingly rare.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() in (2, 3):  # 3-D: fused experts (one matrix per expert)
                p.normal_(0, 0.2)
    return model.eval()


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab["<|endoftext|>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def tiny_bpe_tokenizer():
    """tiny_tokenizer plus three merges: llama.cpp's BPE (and transformers' GGUF reader) want some."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab["<|endoftext|>"] = len(vocab)
    merges = [("t", "h"), ("th", "e"), ("Ġ", "t")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


WORDS = [
    "the",
    "a",
    "pruning",
    "model",
    "weight",
    "layer",
    "sparse",
    "dense",
    "river",
    "stone",
    "garden",
    "light",
    "quiet",
    "morning",
    "evening",
    "letter",
    "window",
    "paper",
    "small",
    "large",
    "green",
    "old",
    "new",
    "quick",
    "slow",
    "bright",
    "dark",
    "soft",
    "loud",
]


def write_corpus(path: Path, paragraphs: int = 60, seed: int = 0) -> Path:
    """Blank-line separated paragraphs of pseudo-English; ~12K bytes = ~12K tiny-tokenizer tokens."""
    rng = random.Random(seed)
    paras = []
    for _ in range(paragraphs):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))).capitalize() + "."
            for _ in range(rng.randint(2, 4))
        ]
        paras.append(" ".join(sentences))
    path.write_text("\n\n".join(paras) + "\n")
    return path


def save_tiny(folder: Path, model_type: str = "llama", seed: int = 0, **overrides) -> Path:
    tiny_model(model_type, seed, **overrides).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder
