"""secateur's outputs in the real engines (llama.cpp, vLLM): perplexity there equals secateur's on the
same token windows. Slow, and skipped with the reason when the engine is not installed (CI has
neither: llama.cpp compiles for ~25 minutes, vLLM wants a venv of its own); set
SECATEUR_LLAMACPP_PYTHON / SECATEUR_VLLM_PYTHON to a Python that has it. The plumbing of
`secateur bench --engine` is tested here on every machine, with the worker's answer given."""

from __future__ import annotations

import pytest
import torch

from helpers.cli import assert_refused
from helpers.tiny import tiny_bpe_tokenizer, tiny_model
from secateur.engines.driver import engine_python, run_worker
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.structured.apply import apply_plan
from secateur.structured.plan import LayerPlan, StructuredPlan

WINDOWS = torch.randint(0, 259, (3, 24), generator=torch.Generator().manual_seed(5))


def _python_or_skip(engine: str) -> str:
    try:
        return engine_python(engine)
    except SecateurError as error:
        pytest.skip(str(error))


def _secateur_nll(model) -> float:
    with torch.no_grad():
        logits = model(WINDOWS).logits.double()
    logp = logits[:, :-1].log_softmax(-1).gather(-1, WINDOWS[:, 1:, None])
    return float(-logp.mean())


def _global_plan(model):
    geometry = ModelAdapter(model).geometry()
    plan = StructuredPlan(model.config.model_type, geometry.gqa_ratio, geometry.head_dim)
    # layer 0: narrower MLP; 1: no attention; 2: one KV group, no MLP (a stand-in in llama.cpp)
    for layer, (kv, channels) in enumerate([([0, 1], list(range(90))), ([], list(range(70))), ([1], [])]):
        plan.layers.append(LayerPlan(layer, kv, channels))
    apply_plan(ModelAdapter(model), plan)
    return model


GEMMA = {"query_pre_attn_scalar": 32, "tie_word_embeddings": True}  # llama.cpp scales by 1/sqrt(head_dim)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["qwen2", "granite", "phi3", "qwen3", "gemma2", "gemma3_text", "olmo2", "per-layer llama (deci)"]
)
def test_llamacpp_computes_what_secateur_computes(kind, tmp_path):
    from secateur.export.gguf import write_gguf

    python = _python_or_skip("llamacpp")
    if kind.startswith("per-layer"):
        model = _global_plan(tiny_model("llama"))
    else:  # Gemma: a sliding window (8) shorter than the windows, so the sliding layers matter
        model = tiny_model(kind, **(GEMMA if kind.startswith("gemma") else {}))
    write_gguf(model, tiny_bpe_tokenizer(), tmp_path / "m.gguf", "f32")
    request = {"model": str(tmp_path / "m.gguf"), "threads": 2, "windows": WINDOWS.tolist()}
    answer = run_worker("llamacpp", request, python)
    assert answer["perplexity"]["mean_nll"] == pytest.approx(_secateur_nll(model), rel=1e-4)


@pytest.mark.slow
def test_vllm_serves_a_nemotron_nas_export(tmp_path):
    from secateur.export.nemotron_nas import write_nemotron_nas

    python = _python_or_skip("vllm")
    # vLLM's CPU attention kernels take head sizes of 32 and up: 256 / 4 heads = 64.
    model = _global_plan(tiny_model("llama", hidden_size=256))
    write_nemotron_nas(model, tiny_bpe_tokenizer(), tmp_path / "nas")
    request = {"model": str(tmp_path / "nas"), "windows": WINDOWS.tolist(), "trust_remote_code": True,
               "max_model_len": 64}  # fmt: skip
    answer = run_worker("vllm", request, python)
    assert answer["perplexity"]["mean_nll"] == pytest.approx(_secateur_nll(model), rel=1e-4)


def test_bench_with_an_engine_converts_and_tabulates(saved_llama, tmp_path, monkeypatch):
    """The worker's answers given: what reaches it (a GGUF for llama.cpp, nemotron-nas for vLLM
    with per-layer widths) and the table that comes back."""
    from secateur.evaluation.bench_config import BenchRecipe
    from secateur.evaluation.bench_outputs import bench_table
    from secateur.runs import bench_engine

    seen = []

    def answer(engine, request, python):
        from pathlib import Path

        served = Path(request["model"])
        seen.append((engine, served.suffix or served.name, served.exists(), request["speed"]["batch"]))
        tps = 100.0 if "baseline" in served.name else 150.0
        runs = [{"prompt_tokens_per_s": tps * 10, "decode_tokens_per_s": tps}] * 3
        return {"speed": {"prompt_tokens_per_s": tps * 10, "decode_tokens_per_s": tps, "runs": runs}}

    monkeypatch.setattr(bench_engine, "run_worker", answer)
    monkeypatch.setattr(bench_engine, "engine_python", lambda engine, given: "python")
    result = bench_engine.run_engine_bench(
        BenchRecipe(model=str(saved_llama), baseline=str(saved_llama), engine="llamacpp", runs=3),
        lambda m: None,
    )
    assert [s[:3] for s in seen] == [("llamacpp", ".gguf", True)] * 2 and {s[3] for s in seen} == {1}
    assert result.speedups[0]["prefill"] == pytest.approx(1.5) and result.speedups[0][
        "decode"
    ] == pytest.approx(1.5)
    table = bench_table(result)
    assert "llama.cpp" in table and "not measured (the engine's own process)" in table
    seen.clear()
    hetero = tmp_path / "hetero"
    from secateur.api import save_pruned

    save_pruned(_global_plan(tiny_model("llama")), tiny_bpe_tokenizer(), hetero)
    recipe = BenchRecipe(
        model=str(hetero), baseline=str(saved_llama), engine="vllm", batch_sizes="1,4", runs=3
    )
    bench_engine.run_engine_bench(recipe, lambda m: None)
    assert seen[0][1] == "model-nemotron-nas" and seen[2][1] == saved_llama.name  # plain: as it is
    assert [s[3] for s in seen] == [1, 4, 1, 4]


def test_engine_options_are_refused_where_they_do_nothing(saved_llama, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SECATEUR_LLAMACPP_PYTHON", raising=False)
    base = ["bench", "--model", saved_llama, "--out", tmp_path / "b"]
    assert_refused(capsys, [*base, "--engine-python", "/usr/bin/python3"], "--engine-python is for")
    assert_refused(
        capsys, [*base, "--engine", "vllm", "--device", "cpu"], "--device is for --engine transformers"
    )
    assert_refused(capsys, [*base, "--engine", "llamacpp", "--dtype", "bfloat16"], "f32 or f16 GGUF")
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:  # the usual case: says how to get it
        assert_refused(capsys, [*base, "--engine", "llamacpp"], "pip install llama-cpp-python")
    missing = [*base, "--engine", "vllm", "--engine-python", tmp_path / "nope"]
    assert_refused(capsys, missing, "does not exist")
