"""The seed spellings that do more than rename, run for real on a tiny model (#12 §5)."""

import json

import torch
from safetensors.torch import load_file

from helpers.cli import prune_args
from secateur.cli.main import main
from secateur.export.tier_maps import TIER_MAPS, load_tier_maps

NO_TUNING = "iteration,dense,mid_2_4,topk,epochs\n1,0.75,0.25,0,0\n2,0.5,0.25,0.25,0\n"


def _progressive(model, corpus, schedule, out, *extra):
    return [
        "progressive", "--model", str(model), "--schedule", str(schedule), "--out", str(out),
        "--dataset", str(corpus), "--nsamples", "4", "--seqlen", "32", "--no-eval", "--block-size", "16",
        "--topk", "6", "--quiet", *extra,
    ]  # fmt: skip


def test_one_manual_iteration_at_a_time_equals_the_pipeline(saved_llama, corpus, tmp_path):
    schedule = tmp_path / "schedule.csv"
    schedule.write_text(NO_TUNING)  # no fine-tuning: iteration 2 starts from iteration 1's pruned model
    auto, manual = tmp_path / "auto", tmp_path / "manual"
    assert main(_progressive(saved_llama, corpus, schedule, auto)) == 0
    assert main(_progressive(saved_llama, corpus, schedule, manual, "--iteration", "1")) == 0
    first = manual / "iter1/pruned_model"
    step2 = ["--iteration", "2", "--tier-maps", str(first / TIER_MAPS)]
    assert main([*_progressive(first, corpus, schedule, manual), *step2]) == 0
    ours, theirs = (
        load_file(manual / "iter2/pruned_model/model.safetensors"),
        load_file(auto / "iter2/pruned_model/model.safetensors"),
    )
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    maps, _ = load_tier_maps(manual / "iter2/pruned_model" / TIER_MAPS)
    reference, _ = load_tier_maps(auto / "iter2" / TIER_MAPS)
    assert all(torch.equal(maps[name], reference[name]) for name in reference)
    log = json.loads((manual / "iter2/pruned_model/secateur.json").read_text())
    assert log["started_from"]["tier_maps"].endswith(TIER_MAPS)
    # The same step again is refused without --overwrite: the folder exists.
    assert main([*_progressive(first, corpus, schedule, manual), *step2]) == 2


def test_save_writes_the_results_folder_beside_the_model(saved_llama, corpus, tmp_path, capsys):
    results, model = tmp_path / "wanda", tmp_path / "wanda/pruned_model"
    args = prune_args(
        saved_llama, corpus, "--sparsity_ratio", "0.5", "--block_size", "16", "--eval-windows", "2"
    )
    assert main([*args, "--save", str(results), "--save_model", str(model), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert (results / "summary.md").read_text().strip() == printed.strip()
    manifest = json.loads((results / "secateur.json").read_text())
    assert manifest["recipe"]["prune"]["pattern"] == "block:16" and (model / "model.safetensors").exists()
    again = main([*args, "--save", str(results), "--save_model", str(tmp_path / "other"), "--quiet"])
    assert again == 2  # the results folder already holds a summary: --overwrite needed


def test_output_name_and_finetune_prune_then_recover(saved_llama, corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = prune_args(
        saved_llama, corpus, "--method", "structured", "--pruning_ratio", "0.2", "--eval-windows", "2"
    )
    args += ["--output_name", "tiny/prune_20", "--finetune", "--finetune_data_path", str(corpus)]
    args += [
        "--finetune_epochs",
        "1",
        "--finetune_lr",
        "1e-3",
        "--lora_r",
        "4",
        "--lora_alpha",
        "8",
        "--quiet",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    pruned, adapter = tmp_path / "results/tiny/prune_20", tmp_path / "results/tiny/prune_20_finetuned"
    assert (
        (pruned / "model.safetensors").exists()
        and "LoRA recovery" in printed
        and "results/tiny/prune_20_finetuned" in printed
    )
    manifest = json.loads((adapter / "secateur.json").read_text())
    assert (
        manifest["recover_recipe"]["lora"]["r"] == 4
        and manifest["recover_recipe"]["finetune"]["learning_rate"] == 1e-3
    )
    assert manifest["recover"]["training"]["steps"] > 0
