"""A Hugging Face byte-level BPE tokenizer as GGUF metadata (llama.cpp's "gpt2" tokenizer model).

llama.cpp needs the whole vocabulary as a list as long as the embedding (ids the tokenizer does not
use become unused `[PADn]` entries, as its converter writes them), each token's type, the merges,
the special ids (unset bos/eos ids fall back to token 11 there, so both are always written),
whether a BOS is prepended, the chat template, and the name of the pre-tokenizer: the regex that
splits text before BPE, which llama.cpp has built in under a name rather than reading it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from secateur.errors import SecateurError

# gguf.TokenType values (written as plain ints: llama.cpp reads them so).
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5


@dataclass(frozen=True)
class GgufVocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str  # llama.cpp's name for the pre-tokenizer
    pre_known: bool  # False: no known pre-tokenizer matched, llama.cpp's "default" is written
    bos: int
    eos: int
    unk: int | None
    pad: int | None
    add_bos: bool
    chat_template: str | None


def pre_tokenizer_name(pre: dict | None) -> tuple[str, bool]:
    """llama.cpp's name for a tokenizer.json pre_tokenizer, by its structure: (name, recognised)."""
    if not pre:
        return "default", False
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [part.get("type") for part in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2", True  # GPT-2's own split
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm", True  # every digit alone, then GPT-2's split
    if kinds == ["Split", "ByteLevel"]:
        pattern = str(parts[0].get("pattern", {}).get("Regex", ""))
        if "\\p{N}{1,3}" in pattern:
            return "llama-bpe", True  # Llama 3: numbers in groups of up to three digits
        if "\\p{N}" in pattern and "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+" in pattern:
            return "qwen2", True  # Llama 3's split with single digits
    return "default", False


def tokenizer_vocab(tokenizer, vocab_size: int, config) -> GgufVocab:
    """The GGUF vocabulary of a fast Hugging Face tokenizer, padded to the embedding's rows."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise SecateurError("--format gguf needs the model's fast tokenizer (tokenizer.json) beside it")
    data = json.loads(backend.to_str())
    model = data.get("model", {})
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(data.get("pre_tokenizer")):
        raise SecateurError(
            f"--format gguf writes byte-level BPE tokenizers (Llama 3, Qwen2, SmolLM2 and other GPT-2 "
            f"style ones) for now; this one is {model.get('type')}"
        )
    ids = tokenizer.get_vocab()
    if max(ids.values()) >= vocab_size:
        raise SecateurError(
            f"the tokenizer has ids up to {max(ids.values())}, more than the model's {vocab_size} embeddings"
        )
    added = {entry["id"]: entry for entry in data.get("added_tokens", [])}
    tokens, types = [f"[PAD{i}]" for i in range(vocab_size)], [UNUSED] * vocab_size
    for token, index in ids.items():
        tokens[index] = token
        entry = added.get(index)
        types[index] = NORMAL if entry is None else (CONTROL if entry.get("special") else USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    pre, known = pre_tokenizer_name(data.get("pre_tokenizer"))

    def special(name: str) -> int | None:
        value = getattr(tokenizer, f"{name}_token_id", None)
        value = value if value is not None else getattr(config, f"{name}_token_id", None)
        return value[0] if isinstance(value, list) else value

    eos = special("eos")
    bos = special("bos")
    if eos is None and bos is None:
        raise SecateurError("the tokenizer names neither a BOS nor an EOS token; llama.cpp needs both")
    bos, eos = (bos if bos is not None else eos), (eos if eos is not None else bos)
    probe = tokenizer("a")["input_ids"]
    template = getattr(tokenizer, "chat_template", None)
    return GgufVocab(
        tokens=tokens,
        types=types,
        merges=merges,
        pre=pre,
        pre_known=known,
        bos=int(bos),
        eos=int(eos),
        unk=special("unk"),
        pad=special("pad"),
        add_bos=bool(probe) and probe[0] == bos and len(probe) > 1,
        chat_template=template if isinstance(template, str) else None,
    )


def write_vocab(writer, vocab: GgufVocab) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.merges:
        writer.add_token_merges(vocab.merges)
    writer.add_bos_token_id(vocab.bos)
    writer.add_eos_token_id(vocab.eos)
    if vocab.unk is not None:
        writer.add_unk_token_id(int(vocab.unk))
    if vocab.pad is not None:
        writer.add_pad_token_id(int(vocab.pad))
    writer.add_add_bos_token(vocab.add_bos)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
