"""What every method produces on a tiny model, fingerprinted, so moving code around (#18) provably
changes nothing: the zero pattern (masks) and the shape of every parameter after pruning.

The fingerprints were recorded from the code before the method registry existed. A change that
moves a fingerprint changes results: it needs its own reason, and the new value is recorded with it.
"""

import hashlib

import pytest
from safetensors.torch import load_file

from secateur.api import run_prune
from secateur.config import PruneRecipe, from_dict

CASES = {
    "magnitude-unstructured": {"prune": {"method": "magnitude", "sparsity": 0.5}},
    "wanda-unstructured": {"prune": {"method": "wanda", "sparsity": 0.5}},
    "wanda-2:4": {"prune": {"method": "wanda", "pattern": "2:4"}},
    "wanda-block16": {"prune": {"method": "wanda", "pattern": "block:16", "sparsity": 0.5}},
    "wanda-owl": {"prune": {"method": "wanda", "sparsity": 0.5, "owl": "5,0.08"}},
    "wanda-tiered": {"prune": {"method": "wanda", "pattern": "tiered:16", "topk": 6}},
    "sparsegpt-unstructured": {"prune": {"method": "sparsegpt", "sparsity": 0.5}},
    "sparsegpt-2:4": {"prune": {"method": "sparsegpt", "pattern": "2:4"}},
    "structured-taylor": {"prune": {"method": "structured"}, "structured": {"pruning_ratio": 0.2}},
    "structured-wanda-uniform": {
        "prune": {"method": "structured"},
        "structured": {"importance": "wanda", "uniform": True, "round_to": 16, "temperature": 0},
    },
    "depth-ppl": {"prune": {"method": "depth"}, "depth": {"num_layers": 1}},
    "depth-bi": {"prune": {"method": "depth"}, "depth": {"num_layers": 1, "score": "bi"}},
    "osscar": {
        "prune": {"method": "osscar"},
        "osscar": {"mlp_pruning_ratio": 0.25, "swaps": 2},
        "structured": {"round_to": 16},
    },
}

RECORDED = {
    "depth-bi": "da0da5138eb1bf1e",
    "depth-ppl": "2c4654d5149cbf9f",
    "magnitude-unstructured": "49bd44d0a368ecf3",
    "osscar": "31cff11d4455ed8d",
    "sparsegpt-2:4": "ad2d71bc1f5b9ba8",
    "sparsegpt-unstructured": "c79f1ba2e2e40666",
    "structured-taylor": "60620b0b1b3fce2b",
    "structured-wanda-uniform": "f3b06dfaa47543fb",
    "wanda-2:4": "643366bfd600501e",
    "wanda-block16": "3578281f537a6432",
    "wanda-owl": "590c14591251d4e1",
    "wanda-tiered": "046b51c8b989768e",
    "wanda-unstructured": "e1a6a531f91d5ca6",
}


# These two compute new weight values (solves), whose last bits depend on the BLAS: their masks and
# shapes are fingerprinted. Every other method only zeroes, slices or drops weights: their values too.
SOLVED = ("sparsegpt", "osscar")


def fingerprint(folder, case: str) -> str:
    digest = hashlib.sha256()
    for name, param in sorted(load_file(folder / "model.safetensors").items()):
        digest.update(f"{name}{tuple(param.shape)}".encode())
        digest.update((param == 0).numpy().tobytes())
        if not case.startswith(SOLVED):
            digest.update(param.numpy().tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_method_gives_the_recorded_result(case, saved_llama, corpus, tmp_path):
    data = {
        "model": str(saved_llama),
        "out": str(tmp_path / "out"),
        "calibration": {"dataset": str(corpus), "nsamples": 4, "seqlen": 32},
        "evaluation": {"enabled": False},
        **CASES[case],
    }
    run = run_prune(from_dict(PruneRecipe, data), show_progress=False, note=lambda message: None)
    assert fingerprint(run.out, case) == RECORDED[case]
