import pytest
import torch

from helpers.tiny import tiny_model
from secateur.errors import VerificationError
from secateur.evaluation.sparsity import measure_sparsity, verify_sparsity
from secateur.models.adapter import ModelAdapter
from secateur.patterns.nm import NM
from secateur.patterns.unstructured import Unstructured


def test_dense_model_fails_verification_with_exit_code_3():
    adapter = ModelAdapter(tiny_model())
    report = measure_sparsity(adapter, Unstructured(), dict.fromkeys(range(3), 0.5))
    assert report.actual == 0.0 and len(report.failures()) == 21
    first = r"21 module\(s\), first model\.layers\.0\.self_attn\.q_proj"
    with pytest.raises(VerificationError, match=first) as info:
        verify_sparsity(report, Unstructured())
    assert info.value.exit_code == 3


def test_enough_zeros_in_the_wrong_places_still_fail_nm():
    model = tiny_model()
    with torch.no_grad():
        for layer in model.model.layers:
            for module in layer.modules():
                if isinstance(module, torch.nn.Linear):
                    module.weight[:, : module.weight.shape[1] // 2] = 0  # half zero, but not 2:4
    report = measure_sparsity(ModelAdapter(model), NM(2, 4), dict.fromkeys(range(3), 0.5))
    assert report.actual == pytest.approx(0.5)
    assert all(m.violations > 0 for m in report.modules)
    with pytest.raises(VerificationError, match="breaking 2:4"):
        verify_sparsity(report, NM(2, 4))


def test_skipped_layers_are_expected_dense_and_per_layer_rows_add_up():
    adapter = ModelAdapter(tiny_model())
    report = measure_sparsity(adapter, Unstructured(), {})
    assert report.failures() == []
    rows = report.per_layer()
    assert [r["layer"] for r in rows] == [0, 1, 2]
    assert sum(r["numel"] for r in rows) == report.numel
    assert all(r["target"] == 0.0 for r in rows)
