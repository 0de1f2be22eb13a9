#!/usr/bin/env bash
# The GPU run of issue #15, in one command (< 8 minutes on an H100/H200):
#   bash benchmarks/gpu_suite.sh [--model NAME] [--out FILE] [...]   (flags: python benchmarks/gpu_suite.py -h)
# 1. a Python whose torch sees CUDA: $PYTHON, else .venv/bin/python, else python3; when none does and
#    nvidia-smi shows a GPU, a CUDA torch is installed into .venv-gpu (needs the package index);
# 2. benchmarks/gpu_suite.py: prune time / forward, peak GPU memory, 2:4 kernels, structured 20% speed;
# 3. pytest tests/gpu.
# On a machine without CUDA every step still runs: the CUDA parts are skipped with their reason.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"  # paths given as arguments stay relative to the caller

sees_cuda() { "$1" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; }

python=""
for candidate in "${PYTHON:-}" "$root/.venv/bin/python" python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null && "$candidate" -c "import torch" 2>/dev/null; then
        python="$candidate"
        sees_cuda "$candidate" && break
    fi
done
if [ -z "$python" ] || ! sees_cuda "$python"; then
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        echo "gpu_suite: a GPU is here but no torch sees it: installing a CUDA torch into .venv-gpu" >&2
        test -x "$root/.venv-gpu/bin/python" || python3 -m venv "$root/.venv-gpu"
        python="$root/.venv-gpu/bin/python"
        "$python" -m pip install -q torch --index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cu128}"
        "$python" -m pip install -q -e "$root[dev]"
    elif [ -z "$python" ]; then
        echo "gpu_suite: no Python with torch found: run 'make setup' first" >&2
        exit 2
    else
        echo "gpu_suite: no CUDA device: the CUDA parts are skipped (each says why)" >&2
    fi
fi

# secateur from this checkout, whether or not it is installed in that Python.
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
"$python" "$root/benchmarks/gpu_suite.py" "$@"
(cd "$root" && "$python" -m pytest tests/gpu -q -p no:cacheprovider -rs)
