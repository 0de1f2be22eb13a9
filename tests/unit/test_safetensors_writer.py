"""The streamed output's own safetensors writer must write what safetensors reads back, exactly."""

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from secateur.export.streamed import write_safetensors


def test_written_files_read_back_bit_for_bit(tmp_path):
    tensors = {
        "weight": torch.randn(3, 5),
        "half": torch.randn(7).to(torch.bfloat16),
        "fp16": torch.randn(2, 2).half(),
        "ids": torch.arange(6).reshape(2, 3),
        "flags": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 4),
        "transposed": torch.randn(4, 3).T,  # not contiguous: written in row-major order
    }
    path = tmp_path / "t.safetensors"
    write_safetensors(tensors, path)
    read = load_file(str(path))
    assert read.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert read[name].dtype == tensor.dtype and torch.equal(read[name], tensor), name
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata() == {"format": "pt"}
