import pytest
import torch

from secateur.config import PruneConfig
from secateur.errors import SecateurError
from secateur.scoring.owl import OwlSettings, allocate, outlier_ratio


def test_allocation_averages_to_the_target_within_plus_minus_lambda():
    ratios = {0: 0.01, 1: 0.05, 2: 0.02, 3: 0.03}
    sizes = {0: 100, 1: 100, 2: 300, 3: 100}
    result = allocate(ratios, sizes, target=0.6, spread=0.1)
    mean = sum(result[i] * sizes[i] for i in result) / sum(sizes.values())
    assert mean == pytest.approx(0.6, abs=1e-12)
    assert max(result.values()) - min(result.values()) == pytest.approx(0.2)
    assert result[1] < result[3] < result[2] < result[0]  # more outliers, less sparsity
    assert allocate({0: 0.1, 1: 0.1}, {0: 1, 1: 1}, 0.5, 0.1) == {0: 0.5, 1: 0.5}


def test_outlier_ratio():
    scores = [torch.ones(10), torch.tensor([1.0] * 9 + [100.0])]
    # mean = (19 + 100) / 20 = 5.95; only 100 > 5 x 5.95
    assert outlier_ratio(scores, 5.0) == pytest.approx(1 / 20)


def test_owl_settings_and_errors():
    assert OwlSettings.parse("5,0.08") == OwlSettings(5.0, 0.08)
    for bad in ("5", "a,b", "5,0.1,2", "0,0.1"):
        with pytest.raises(SecateurError):
            OwlSettings.parse(bad)
    with pytest.raises(SecateurError, match=r"must lie in \[0, sparsity\]"):
        PruneConfig(sparsity=0.5, owl="5,0.6")
    with pytest.raises(SecateurError, match=r"must lie in \[0, sparsity\]"):
        PruneConfig(sparsity=0.5, owl="5,-0.1")
    with pytest.raises(SecateurError, match="would push some layers"):
        PruneConfig(sparsity=0.7, owl="5,0.3")
    with pytest.raises(SecateurError, match="fixes it"):
        PruneConfig(pattern="2:4", owl="5,0.1")
    assert PruneConfig(sparsity=0.7, pattern="block:8", owl="5,0.1").owl == "5,0.1"
