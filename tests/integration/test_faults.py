"""Faults tested the way they happen: real processes killed with SIGKILL at a chosen point, real
broken files, a real size limit on writes. Each ends in one line (exit 2), and nothing partial is left."""

import json
import os
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers.cli import assert_one_line_error, assert_refused, prune_args
from helpers.processes import killed_at, run_cli
from secateur.cli.main import main

SCHEDULE = "iteration,dense,mid_2_4,topk,epochs\n1,0.75,0.25,0,1\n2,0.5,0.25,0.25,1\n3,0.25,0.5,0.25,1\n"


def _siblings(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


@pytest.mark.parametrize("point", ["save", "pruning-layer-1"])
def test_kill_9_of_prune_leaves_no_output_and_the_rerun_just_works(saved_llama, corpus, tmp_path, point):
    out = tmp_path / "out"
    args = prune_args(saved_llama, corpus, "--method", "wanda", "--no-eval", "--out", out, "--quiet")
    killed_at(args, point)
    assert not out.exists()  # never a half-written folder under the name a script looks for
    if point == "save":
        assert len(_siblings(out)) == 1  # what a SIGKILL cannot clean: a hidden, PID-named sibling
    done = run_cli(args)
    assert done.returncode == 0, done.stderr
    assert _weights(out) and json.loads((out / "secateur.json").read_text())["prune"]
    assert _siblings(out) == []  # the dead process's leftovers were removed, ours renamed


def test_kill_9_of_an_overwrite_while_saving_keeps_the_previous_result(saved_llama, corpus, tmp_path):
    out = tmp_path / "out"
    first = prune_args(saved_llama, corpus, "--method", "magnitude", "--no-eval", "--out", out, "--quiet")
    assert run_cli(first).returncode == 0
    before = _weights(out)
    second = prune_args(saved_llama, corpus, "--method", "wanda", "--no-eval", "--out", out, "--overwrite")
    killed_at([*second, "--quiet"], "save")
    after = _weights(out)
    assert all(torch.equal(before[name], after[name]) for name in before)


def _progressive_args(model, corpus, schedule, out, *extra):
    return [
        "progressive", "--model", model, "--schedule", schedule, "--out", out, "--dataset", corpus,
        "--nsamples", "4", "--seqlen", "32", "--no-eval", "--train-seqlen", "32", "--max-steps", "2",
        "--train-batch-size", "2", "--grad-accum", "1", "--learning-rate", "1e-3", "--block-size", "16",
        "--topk", "6", "--quiet", *extra,
    ]  # fmt: skip


def test_kill_9_inside_progressive_iteration_2_then_resume_is_bit_identical(saved_llama, corpus, tmp_path):
    schedule = tmp_path / "schedule.csv"
    schedule.write_text(SCHEDULE)
    reference, out = tmp_path / "reference", tmp_path / "run"
    done = run_cli(_progressive_args(saved_llama, corpus, schedule, reference))
    assert done.returncode == 0, done.stderr
    killed_at(_progressive_args(saved_llama, corpus, schedule, out), "progressive-finetune-2")
    assert (out / "iter1/log.json").exists() and not (out / "iter2/log.json").exists()
    resumed = run_cli(_progressive_args(saved_llama, corpus, schedule, out, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    ours, theirs = _weights(out / "iter3/finetuned_model"), _weights(reference / "iter3/finetuned_model")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    assert not list(out.rglob(".secateur-train-*"))


def _one_line_error(capsys, *fragments: str) -> None:
    assert_one_line_error(capsys.readouterr().err, *fragments)


def _eval(model, corpus):
    return ["eval", "--model", str(model), "--dataset", str(corpus), "--seqlen", "32", "--eval-windows", "2"]


def _copy(saved_llama, tmp_path, name="broken") -> Path:
    folder = tmp_path / name
    shutil.copytree(saved_llama, folder)
    return folder


def test_a_truncated_safetensors_file_is_one_line(saved_llama, corpus, tmp_path, capsys):
    folder = _copy(saved_llama, tmp_path)
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as handle:
        handle.truncate(weights.stat().st_size // 2)
    out = tmp_path / "out"
    argv = [*prune_args(folder, corpus), "--no-eval", "--out", out, "--quiet"]
    assert_refused(capsys, argv, "truncated or corrupted", "re-download", out=out)


def test_an_unknown_architecture_is_one_line(saved_llama, corpus, tmp_path, capsys):
    folder = _copy(saved_llama, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "zorblax"}))
    assert main(_eval(folder, corpus)) == 2
    _one_line_error(capsys, "architecture 'zorblax' is not supported")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_pickle_checkpoint_never_runs_code(saved_llama, corpus, tmp_path, capsys):
    plain = _copy(saved_llama, tmp_path, "plain-bin")
    torch.save(_weights(plain), plain / "pytorch_model.bin")
    (plain / "model.safetensors").unlink()
    assert main(_eval(plain, corpus)) == 0  # tensors only: loads (weights_only=True)
    capsys.readouterr()
    evil = _copy(saved_llama, tmp_path, "evil-bin")
    marker = tmp_path / "pwned"
    torch.save({"model.embed_tokens.weight": _Payload(marker)}, evil / "pytorch_model.bin")
    (evil / "model.safetensors").unlink()
    assert main(_eval(evil, corpus)) == 2
    _one_line_error(capsys, "holds more than tensors", "weights_only=True")
    assert not marker.exists()


def test_a_recipe_with_a_python_tag_is_refused_unbuilt(tmp_path, capsys):
    marker = tmp_path / "pwned"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f'prune: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert main(["prune", "--recipe", str(recipe)]) == 2
    _one_line_error(capsys, "no !!python tags")
    assert not marker.exists()


def _plan(saved_llama, corpus, tmp_path, capsys) -> dict:
    out = tmp_path / "structured"
    args = prune_args(saved_llama, corpus, "--method", "structured", "--pruning-ratio", "0.2", "--no-eval")
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    return json.loads((out / "structured_plan.json").read_text())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda plan: "{not json", "is not valid JSON"),
        (lambda plan: {**plan, "layers": [{**plan["layers"][0], "layer": 99}]}, "plan names layer 99"),
        (
            lambda plan: {**plan, "layers": [{**plan["layers"][0], "channels": [0, 10**6]}]},
            "channels must be",
        ),
        (lambda plan: {**plan, "layers": [{**plan["layers"][0], "kv_heads": [7]}]}, "kv_heads must be"),
        (lambda plan: {"layers": []}, "malformed structured plan"),
    ],
)
def test_a_bad_plan_is_one_line_and_writes_nothing(saved_llama, corpus, tmp_path, capsys, damage, message):
    bad = damage(_plan(saved_llama, corpus, tmp_path, capsys))
    path = tmp_path / "plan.json"
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    out = tmp_path / "applied"
    args = ["apply-plan", "--plan", str(path), "--model", str(saved_llama), "--dataset", str(corpus)]
    assert_refused(capsys, [*args, "--seqlen", "32", "--no-eval", "--out", out, "--quiet"], message, out=out)


def test_a_schedule_without_its_columns_is_one_line(saved_llama, corpus, tmp_path, capsys):
    schedule = tmp_path / "schedule.csv"
    schedule.write_text("iteration,dense,topk\n1,0.5,0.2\n")
    out = tmp_path / "run"
    assert main([str(arg) for arg in _progressive_args(saved_llama, corpus, schedule, out)]) == 2
    _one_line_error(capsys, "mid_2_4")
    assert not out.exists()


def _limit_writes():
    # A disk that fills up: writes past 64 KiB fail with EFBIG (SIGXFSZ ignored so write() returns it).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_a_full_disk_while_saving_is_one_line_and_leaves_nothing(saved_llama, corpus, tmp_path):
    out = tmp_path / "out"
    args = prune_args(saved_llama, corpus, "--method", "magnitude", "--no-eval", "--out", out, "--quiet")
    done = run_cli(args, preexec_fn=_limit_writes)
    assert done.returncode == 2, done.stderr
    assert_one_line_error(done.stderr, "could not write --out", "File too large")
    assert not out.exists() and _siblings(out) == []


def _read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return folder
    # root ignores permission bits: only a read-only mount is read-only for it.
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("running as root without permission to mount a read-only tmpfs")
    return folder


def test_a_read_only_out_is_one_line_before_any_work(saved_llama, corpus, tmp_path, capsys):
    folder = _read_only_folder(tmp_path)
    try:
        out = folder / "out"
        assert main([*prune_args(saved_llama, corpus), "--no-eval", "--out", str(out), "--quiet"]) == 2
        _one_line_error(capsys, "not writable")
        assert not out.exists()
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)], capture_output=True)
        else:
            folder.chmod(0o755)
