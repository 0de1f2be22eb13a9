"""Mask pruning through the layer pipeline against a plain reference.

The reference hooks the Linears of the whole model and runs the full model one window at a time
(no layer pipeline, no captured kwargs, no batching), sorts each row, and prunes layer by layer in
order, so each layer sees the outputs of the already-pruned layers before it, as in the Wanda code.
"""

import pytest
import torch

from helpers.tiny import MODEL_TYPES, MOE_TYPES, tiny_model
from secateur import api
from secateur.config import PruneConfig
from secateur.errors import SecateurError

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _linears(layer):
    return {n.split(".")[-1]: m for n, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}


@torch.no_grad()
def reference_prune(model, windows, sparsity, nm=None, method="wanda", skip=()):
    from secateur.models.adapter import ModelAdapter

    for index, layer in enumerate(ModelAdapter(model).decoder_layers()):
        if index in skip:
            continue
        linears = _linears(layer)
        sums = {name: torch.zeros(m.in_features, dtype=torch.float64) for name, m in linears.items()}

        def accumulate(module, inp, out, name, sums=sums):
            # Returns None on purpose: a forward hook that returns a value replaces the output.
            x = inp[0].double()  # (b, s, in), or (b*s, in) where OPT flattens before fc1
            sums[name] += (x**2).reshape(-1, x.shape[-1]).sum(0)

        hooks = [
            m.register_forward_hook(lambda mod, inp, out, name=name: accumulate(mod, inp, out, name))
            for name, m in linears.items()
        ]
        for window in windows:
            model(window[None])
        for h in hooks:
            h.remove()
        for name, m in linears.items():
            w = m.weight
            metric = w.abs().double() * (sums[name].sqrt() if method == "wanda" else 1)
            if nm is None:
                k = int(w.shape[1] * sparsity)
                order = torch.argsort(metric, dim=1, stable=True)
                for row in range(w.shape[0]):
                    w[row, order[row, :k]] = 0
            else:
                n, mm = nm
                for start in range(0, w.shape[1], mm):
                    group = metric[:, start : start + mm]
                    lowest = torch.argsort(group, dim=1)[:, : mm - n]
                    for row in range(w.shape[0]):
                        w[row, start + lowest[row]] = 0


def _windows(seed=0, n=6, seqlen=24):
    return torch.randint(0, 256, (n, seqlen), generator=torch.Generator().manual_seed(seed))


def _zero_masks(model):
    return {
        name: (m.weight == 0)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear)
        and "layers" in name
        and "vision_tower" not in name  # Gemma 3's is kept
    }


# The reference hooks nn.Linear modules; routed experts are fused tensors, and their per-expert
# statistics are checked against the router's choices by hand in test_experts.py.
@pytest.mark.parametrize("model_type", [t for t in MODEL_TYPES if t not in MOE_TYPES])
@pytest.mark.parametrize(("pattern", "nm"), [("unstructured", None), ("2:4", (2, 4)), ("4:8", (4, 8))])
def test_wanda_masks_equal_reference(model_type, pattern, nm):
    windows = _windows()
    ours, ref = tiny_model(model_type), tiny_model(model_type)
    report = api.prune(
        ours, PruneConfig(method="wanda", pattern=pattern, batch_size=4), windows, show_progress=False
    )
    reference_prune(ref, windows, 0.5, nm)
    ours_masks, ref_masks = _zero_masks(ours), _zero_masks(ref)
    per_layer = 4 if model_type == "phi3" else 6 if model_type == "opt" else 7  # fused / no gate
    assert ours_masks.keys() == ref_masks.keys() and len(ours_masks) == 3 * per_layer
    for name in ref_masks:
        assert torch.equal(ours_masks[name], ref_masks[name]), name
    assert report.sparsity.actual == pytest.approx(0.5)
    assert all(m.ok for m in report.sparsity.modules)


def test_unstructured_other_sparsity_and_skipped_layers():
    windows = _windows(1)
    ours, ref = tiny_model("llama", 1), tiny_model("llama", 1)
    dense = tiny_model("llama", 1)
    api.prune(ours, PruneConfig(sparsity=0.7, skip_layers=(-1,)), windows, show_progress=False)
    reference_prune(ref, windows, 0.7, skip=(2,))
    for name, mask in _zero_masks(ref).items():
        assert torch.equal(_zero_masks(ours)[name], mask), name
    for a, b in zip(ours.model.layers[2].parameters(), dense.model.layers[2].parameters(), strict=False):
        assert torch.equal(a, b)  # the skipped layer is untouched


def test_magnitude_needs_no_data_and_matches_reference():
    ours, ref = tiny_model("qwen2", 2), tiny_model("qwen2", 2)
    report = api.prune(ours, PruneConfig(method="magnitude", sparsity=0.4), None, show_progress=False)
    reference_prune(ref, [], 0.4, method="magnitude")
    for name, mask in _zero_masks(ref).items():
        assert torch.equal(_zero_masks(ours)[name], mask), name
    assert "capture_s" not in report.timings


def test_batch_size_and_offloading_do_not_change_masks():
    windows = _windows(2, n=7)
    masks = []
    for batch_size, offload in [(1, False), (3, True), (8, False)]:
        model = tiny_model("mistral", 3)
        api.prune(
            model,
            PruneConfig(batch_size=batch_size, offload_activations=offload),
            windows,
            show_progress=False,
        )
        masks.append(_zero_masks(model))
    for other in masks[1:]:
        for name, mask in masks[0].items():
            assert torch.equal(other[name], mask), name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_prune_with_fp32_statistics(dtype):
    windows = _windows(3)
    model = tiny_model("llama", 4, dtype=dtype)
    report = api.prune(model, PruneConfig(pattern="2:4"), windows, show_progress=False)
    assert next(model.parameters()).dtype == dtype
    assert all(m.ok for m in report.sparsity.modules)
    assert torch.isfinite(model(windows[:1]).logits).all()


def test_method_and_layer_errors():
    with pytest.raises(SecateurError, match="unknown method 'sparsegpt2'"):
        api.prune(tiny_model(), PruneConfig(method="sparsegpt2"), _windows(), show_progress=False)
    with pytest.raises(SecateurError, match="needs calibration windows"):
        api.prune(tiny_model(), PruneConfig(method="wanda"), None, show_progress=False)
    with pytest.raises(SecateurError, match="--skip-layers 5 is out of range"):
        api.prune(tiny_model(), PruneConfig(skip_layers=(5,)), _windows(), show_progress=False)
    with pytest.raises(SecateurError, match="beyond the model's context of 128"):
        api.prune(tiny_model(), PruneConfig(), _windows(seqlen=200), show_progress=False)


def test_layer0_capture_records_every_keyword_argument():
    from secateur.calibration.capture import capture_layer_inputs
    from secateur.models.adapter import ModelAdapter

    model = tiny_model()
    inputs = capture_layer_inputs(
        ModelAdapter(model),
        _windows(n=5),
        batch_size=2,
        compute_device=torch.device("cpu"),
        storage_device=torch.device("cpu"),
    )
    assert inputs.hidden.shape == (5, 24, 64)
    # one set of arguments per (layer kind, batch size); LLaMA has one kind of layer
    assert set(inputs.kwargs) == {("decoder", 2), ("decoder", 1)}
    assert "position_embeddings" in inputs.kwargs[("decoder", 2)]
    cos, _sin = inputs.kwargs[("decoder", 2)]["position_embeddings"]
    assert cos.shape[-2:] == (24, 16)
    torch.testing.assert_close(inputs.hidden[0], model.model.embed_tokens(_windows(n=5)[0]))
