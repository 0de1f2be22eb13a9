"""2:4 semi-structured kernels on CUDA: same outputs as the dense 2:4 model, every decoder Linear swapped.

Skipped without CUDA (and on GPUs older than compute capability 8.0, which lack the kernels).
"""

import pytest
import torch

import secateur
from helpers.tiny import tiny_model
from secateur.config import PruneConfig
from secateur.evaluation.sparse_kernels import to_semi_structured, two_four_linears, unavailable_reason
from secateur.evaluation.speed import measure_speed

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_semi_structured_kernels_match_the_dense_two_four_model():
    cuda = torch.device("cuda")
    if unavailable_reason(cuda, torch.float16):
        pytest.skip(unavailable_reason(cuda, torch.float16))
    model = tiny_model(hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=4)
    windows = torch.randint(0, 256, (4, 64), generator=torch.Generator().manual_seed(0))
    secateur.prune(model, PruneConfig(pattern="2:4"), windows, show_progress=False)
    model = model.half().to(cuda)
    with torch.no_grad():
        dense = model(windows.to(cuda)).logits.float()
    assert to_semi_structured(model) == len(two_four_linears(model)) == 3 * 7
    with torch.no_grad():
        sparse = model(windows.to(cuda)).logits.float()
    assert torch.allclose(dense, sparse, atol=5e-2, rtol=1e-2)
    row = measure_speed(
        model, label="m", device=cuda, batch_size=2, prompt_len=64, new_tokens=2, warmup=1, runs=2
    )
    assert row.prefill_tokens_per_s > 0 and row.peak_memory_mb > 0
