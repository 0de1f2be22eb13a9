"""Progressive three-tier pruning: prune a little, fine-tune, repeat, following a schedule.

Each iteration starts from the latest weights and the latest tier maps, gathers fresh calibration
statistics through the layer pipeline, degrades tiles (dense -> N:M, then N:M -> top-k; see
`Tiered.progress`), then fine-tunes with the pruned weights held at zero. Everything an iteration
writes goes to `iterK/`, each piece atomically, and `iterK/log.json` is written last: an iteration
with a log is complete, so `--resume` continues after the last one and a crash loses no completed
iteration.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from secateur import __version__
from secateur.config import to_dict
from secateur.devices import resolve_device
from secateur.errors import SecateurError
from secateur.evaluation.tier_plot import plot_tier_maps
from secateur.export.save import check_output_dir, save_checkpoint
from secateur.export.tier_maps import TIER_MAPS, load_tier_maps, save_tier_maps
from secateur.faults import pause_point
from secateur.pruning.masking import prune_with_masks
from secateur.pruning.tiered import TierState
from secateur.recovery.config import ProgressiveRecipe
from secateur.recovery.finetune import finetune
from secateur.recovery.schedule import ScheduleRow, load_schedule, parse_schedule, schedule_csv
from secateur.runs.session import calibration_windows, check_seqlen, load_model, perplexity_meter
from secateur.scratch import write_text_atomic

RUN_FILE = "progressive.json"
LOG = "log.json"


def _write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def iteration_dir(out: Path, row: ScheduleRow) -> Path:
    return out / f"iter{row.iteration}"


def completed_iterations(out: Path, schedule: list[ScheduleRow]) -> list[dict]:
    """Logs of the iterations finished in `out`, in schedule order, stopping at the first gap."""
    logs = []
    for row in schedule:
        log = iteration_dir(out, row) / LOG
        if not log.is_file():
            break
        logs.append(json.loads(log.read_text()))
    return logs


@dataclass
class ProgressiveRun:
    out: Path
    logs: list[dict] = field(default_factory=list)  # one per iteration, completed ones included
    dense_perplexity: float | None = None
    resumed_after: int = 0  # iterations that were already complete


def _prepare_out(recipe: ProgressiveRecipe, schedule: list[ScheduleRow], note) -> tuple[Path, dict | None]:
    """Check --out against --resume/--overwrite; returns (out, the earlier run's record or None)."""
    out = Path(recipe.out).expanduser() if recipe.out else None
    if out is None:
        raise SecateurError("progressive needs --out DIR for its iterations")
    record_path = out / RUN_FILE
    if recipe.resume and record_path.is_file():
        record = json.loads(record_path.read_text())
        earlier = parse_schedule(record["schedule_csv"], f"{record_path} schedule")
        done = len(completed_iterations(out, earlier))
        if [r.to_dict() for r in earlier[:done]] != [r.to_dict() for r in schedule[:done]]:
            raise SecateurError(
                f"--schedule differs from the one {out} was started with in its {done} "
                f"completed iteration(s): "
                f"resume with the same schedule (it is saved in {record_path}) or start over with --overwrite"
            )
        return out, record
    if recipe.resume:
        if out.exists() and any(out.iterdir()):
            raise SecateurError(
                f"--resume: {out} holds no progressive run ({RUN_FILE} missing); choose --out"
            )
        note(f"--resume: nothing to resume in {out}; starting from iteration {schedule[0].iteration}")
    else:
        check_output_dir(out, recipe.overwrite)
        if out.exists():  # --overwrite: start over
            shutil.rmtree(out)
    return out, None


def run_progressive(
    recipe: ProgressiveRecipe,
    *,
    show_progress: bool = True,
    note: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    argv: list[str] | None = None,
) -> ProgressiveRun:
    """What `secateur progressive` does; see the module docstring."""
    schedule = load_schedule(recipe.schedule)
    out, record = _prepare_out(recipe, schedule, note)
    done_logs = completed_iterations(out, schedule) if record else []
    run = ProgressiveRun(out=out, logs=list(done_logs), resumed_after=len(done_logs))
    if len(done_logs) == len(schedule):
        note(f"all {len(schedule)} iterations in {out} are complete; nothing to do")
        run.dense_perplexity = record.get("dense_perplexity") if record else None
        return run

    start_from = recipe.model
    state = TierState(progressive=True)
    if done_logs:
        last = iteration_dir(out, schedule[len(done_logs) - 1])
        start_from = str(last / "finetuned_model")
        state.maps, _ = load_tier_maps(last / TIER_MAPS)
        note(f"resuming after iteration {schedule[len(done_logs) - 1].iteration} from {start_from}")
    loaded = load_model(start_from, recipe.dtype, recipe.prune.device)
    device = resolve_device(recipe.prune.device)
    check_seqlen(loaded.adapter, recipe.calibration.seqlen)
    windows = calibration_windows(loaded.tokenizer, recipe.calibration)
    meter = perplexity_meter(
        loaded,
        recipe.evaluation,
        recipe.evaluation.dataset or recipe.calibration.dataset,
        recipe.calibration.seqlen,
        device,
        show_progress,
        lambda message: None,
    )

    def measure() -> float | None:
        result = meter("")
        return None if result is None else result.perplexity

    out.mkdir(parents=True, exist_ok=True)
    if record is None:
        dense = measure()
        record = {
            "secateur_version": __version__,
            "command": argv,
            "recipe": to_dict(recipe),
            "schedule_csv": schedule_csv(schedule),
            "dense_perplexity": dense,
        }
        _write_json(out / RUN_FILE, record)
        if dense is not None:
            note(f"perplexity (dense): {dense:.3f}")
    run.dense_perplexity = record.get("dense_perplexity")

    for row in schedule[len(done_logs) :]:
        log = _iteration(recipe, row, loaded, windows, state, measure, out, show_progress, note)
        run.logs.append(log)
    return run


def _iteration(recipe, row, loaded, windows, state, measure, out, show_progress, note) -> dict:
    folder = iteration_dir(out, row)
    if folder.exists():  # an iteration that crashed before its log: redo it
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    note(f"iteration {row.iteration}: target dense {row.dense:g}, N:M {row.mid:g}, top-k {row.topk:g}")

    config = dataclasses.replace(recipe.prune, tiers=row.tiers_arg())
    report = prune_with_masks(loaded.adapter, config, windows, show_progress=show_progress, tier_state=state)
    pattern = config.pattern_object()
    ppl_pruned = measure()
    manifest = {"secateur_version": __version__, "iteration": row.to_dict(), "prune": report.to_dict()}
    save_checkpoint(loaded.model, loaded.tokenizer, folder / "pruned_model", manifest)
    save_tier_maps(folder / TIER_MAPS, state.maps, pattern)
    plot_tier_maps(state.maps, folder / "tier_maps.png", f"iteration {row.iteration}: {_shares(report)}")
    note(
        f"iteration {row.iteration}: pruned to sparsity {report.sparsity.actual:.4f}, ppl {_fmt(ppl_pruned)}"
    )

    # epochs 0 means no fine-tuning this iteration, whatever --max-steps (a per-iteration cap) says.
    max_steps = recipe.finetune.max_steps if row.epochs > 0 else None
    finetune_config = dataclasses.replace(
        recipe.finetune, masked=True, epochs=row.epochs, max_steps=max_steps, device=recipe.prune.device
    )
    dataset = recipe.finetune.dataset or recipe.calibration.dataset
    started = time.perf_counter()
    pause_point(f"progressive-finetune-{row.iteration}")  # fault tests kill the process here
    tuned = finetune(
        loaded.model,
        loaded.tokenizer,
        finetune_config,
        dataset=dataset,
        work_dir=folder,
        show_progress=show_progress,
    )
    ppl_tuned = measure() if tuned.steps else ppl_pruned
    save_checkpoint(
        loaded.model, loaded.tokenizer, folder / "finetuned_model", {**manifest, "finetune": tuned.to_dict()}
    )
    log = {
        "iteration": row.iteration,
        "schedule": row.to_dict(),
        "tiers": report.tier_summary(),
        "sparsity": report.sparsity.actual,
        "perplexity": {"pruned": ppl_pruned, "finetuned": ppl_tuned},
        "finetune": tuned.to_dict(),
        "timings": {**report.timings, "finetune_s": time.perf_counter() - started},
    }
    _write_json(folder / LOG, log)  # last: marks the iteration complete
    note(f"iteration {row.iteration}: fine-tuned {tuned.steps} steps, ppl {_fmt(ppl_tuned)}")
    return log


def _shares(report) -> str:
    tiers = report.tier_summary() or {}
    return ", ".join(f"{name} {share:.1%}" for name, share in tiers.items())


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
