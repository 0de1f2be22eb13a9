"""Run AMD Quark's own OSSCAR MLP pruning on CPU in fp32, for the side-by-side of issue #16.

Runs INSIDE a venv with AMD Quark (it pins its own transformers range), never imports secateur;
benchmarks/vs_quark.py drives it. Set-up: python3 -m venv Q && Q/bin/pip install torch==2.13.0 &&
Q/bin/pip install amd-quark==0.13 "transformers>5,<5.17". Usage:

    Q/bin/python benchmarks/quark_side.py --model DIR --windows windows.json --ratio 0.2 --out OUT

--windows: a JSON list of lists of token ids, all of one length (secateur's calibration windows).
Each window is one batch of Quark's calibration loader (batch size 1, as Quark's example's default).
Only the ModelPruner.pruning_model call is timed (time.perf_counter); importing quark.torch (tens of
seconds the first time: it JIT-builds a C++ extension) and loading the model are not.

Writes OUT/ (save_pretrained of the pruned model + the tokenizer if the model folder has one) and
OUT/quark_run.json with {"seconds", "kept_intermediate", "quark_version", ...}.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys
import time
from pathlib import Path


def quark_kept_width(size: int, ratio: float) -> int:
    """Quark 0.13's rule (osscar.py OSSCAR.prune and model_transformation.py model_pruning_on_cpu):
    int(size * (1 - ratio)), then, unless a multiple of 128, Python round(x / 128) * 128."""
    kept = int((1 - ratio) * size)
    if kept % 128 != 0:
        kept = int(round(kept / 128) * 128)
    return kept


def load_windows(path: Path, vocab: int):
    import torch

    data = json.loads(path.read_text())
    if not isinstance(data, list) or not data or not all(isinstance(w, list) and w for w in data):
        sys.exit(f"{path}: expected a non-empty JSON list of non-empty lists of token ids")
    lengths = {len(w) for w in data}
    if len(lengths) != 1:
        # Quark captures layer 0's kwargs (mask, rotary tables) from the last batch and replays them
        # for every batch, so windows of different lengths would be wrong, not just slow.
        sys.exit(f"{path}: windows must all have one length, got lengths {sorted(lengths)}")
    ids = torch.tensor(data, dtype=torch.long)
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        sys.exit(f"{path}: token ids outside [0, {vocab})")
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="Hugging Face Llama folder")
    parser.add_argument("--windows", required=True, type=Path, help="JSON list of lists of token ids")
    parser.add_argument("--ratio", type=float, default=0.2, help="Quark's mlp_pruning_ratio")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--damp", type=float, default=0.01, help="Quark's damp_percent (its default)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()

    started = time.perf_counter()
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    from quark.torch import ModelPruner
    from quark.torch.pruning.config import OSSCARConfig, PConfig  # 0.13: PConfig (the docs' `Config` is gone)

    import_seconds = time.perf_counter() - t0

    # No device_map: a model with an hf_device_map naming "cpu" is refused by ModelPruner
    # (_check_model_device raises MemoryError); a plain CPU model has none and runs on CPU.
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    config = model.config
    if config.model_type != "llama":
        print(
            f"warning: model_type {config.model_type!r}; the module names below are Llama's", file=sys.stderr
        )
    size = config.intermediate_size
    expected = quark_kept_width(size, args.ratio)
    if not 0 < expected < size:
        sys.exit(
            f"ratio {args.ratio} on intermediate_size {size} keeps {expected} channels under Quark's rule"
        )
    windows = load_windows(args.windows, config.vocab_size)
    loader = [w.unsqueeze(0) for w in windows]  # Quark calls model(batch, use_cache=False) on each tensor
    params_before = sum(p.numel() for p in model.parameters())

    # Module names: OsscarProcessor matches them *exactly* against the decoder layer's own
    # named_modules() ("mlp.down_proj"); inside_layer_modules must list it or nothing is hooked.
    # mlp_scaling_layers values must be lists (they are iterated; a bare string iterates characters).
    algo = OSSCARConfig(
        damp_percent=args.damp,
        true_sequential=True,
        inside_layer_modules=["mlp.down_proj"],
        mlp_pruning_modules=["mlp.down_proj"],
        mlp_scaling_layers={"mlp.down_proj": ["mlp.up_proj", "mlp.gate_proj"]},
        mlp_pruning_ratio=args.ratio,
        mlp_intermediate_size_name="intermediate_size",
        model_decoder_layers="model.layers",
    )
    pruner = ModelPruner(PConfig(algo_config=algo))
    with torch.no_grad():
        t0 = time.perf_counter()
        model = pruner.pruning_model(model, loader)
        seconds = time.perf_counter() - t0

    kept = model.config.intermediate_size
    widths = sorted(
        {(layer.mlp.gate_proj.out_features, layer.mlp.up_proj.out_features, layer.mlp.down_proj.in_features)
         for layer in model.model.layers}
    )  # fmt: skip
    if widths != [(kept, kept, kept)] or kept != expected:
        sys.exit(f"unexpected widths after pruning: config {kept}, layers {widths}, expected {expected}")

    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer_saved = False
    try:
        AutoTokenizer.from_pretrained(args.model).save_pretrained(args.out)
        tokenizer_saved = True
    except (OSError, ValueError) as exc:
        print(f"warning: no tokenizer saved ({exc})", file=sys.stderr)

    record = {
        "seconds": seconds,
        "kept_intermediate": kept,
        "quark_version": importlib.metadata.version("amd-quark"),
        "original_intermediate": size,
        "mlp_pruning_ratio": args.ratio,
        "damp_percent": args.damp,
        "windows": list(windows.shape),
        "params_before": params_before,
        "params_after": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "import_quark_seconds": import_seconds,
        "total_seconds": time.perf_counter() - started,
        "tokenizer_saved": tokenizer_saved,
        "model": str(args.model),
    }
    (args.out / "quark_run.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
