import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers.tiny import save_tiny, tiny_tokenizer, write_corpus


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache; never reach the hub."""
    monkeypatch.setenv("SECATEUR_HOME", str(tmp_path_factory.getbasetemp() / "secateur-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


@pytest.fixture(scope="session")
def saved_llama(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def token_windows(tokenizer, corpus):
    """token_windows(nsamples=4, seqlen=32): seeded calibration windows of the test corpus (cached)."""
    import functools

    import secateur
    from secateur.config import CalibrationConfig

    @functools.cache
    def make(nsamples: int = 4, seqlen: int = 32):
        config = CalibrationConfig(dataset=str(corpus), nsamples=nsamples, seqlen=seqlen)
        return secateur.calibration_windows(tokenizer, config)

    return make
