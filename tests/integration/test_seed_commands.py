# ruff: noqa: E501  (the seed command lines are kept whole, as users paste them)
"""Every command line of the earlier tools' documents (../shared/seeds), transliterated to
`secateur ...`, parses into the recipe it means (#12 §5). Nothing is loaded or run here."""

import shlex

import pytest

from secateur.cli import finetune, progressive, prune, recover
from secateur.cli.main import build_parser
from secateur.errors import SecateurError

BUILDERS = {"prune": prune.build_recipe, "finetune": finetune.build_recipe, "recover": recover.build_recipe}
BUILDERS["progressive"] = progressive.build_recipe

GQA = "prune --method structured --base_model /newdata/LLMs/Llama-3-8B"
SEED_COMMANDS = [
    # gqa-global-structured-toolkit.md (run_global_pruning.py -> prune --method structured)
    f"{GQA} --output_name Llama-3-8B-Instruct/Taylor_only_20 --pruning_ratio 0.2 --temperature 0.0",
    f"{GQA} --output_name Qwen2.5-7B/Taylor_only_20 --pruning_ratio 0.2 --temperature 1.0",
    f"{GQA} --output_name M/blockwise_20_c4 --pruning_ratio 0.2 --importance_method taylor --temperature 1.0 --tau 0 --dataset c4",
    f"{GQA} --output_name M/layerwise_20_c4_loss --pruning_ratio 0.2 --importance_method taylor --temperature 1.0 --tau inf --dataset c4",
    f"{GQA} --output_name M/Taylor_2nd_20 --pruning_ratio 0.2 --importance_method taylor_2nd --temperature 0 --dataset c4",
    f"{GQA} --output_name M/Taylor_only_20_c4 --pruning_ratio 0.2 --importance_method taylor --dataset c4 --temperature 0.0",
    f"{GQA} --output_name Qwen2.5-7B/prune_20_finetune --pruning_ratio 0.2 --finetune --finetune_data_path yahma/alpaca-cleaned "
    "--finetune_epochs 3 --finetune_lr 3e-4 --lora_r 8 --lora_alpha 16 --device cuda:0",
    f"{GQA} --pruning_ratio 0.2 --freeze_first_n_layers 2 --freeze_last_n_layers 2",
    f"{GQA} --output_name Qwen2.5-7B/prune_20 --pruning_ratio 0.2 --use_gradient_checkpointing --device cuda:0",
    f"{GQA} --output_name Qwen2.5-7B/prune_30 --pruning_ratio 0.3 --temperature 1.5 --epsilon 0.2 --device cuda:0",
    f"{GQA} --pruning_ratio 0.2 --use_gradient_checkpointing --gradient_batch_size 2",
    f"{GQA} --pruning_ratio 0.2 --importance_method taylor_fo",
    f"{GQA} --pruning_ratio 0.2 --importance_method taylor_so",
    # finetune_lora.py -> recover (the pruned model is a folder: see the .bin test below)
    "recover --pruned_model results/Qwen2.5-7B/prune_20 --data_path yahma/alpaca-cleaned "
    "--output_dir results/Qwen2.5-7B/prune_20_finetuned --num_epochs 3 --learning_rate 3e-4 --lora_r 8 "
    "--lora_alpha 16 --device cuda:0",
    # block-wanda-guide.md (main_block.py -> prune)
    "prune --model /mnt/sdb/llm_models/Llama-2-7b-hf --sparsity_ratio 0.5 --block_size 16 --nsamples 128 --seed 0 "
    "--save out/llama2_7b/block_16x16/wanda --save_model out/llama2_7b/block_16x16/wanda/pruned_model",
    "prune --block_size 8 --save out/llama2_7b/block_8x8/wanda",
    "prune --sparsity_ratio 0.3 --save out/llama2_7b/block_16x16/wanda_30",
    "prune --pattern block --sparsity_ratio 0.5",
    # standalone-wanda-pruner.md (wanda_pruner.py -> prune)
    "prune --model meta-llama/Llama-3.2-1B --sparsity_ratio 0.5 --sparsity_type unstructured",
    "prune --model meta-llama/Llama-3.2-1B --sparsity_ratio 0.5 --sparsity_type unstructured --dataset wikitext2 "
    "--save_log results/llama_1b_unstructured.log",
    "prune --model meta-llama/Llama-3.2-1B --sparsity_ratio 0.5 --sparsity_type 2:4 --save_model results/llama_1b_2-4",
    "prune --model meta-llama/Llama-3.2-1B --sparsity_ratio 0.5 --sparsity_type 4:8 --save_model results/llama_1b_4-8",
    "prune --model meta-llama/Llama-3.2-1B --sparsity_ratio 0.5 --sparsity_type unstructured --dataset c4 --nsamples 256",
    "prune --model meta-llama/Llama-3.2-1B --sparsity_ratio 0.5 --seqlen 4096 --cache_dir llm_weights",
    # progressive-three-tier.md: finetune_sparse_model.py -> finetune; the pipeline -> progressive
    "finetune --model_name_or_path ../out/progressive_three_tier/iter1/pruned_model --dataset_name wikitext "
    "--dataset_config_name wikitext-2-raw-v1 --per_device_train_batch_size 4 --per_device_eval_batch_size 4 "
    "--gradient_accumulation_steps 4 --num_train_epochs 2 --learning_rate 2e-5 --bf16 "
    "--output_dir ../out/progressive_three_tier/iter1/finetuned_model --logging_steps 50 --eval_steps 100 "
    "--save_steps 100 --eval_strategy steps --save_strategy steps --load_best_model_at_end "
    "--metric_for_best_model eval_loss --greater_is_better False --save_total_limit 2 --overwrite_output_dir",
    "progressive --model meta-llama/Llama-2-7b-hf --out out/progressive_three_tier",
    "progressive --iteration 1 --out out/progressive_three_tier",
    "progressive --iteration 2 --model out/progressive_three_tier/iter1/finetuned_model "
    "--tier-maps out/progressive_three_tier/iter1/pruned_model/tier_maps.safetensors --out out/progressive_three_tier",
]


def _seed(fragment: str) -> str:
    return next(command for command in SEED_COMMANDS if fragment in command)


def _recipe(command: str):
    args = build_parser().parse_args(shlex.split(command))
    return BUILDERS[args.command](args), args


@pytest.mark.parametrize("command", SEED_COMMANDS, ids=lambda c: " ".join(c.split()[:4]))
def test_every_seed_command_parses(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --output_name writes under ./results
    recipe, _ = _recipe(command)
    assert recipe is not None


def test_seed_spellings_mean_what_they_meant(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe, args = _recipe(_seed("--finetune "))
    assert recipe.out == "results/Qwen2.5-7B/prune_20_finetune" and recipe.model == "/newdata/LLMs/Llama-3-8B"
    assert args.finetune and args.finetune_data_path == "yahma/alpaca-cleaned" and args.lora_r == 8
    assert recipe.prune.device == "cuda:0"
    assert _recipe(f"{GQA} --importance_method taylor_so")[0].structured.importance == "taylor_2nd"
    block, args = _recipe(_seed("--block_size 16"))
    assert block.prune.pattern == "block:16" and block.prune.sparsity == 0.5 and block.calibration.seed == 0
    assert (
        block.out == "out/llama2_7b/block_16x16/wanda/pruned_model"
        and args.save == "out/llama2_7b/block_16x16/wanda"
    )
    assert _recipe("prune --pattern block")[0].prune.pattern_object().size == 16
    tuned, _ = _recipe(_seed("finetune --model_name_or_path"))
    ft = tuned.finetune
    assert (ft.dataset, ft.batch_size, ft.grad_accum, ft.epochs, ft.learning_rate, ft.bf16) == (
        "wikitext",
        4,
        4,
        2,
        2e-5,
        True,
    )
    assert (ft.eval_steps, ft.save_total_limit, ft.keep_best, ft.logging_steps) == (100, 2, True, 50)
    assert (
        tuned.evaluation.batch_size == 4 and tuned.overwrite and tuned.out.endswith("iter1/finetuned_model")
    )
    lora, _ = _recipe(_seed("recover --pruned_model"))
    assert (lora.model, lora.finetune.dataset, lora.finetune.epochs, lora.finetune.device) == (
        "results/Qwen2.5-7B/prune_20",
        "yahma/alpaca-cleaned",
        3,
        "cuda:0",
    )
    assert _recipe(_seed("--iteration 2"))[0].iteration == 2


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            "recover --pruned_model results/Qwen2.5-7B/prune_20/pruned_model.bin --output_dir o",
            "give the model's folder",
        ),
        (
            "finetune --output_dir o --metric_for_best_model accuracy",
            "keeps the checkpoint of lowest validation loss",
        ),
        ("finetune --output_dir o --greater_is_better True", "a lower validation loss is better"),
        (
            "finetune --output_dir o --eval_steps 100 --save_steps 50",
            "--save_steps 50 must equal --eval-steps (100)",
        ),
        ("finetune --output_dir o --eval_strategy steps --save_strategy epoch", "give the same strategy"),
        (
            "finetune --output_dir o --dataset_name wikitext --dataset_config_name wikitext-103-raw-v1",
            "wikitext-2-raw-v1",
        ),
        ("prune --output_name x --out y", "give one of them"),
        ("prune --lora_r 8 --out y", "--lora_r is not used here"),
        ("prune --finetune", "--finetune recovers the pruned output"),
        ("progressive --iteration 2 --out o", "give --tier-maps"),
        (
            "progressive --iteration 2 --tier-maps iter1/tier_maps_iter1.pt --out o",
            "a .pt pickle is never loaded",
        ),
        ("progressive --tier-maps t.safetensors --out o", "--tier-maps is not used here"),
    ],
)
def test_seed_spellings_secateur_cannot_honour_are_one_line(command, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        SecateurError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
    ):
        recipe, args = _recipe(command)
        if args.command == "progressive":
            from secateur.recovery.schedule import load_schedule
            from secateur.runs.progressive_step import _row, _tier_state

            _, first = _row(load_schedule(recipe.schedule), recipe.iteration)
            _tier_state(recipe, first)


def test_eval_strategy_no_turns_validation_off():
    recipe, _ = _recipe("finetune --output_dir o --eval_strategy no")
    assert recipe.finetune.val_set_size == 0 and recipe.finetune.keep_best is False
