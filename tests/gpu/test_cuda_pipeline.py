"""The layer pipeline with a CUDA compute device and the model in CPU RAM. Skipped without CUDA."""

import pytest
import torch

from helpers.tiny import tiny_model
from secateur import api
from secateur.config import PruneConfig
from secateur.evaluation.perplexity import perplexity
from secateur.models.adapter import ModelAdapter

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("offload", [False, True])
def test_cuda_pruning_matches_cpu_and_leaves_the_model_on_cpu(offload):
    windows = torch.randint(0, 256, (6, 32), generator=torch.Generator().manual_seed(0))
    on_cpu, on_gpu = tiny_model("qwen2"), tiny_model("qwen2")
    api.prune(on_cpu, PruneConfig(pattern="2:4", device="cpu"), windows, show_progress=False)
    report = api.prune(
        on_gpu,
        PruneConfig(pattern="2:4", device="cuda", offload_activations=offload),
        windows,
        show_progress=False,
    )
    assert all(p.device.type == "cpu" for p in on_gpu.parameters())
    assert "cuda_peak_bytes" in report.memory
    mismatched = sum(
        int(((a == 0) != (b == 0)).sum())
        for a, b in zip(on_cpu.parameters(), on_gpu.parameters(), strict=True)
    )
    total = sum(p.numel() for p in on_cpu.parameters())
    assert mismatched / total < 1e-3  # TF32/accumulation order may flip a rare near-tie


def test_layerwise_cuda_perplexity_matches_cpu():
    windows = torch.randint(0, 256, (4, 48), generator=torch.Generator().manual_seed(1))
    model = tiny_model("llama")
    adapter = ModelAdapter(model)
    cpu = perplexity(adapter, windows, show_progress=False)
    gpu = perplexity(adapter, windows, device=torch.device("cuda"), show_progress=False)
    assert gpu.perplexity == pytest.approx(cpu.perplexity, rel=1e-3)
    assert all(p.device.type == "cpu" for p in model.parameters())
