"""Runs INSIDE a separate llm-compressor venv (it pins its own transformers); never imports secateur.

    python llmcompressor_side.py MODEL_DIR WINDOWS.safetensors OUT_DIR MASK_STRUCTURE

Prunes MODEL_DIR with llm-compressor's SparseGPTModifier (50%, "0:0" = unstructured or "2:4") on
exactly the calibration windows secateur used, and saves plain (uncompressed) safetensors weights.
"""

import sys
import time

import torch
from datasets import Dataset
from llmcompressor import oneshot
from llmcompressor.modifiers.pruning import SparseGPTModifier
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    model_dir, windows_file, out_dir, structure = sys.argv[1:5]
    windows = load_file(windows_file)["windows"]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = Dataset.from_dict(
        {"input_ids": windows.tolist(), "attention_mask": torch.ones_like(windows).tolist()}
    )
    recipe = SparseGPTModifier(
        sparsity=0.5,
        mask_structure=structure,
        block_size=128,
        dampening_frac=0.01,
        targets=["Linear"],
        ignore=["re:.*lm_head"],
    )
    start = time.perf_counter()
    oneshot(
        model=model,
        dataset=data,
        recipe=recipe,
        num_calibration_samples=windows.shape[0],
        max_seq_length=windows.shape[1],
        shuffle_calibration_samples=False,
        pipeline="sequential",
    )
    print(f"llm-compressor prune seconds: {time.perf_counter() - start:.1f}", flush=True)
    model.save_pretrained(out_dir, save_compressed=False)
    tokenizer.save_pretrained(out_dir)


if __name__ == "__main__":
    main()
