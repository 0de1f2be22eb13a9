"""The lm-eval bridge on a tiny local task: its accuracy equals one computed by hand from the logits."""

import json

import pytest
import torch

from helpers.tiny import tiny_model, tiny_tokenizer
from secateur.cli.main import main
from secateur.config import StructuredConfig
from secateur.models.adapter import ModelAdapter
from secateur.structured.run import structured_prune

pytest.importorskip("lm_eval")
from secateur.evaluation.zeroshot import zero_shot

CPU = torch.device("cpu")
WORDS = ["sky", "sea", "leaf", "rose", "sun", "grass", "stone", "river", "cloud", "snow", "fire", "sand"]
CHOICES = ["red", "blue", "green", "white"]


@pytest.fixture
def local_task(tmp_path):
    docs = [{"question": f"The {w} is", "choices": CHOICES, "answer": i % 4} for i, w in enumerate(WORDS)]
    data = tmp_path / "tiny.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "tiny.yaml").write_text(
        "task: secateur_tiny_mc\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{answer}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    return tmp_path, docs


@torch.no_grad()
def _accuracy_by_hand(model, tokenizer, docs):
    """Sum of log-probabilities of ' choice' after the question; the argmax must be the answer."""
    hits = 0
    for doc in docs:
        context = tokenizer(doc["question"])["input_ids"]
        scores = []
        for choice in doc["choices"]:
            ids = tokenizer(doc["question"] + " " + choice)["input_ids"]
            logprobs = model(torch.tensor([ids])).logits[0].log_softmax(-1)
            scores.append(sum(float(logprobs[i - 1, ids[i]]) for i in range(len(context), len(ids))))
        hits += int(max(range(len(scores)), key=scores.__getitem__) == doc["answer"])
    return hits / len(docs)


@pytest.mark.parametrize("seed", [0, 1])
def test_lm_eval_accuracy_matches_a_hand_computed_reference(local_task, seed):
    folder, docs = local_task
    model, tokenizer = tiny_model(seed=seed), tiny_tokenizer()
    [score] = zero_shot(model, tokenizer, ["secateur_tiny_mc"], device=CPU, tasks_path=str(folder))
    assert score.metric == "acc" and score.samples == len(docs)
    assert score.value == pytest.approx(_accuracy_by_hand(model, tokenizer, docs))


def test_a_heterogeneous_model_is_evaluated_in_memory_and_through_the_cli(local_task, tmp_path, capsys):
    folder, docs = local_task
    model, tokenizer = tiny_model(), tiny_tokenizer()
    windows = torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(0))
    config = StructuredConfig(importance="magnitude", pruning_ratio=0.3, temperature=0.0)
    structured_prune(ModelAdapter(model), config, windows, device=CPU, show_progress=False)
    [score] = zero_shot(model, tokenizer, ["secateur_tiny_mc"], device=CPU, tasks_path=str(folder))
    assert score.value == pytest.approx(_accuracy_by_hand(model, tokenizer, docs))
    from secateur.api import save_pruned

    save_pruned(model, tokenizer, tmp_path / "pruned")
    report = tmp_path / "tasks.json"
    args = ["eval", "--model", str(tmp_path / "pruned"), "--tasks", "secateur_tiny_mc", "--quiet"]
    assert main([*args, "--tasks-path", str(folder), "--json", str(report)]) == 0
    assert "secateur_tiny_mc" in capsys.readouterr().out
    assert json.loads(report.read_text())["tasks"][0]["value"] == pytest.approx(score.value)
    assert main([*args[:-2], "no_such_task", "--tasks-path", str(folder)]) == 2
    assert "unknown lm-eval task 'no_such_task'" in capsys.readouterr().err


def test_hub_tasks_offline_fail_with_one_line(saved_llama, capsys):
    args = ["eval", "--model", str(saved_llama), "--tasks", "arc_easy", "--limit", "2", "--quiet"]
    assert main(args) == 2  # the test session is offline (HF_DATASETS_OFFLINE=1)
    err = capsys.readouterr().err.strip().splitlines()
    assert "lm-eval could not prepare arc_easy" in err[-1] and "Offline?" in err[-1]
