"""Zero-shot tasks through EleutherAI's lm-evaluation-harness, on a model already in memory.

The model object is handed to lm-eval's HF wrapper as is, so heterogeneous structured models (which
plain from_pretrained cannot rebuild) and models with merged adapters are evaluated exactly as
secateur loaded them. lm-eval is an optional extra (`pip install 'secateur[eval]'`); its task data
comes from the hub, so offline runs fail with one line naming the task, unless the task is local
(`--tasks-path DIR` holds lm-eval task YAMLs, whose data files may be local too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from secateur.errors import SecateurError

# The metric each usual task is reported by (lm-eval also computes the others; all are kept in JSON).
HEADLINE = {
    "hellaswag": "acc_norm",
    "arc_challenge": "acc_norm",
    "arc_easy": "acc",
    "piqa": "acc",
    "winogrande": "acc",
    "boolq": "acc",
    "openbookqa": "acc_norm",
}


@dataclass
class TaskScore:
    task: str
    metric: str
    value: float
    stderr: float | None
    samples: int | None
    all_metrics: dict

    def to_dict(self) -> dict:
        return vars(self).copy()


def _require_lm_eval():
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise SecateurError(
            "zero-shot tasks need lm-eval: pip install 'secateur[eval]' (or pip install lm-eval)"
        ) from None
    return lm_eval, HFLM, TaskManager


def zero_shot(
    model,
    tokenizer,
    tasks: list[str],
    *,
    device: torch.device,
    batch_size: int = 8,
    num_fewshot: int = 0,
    limit: int | None = None,
    tasks_path: str | None = None,
) -> list[TaskScore]:
    lm_eval, hflm, task_manager_cls = _require_lm_eval()
    manager = task_manager_cls(include_path=tasks_path) if tasks_path else task_manager_cls()
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise SecateurError(
            f"unknown lm-eval task {unknown[0]!r}; e.g. arc_easy, arc_challenge, hellaswag, piqa, "
            f"winogrande, boolq, or a task YAML in --tasks-path"
        )
    model = model.to(device).eval()
    lm = hflm(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(device))
    try:
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=list(tasks),
            num_fewshot=num_fewshot,
            limit=limit,
            task_manager=manager,
            log_samples=False,
            bootstrap_iters=1000,
        )
    except (ConnectionError, OSError, ValueError) as exc:  # datasets' offline and missing-file errors
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise SecateurError(
            f"lm-eval could not prepare {','.join(tasks)}: {reason}. Offline? Task data comes from the hub"
        ) from None
    return [_score(name, metrics, out) for name, metrics in out["results"].items() if name in tasks]


def _score(name: str, metrics: dict, out: dict) -> TaskScore:
    values = {k.split(",")[0]: v for k, v in metrics.items() if "," in k and not k.startswith("alias")}
    metric = HEADLINE.get(name) or next((m for m in ("acc_norm", "acc") if m in values), None)
    metric = metric if metric in values else next(k for k in values if not k.endswith("_stderr"))
    stderr = values.get(f"{metric}_stderr")
    samples = out.get("n-samples", {}).get(name, {}).get("effective")
    return TaskScore(
        name,
        metric,
        float(values[metric]),
        float(stderr) if isinstance(stderr, (int, float)) else None,
        samples,
        values,
    )
