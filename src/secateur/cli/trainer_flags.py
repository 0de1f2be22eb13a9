"""The Hugging Face Trainer flags of `finetune_sparse_model.py` that are not plain renames.

Each is accepted where secateur does the same thing, and refused with one line naming the
secateur spelling where it cannot: secateur validates on a part held out of the train split, keeps
the checkpoint of lowest validation loss, and saves a checkpoint at every validation.
"""

from __future__ import annotations

import argparse

from secateur.errors import SecateurError

STRATEGIES = ("no", "steps", "epoch")


def add_trainer_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Hugging Face Trainer spellings")
    group.add_argument(
        "--eval_strategy", "--evaluation_strategy", choices=STRATEGIES, help="see --eval-steps"
    )
    group.add_argument(
        "--save_strategy", choices=STRATEGIES, help="must match --eval_strategy (a checkpoint per validation)"
    )
    group.add_argument("--save_steps", type=int, metavar="N", help="must equal --eval-steps")
    group.add_argument(
        "--metric_for_best_model", metavar="NAME", help="eval_loss (the only one: see --keep-best)"
    )
    group.add_argument("--greater_is_better", metavar="BOOL", help="False (lower validation loss is better)")
    group.add_argument(
        "--dataset_config_name",
        metavar="CONFIG",
        help="the hub config of --dataset_name (e.g. wikitext-2-raw-v1)",
    )


def _false(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise SecateurError(f"--greater_is_better takes True or False, got {text!r}")
    return value in ("false", "0", "no")


def apply_trainer_flags(args: argparse.Namespace, training: dict) -> None:
    """Translate the Trainer flags into `training` (FinetuneConfig fields), or refuse them."""
    metric = args.metric_for_best_model
    if metric is not None and metric not in ("eval_loss", "loss"):
        raise SecateurError(
            f"--metric_for_best_model {metric} is not supported: secateur keeps the checkpoint of lowest "
            "validation loss (--keep-best); use eval_loss"
        )
    if args.greater_is_better is not None and not _false(args.greater_is_better):
        raise SecateurError("--greater_is_better True is not supported: a lower validation loss is better")
    strategy = args.eval_strategy
    if strategy == "no":
        if training.get("eval_steps") is not None:
            raise SecateurError("--eval_strategy no measures nothing: drop --eval-steps")
        training["val_set_size"] = 0
        training.setdefault("keep_best", False)
    elif strategy == "epoch" and training.get("eval_steps") is not None:
        raise SecateurError("--eval_strategy epoch validates once per epoch: drop --eval-steps")
    elif strategy == "steps" and training.get("eval_steps") is None:
        # As the Trainer does: without --eval_steps, validate every --logging_steps.
        from secateur.recovery.config import FinetuneConfig

        training["eval_steps"] = training.get("logging_steps", FinetuneConfig.logging_steps)
    saving = args.save_strategy
    if saving is not None and saving != (strategy or ("steps" if training.get("eval_steps") else "epoch")):
        raise SecateurError(
            f"--save_strategy {saving} is not supported with this validation: secateur saves a checkpoint at "
            "every validation (--eval_strategy/--eval-steps), so give the same strategy"
        )
    if args.save_steps is not None and args.save_steps != training.get("eval_steps"):
        raise SecateurError(
            f"--save_steps {args.save_steps} must equal --eval-steps ({training.get('eval_steps')}): "
            "secateur saves a checkpoint at every validation"
        )
    if args.dataset_config_name is not None:
        _check_dataset_config(training.get("dataset"), args.dataset_config_name)


def _check_dataset_config(dataset: str | None, config: str) -> None:
    from secateur.registry import REGISTRY

    known = REGISTRY.find("hub-dataset", str(dataset or "").lower())
    if known is None:
        raise SecateurError(
            f"--dataset_config_name {config} needs a hub --dataset_name secateur knows "
            f"({', '.join(REGISTRY.names('hub-dataset'))}), got {dataset!r}"
        )
    if known.config != config:
        raise SecateurError(
            f"--dataset_name {dataset} is read with config {known.config}, not {config}: "
            "drop --dataset_config_name or give a local text file"
        )
