"""`secateur progressive --iteration K`: one step of a schedule, by hand (the seed's manual mode).

Iteration K prunes the given model (the previous iteration's fine-tuned model) starting from the
previous iteration's tier map, so tiers still only move down (dense -> N:M -> top-k), and writes
OUT/iterK/pruned_model (its tier map, tier_maps.safetensors, inside it). Fine-tuning is the user's next step
(`secateur finetune`, masked by default on the pruned model), as it was in the seed.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from secateur import __version__
from secateur.devices import resolve_device
from secateur.errors import SecateurError
from secateur.evaluation.tier_plot import plot_tier_maps
from secateur.export.save import check_output_dir, save_checkpoint
from secateur.export.tier_maps import TIER_MAPS, load_tier_maps, save_tier_maps
from secateur.pruning.masking import prune_with_masks
from secateur.pruning.tiered import TierState
from secateur.recovery.config import ProgressiveRecipe
from secateur.recovery.schedule import load_schedule
from secateur.runs.session import calibration_windows, check_seqlen, load_model, perplexity_meter


def _row(schedule, iteration: int):
    for row in schedule:
        if row.iteration == iteration:
            return row, row is schedule[0]
    known = ", ".join(str(r.iteration) for r in schedule)
    raise SecateurError(f"--iteration {iteration} is not in the schedule (iterations {known})")


def _tier_state(recipe: ProgressiveRecipe, first: bool) -> TierState:
    state = TierState(progressive=True)
    if first:
        if recipe.tier_maps is not None:
            raise SecateurError(
                f"--iteration {recipe.iteration} is the first: it starts dense, drop --tier-maps"
            )
        return state
    if recipe.tier_maps is None:
        raise SecateurError(
            f"--iteration {recipe.iteration} continues the previous iteration's tiers: "
            f"give --tier-maps OUT/iter{recipe.iteration - 1}/{TIER_MAPS}"
        )
    path = Path(recipe.tier_maps).expanduser()
    if path.suffix != ".safetensors":
        raise SecateurError(
            f"--tier-maps {path}: secateur reads its own {TIER_MAPS} "
            "(a .pt pickle is never loaded, it could run code)"
        )
    if not path.is_file():
        raise SecateurError(f"--tier-maps {path} does not exist")
    state.maps, _ = load_tier_maps(path)
    return state


def run_single_iteration(
    recipe: ProgressiveRecipe,
    *,
    show_progress: bool = True,
    note: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> dict:
    """Prune iteration `recipe.iteration` of the schedule; returns its log (also OUT/iterK/log.json)."""
    row, first = _row(load_schedule(recipe.schedule), recipe.iteration)
    state = _tier_state(recipe, first)
    if recipe.out is None:
        raise SecateurError("progressive needs --out DIR (iteration K writes DIR/iterK)")
    folder = Path(recipe.out).expanduser() / f"iter{row.iteration}"
    check_output_dir(folder, recipe.overwrite)
    loaded = load_model(recipe.model, recipe.dtype, recipe.prune.device)
    check_seqlen(loaded.adapter, recipe.calibration.seqlen)
    windows = calibration_windows(loaded.tokenizer, recipe.calibration)
    config = dataclasses.replace(recipe.prune, tiers=row.tiers_arg())
    report = prune_with_masks(loaded.adapter, config, windows, show_progress=show_progress, tier_state=state)
    measure = perplexity_meter(
        loaded,
        recipe.evaluation,
        recipe.evaluation.dataset or recipe.calibration.dataset,
        recipe.calibration.seqlen,
        resolve_device(recipe.prune.device),
        show_progress,
        note,
    )
    pruned = measure("pruned")
    log = {
        "secateur_version": __version__,
        "iteration": row.to_dict(),
        "started_from": {"model": recipe.model, "tier_maps": recipe.tier_maps},
        "prune": report.to_dict(),
        "tiers": report.tier_summary(),
        "perplexity": {"pruned": pruned.to_dict() if pruned else None},
    }

    def extra(model_folder: Path) -> None:
        save_tier_maps(model_folder / TIER_MAPS, state.maps, config.pattern_object())
        plot_tier_maps(state.maps, model_folder / "tier_maps.png", f"iteration {row.iteration}")

    # The iteration folder is written whole or not at all: the model, then its tier map beside it.
    out = save_checkpoint(
        loaded.model, loaded.tokenizer, folder / "pruned_model", log, recipe.overwrite, extra
    )
    note(
        f"iteration {row.iteration}: sparsity {report.sparsity.actual:.4f}; next: secateur finetune "
        f"--model {out} --out {folder / 'finetuned_model'}, then --iteration {row.iteration + 1} "
        f"--model {folder / 'finetuned_model'} --tier-maps {out / TIER_MAPS}"
    )
    return log
