"""Depth pruning: removing layers = skipping them; scores against brute force; standard checkpoints."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from helpers.cli import prune_args
from helpers.tiny import MODEL_TYPES, tiny_model
from secateur.cli.main import main
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.structured.depth import parse_layer_list, remove_layers, window_scores

CPU = torch.device("cpu")


class Skip(torch.nn.Module):
    """A decoder layer that passes the residual stream through untouched."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


@pytest.fixture(scope="module")
def windows(token_windows):
    return token_windows(6, 32)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_removing_layers_equals_skipping_them_and_generate_works(model_type, tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny_model(model_type, num_hidden_layers=5)
    reference = copy.deepcopy(model)
    for index in (1, 2):
        ModelAdapter(reference).decoder_layers()[index] = Skip()
    remove_layers(ModelAdapter(model), [1, 2])
    ids = torch.randint(0, 256, (2, 20))
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-6)
    assert ModelAdapter(model).config.num_hidden_layers == 3  # the decoder's (Gemma 3: text_config)
    assert [layer.self_attn.layer_idx for layer in ModelAdapter(model).decoder_layers()] == [0, 1, 2]
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    prompt = ids[:1, :8]
    cached = reloaded.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True)
    uncached = reloaded.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached) and cached.shape == (1, 14)


def _nll_without(model, windows, start, count):
    trimmed = copy.deepcopy(model)
    remove_layers(ModelAdapter(trimmed), list(range(start, start + count)))
    with torch.no_grad():
        return math.exp(trimmed(input_ids=windows, labels=windows).loss.item())


def test_ppl_scores_equal_brute_force_removal(windows):
    model = tiny_model("llama", num_hidden_layers=5)
    scores = window_scores(ModelAdapter(model), windows, 2, "ppl", device=CPU, show_progress=False)
    assert sorted(scores) == [0, 1, 2, 3]
    for start, value in scores.items():
        assert value == pytest.approx(_nll_without(model, windows, start, 2), rel=1e-4)


def test_bi_scores_are_one_minus_cosine_of_window_ends(windows):
    model = tiny_model("qwen2", num_hidden_layers=4)
    states = []

    def first_input(module, args, kwargs):
        states.append(args[0] if args else kwargs["hidden_states"])

    hooks = [model.model.layers[0].register_forward_pre_hook(first_input, with_kwargs=True)]
    hooks += [
        layer.register_forward_hook(lambda m, a, out: states.append(out)) for layer in model.model.layers
    ]
    with torch.no_grad():
        model(windows)
    for hook in hooks:
        hook.remove()
    scores = window_scores(ModelAdapter(model), windows, 2, "bi", device=CPU, show_progress=False)
    for start in range(3):
        expected = 1 - F.cosine_similarity(states[start], states[start + 2], dim=-1).mean().item()
        assert scores[start] == pytest.approx(expected, abs=1e-5)


def test_layer_lists_parse_and_refuse_what_does_not_exist():
    assert parse_layer_list("11-13", 30) == [11, 12, 13]
    assert parse_layer_list("3,5,-1", 30) == [3, 5, 29]
    for bad, message in (("28-31", "has layers 0-29"), ("a-b", "takes indices"), ("0-29", "remove all")):
        with pytest.raises(SecateurError, match=message):
            parse_layer_list(bad, 30)


def _args(model, corpus, out, *extra):
    return prune_args(
        model, corpus, "--eval-windows", "2", "--out", str(out), "--quiet", "--method", "depth", *extra
    )


def test_cli_depth_writes_a_plain_checkpoint(saved_llama, corpus, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "depth"
    assert main(_args(saved_llama, corpus, out, "--num-layers", "1", "--score", "bi")) == 0
    assert "block influence" in capsys.readouterr().out
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2
    assert (out / "depth_analysis.json").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--num-layers", "3"), "remove between 1 and 2"),
        (("--layers", "2-4"), "has layers 0-2"),
        ((), "exactly one of --num-layers"),
        (("--num-layers", "1", "--layers", "1"), "exactly one of --num-layers"),
        (("--num-layers", "1", "--score", "loss"), "--score must be ppl or bi"),
    ],
)
def test_bad_depth_input_is_one_line_and_writes_nothing(
    saved_llama, corpus, tmp_path, capsys, extra, message
):
    out = tmp_path / "out"
    assert main(_args(saved_llama, corpus, out, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("secateur: error:") and message in err[-1]
    assert not out.exists()
