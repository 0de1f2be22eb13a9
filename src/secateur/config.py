"""Recipes as frozen dataclasses.

Every field carries its help text (and CLI spelling) in its metadata, so the same definition is the
Python API, the CLI flags (see `secateur.cli.options`), and the `secateur.json` manifest that can
replay a run. Values are checked when a config is built, so bad input fails before any work.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from secateur.errors import SecateurError
from secateur.patterns.nm import NM
from secateur.patterns.parse import parse_pattern
from secateur.patterns.tiered import Tiered
from secateur.registry import REGISTRY
from secateur.scoring.owl import OwlSettings
from secateur.scoring.ria import RIA
from secateur.solvers.alps import ALPS
from secateur.solvers.dsnot import DSnoT
from secateur.solvers.sparsegpt import SparseGPT
from secateur.unused_options import check_prune_fields, check_recipe_sections

C = TypeVar("C")


def option(default: Any, help: str, *aliases: str, flag: str | None = None, metavar: str | None = None):
    """A dataclass field with the metadata the CLI builder reads.

    `flag` overrides the derived `--field-name`; `aliases` are extra spellings users of older tools
    type (`--sparsity_ratio`); the snake_case spelling of every multi-word flag is added for free.
    """
    metadata = {"help": help, "aliases": aliases, "flag": flag, "metavar": metavar}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use an immutable default")
    return field(default=default, metadata=metadata)


def parse_int_list(text: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """'0,-1' -> (0, -1); also accepts a list (from JSON/YAML). Empty text -> ()."""
    if isinstance(text, (tuple, list)):
        return tuple(int(v) for v in text)
    text = str(text).strip()
    if not text:
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SecateurError(f"expected comma-separated layer indices like '0,-1', got {text!r}") from None


# The embedded news corpus: calibration, evaluation and training text when none is given.
DEFAULT_DATASET = "lee"


@dataclass(frozen=True)
class CalibrationConfig:
    """Which tokens the pruning statistics are gathered on."""

    dataset: str = option(
        DEFAULT_DATASET,
        "calibration text: an embedded corpus (lee, austen, mobydick), a hub dataset (wikitext2, c4, ptb), "
        "or a local .txt/.jsonl file or folder",
        "--calibration-dataset",
    )
    nsamples: int = option(128, "number of calibration windows (the Wanda/SparseGPT papers use 128)")
    seqlen: int = option(2048, "tokens per calibration window (the papers use 2048)")
    seed: int = option(0, "seed for drawing the calibration windows (same seed, same windows)")

    def __post_init__(self) -> None:
        if self.nsamples < 1:
            raise SecateurError(f"--nsamples must be at least 1, got {self.nsamples}")
        if self.seqlen < 2:
            raise SecateurError(f"--seqlen must be at least 2 tokens, got {self.seqlen}")


@dataclass(frozen=True)
class PruneConfig:
    """What to prune and how."""

    method: str = option(
        "wanda",
        "wanda (|W|·‖X‖), ria (|W| relative to its row and column, ·‖X‖^0.5), magnitude (|W|), "
        "sparsegpt (OBS mask + weight reconstruction), alps (ADMM on the layer's reconstruction, "
        "then a refit of the kept weights), "
        "structured (remove attention groups and MLP channels; see --pruning-ratio), "
        "depth (remove decoder layers; see --num-layers), or osscar (MLP channels chosen and refit "
        "for reconstruction; see --mlp-pruning-ratio), or experts (remove whole routed experts of a "
        "mixture-of-experts model; see --experts-pruning-ratio)",
    )
    sparsity: float | None = option(
        None,
        "fraction of weights to remove in each targeted Linear, in [0, 1); "
        "default 0.5, or 1-N/M for an N:M pattern",
        "--sparsity_ratio",
        "--sparsity-ratio",
    )
    pattern: str = option(
        "unstructured",
        "unstructured (ranked within each output row), N:M such as 2:4 or 4:8, block:B (BxB tiles), "
        "or tiered[:B] (each BxB tile dense, N:M or top-k; see --tiers)",
        "--sparsity_type",
        "--sparsity-type",
    )
    skip_layers: tuple[int, ...] = option(
        (), "decoder layers kept dense, comma-separated, negatives count from the end (e.g. 0,-1)"
    )
    device: str | None = option(None, "compute device for each layer (default: cuda when present, else cpu)")
    batch_size: int = option(4, "calibration windows pushed through a layer at once")
    offload_activations: bool = option(
        False, "keep calibration activations in CPU RAM between layers (saves GPU memory)"
    )
    owl: str | None = option(
        None,
        "outlier-weighted layer-wise sparsity M,lambda (e.g. 5,0.08): layers with more Wanda outliers "
        "(scores > M x mean) get less sparsity, within target +- lambda",
        metavar="M,LAMBDA",
    )
    tiers: str | None = option(
        None,
        "tiered: fractions of tiles kept DENSE, made N:M, made TOPK, summing to 1 (default 0.35,0.45,0.20)",
        metavar="DENSE,NM,TOPK",
    )
    topk: int = option(10, "tiered: weights kept in each TOPK tile (10 of 256 in a 16x16 tile)")
    tier_nm: str = option("2:4", "tiered: the N:M pattern inside N:M tiles", metavar="N:M")
    expert_min_tokens: int = option(
        16,
        "mixture of experts: an expert routed fewer calibration tokens than this is pruned by "
        "weight magnitude (its few tokens say too little about its inputs); the summary counts them",
    )
    # The mask methods' own settings default to what their classes say (written once, there).
    blocksize: int = option(SparseGPT.blocksize, "sparsegpt: columns per lazy weight update")
    percdamp: float = option(
        SparseGPT.percdamp,
        "sparsegpt, alps, dsnot (--initial-method sparsegpt): Hessian dampening, a fraction of its "
        "mean diagonal",
    )
    admm_iterations: int = option(ALPS.admm_iterations, "alps: ADMM iterations (the penalty grows each one)")
    admm_rho: float = option(
        ALPS.admm_rho, "alps: the first ADMM penalty, as a fraction of H's mean eigenvalue"
    )
    refit_iterations: int = option(
        ALPS.refit_iterations,
        "alps: conjugate-gradient steps refitting the kept weights on the support found",
    )
    initial_method: str = option(
        DSnoT.initial_method,
        "dsnot: the starting mask: wanda, magnitude, or sparsegpt (its OBS saliency, no updates)",
    )
    max_cycle_time: int = option(
        DSnoT.max_cycle_time, "dsnot: swap cycles per output row at most (one swap each)"
    )
    update_threshold: float = option(
        DSnoT.update_threshold,
        "dsnot: a row stops once its expected error (summed over a 2048-token window) is this small",
    )
    pow_of_var_regrowing: float = option(
        DSnoT.pow_of_var_regrowing,
        "dsnot: regrow candidates ranked by W·E[x] / Var[x]^this (0: no variance term)",
    )
    channel_permutation: bool = option(
        RIA.channel_permutation,
        "ria with N:M: first reorder each MLP's intermediate channels (gate/up rows, down columns: "
        "the same function) so heavy channels spread over the groups of M",
    )
    skip_layer: str = option(
        DSnoT.skip_layer,
        "dsnot: Linears left with the starting mask: mlp (DSnoT's default), self_attn or no_skip",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "skip_layers", parse_int_list(self.skip_layers))
        if self.sparsity is not None and not (0.0 <= self.sparsity < 1.0):  # NaN fails this too
            raise SecateurError(f"--sparsity must be in [0, 1), got {self.sparsity}")
        if self.batch_size < 1:
            raise SecateurError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.expert_min_tokens < 0:
            raise SecateurError(f"--expert-min-tokens must be >= 0, got {self.expert_min_tokens}")
        if self.blocksize < 1:
            raise SecateurError(f"--blocksize must be at least 1, got {self.blocksize}")
        if not self.percdamp >= 0:
            raise SecateurError(f"--percdamp must be >= 0, got {self.percdamp}")
        if self.admm_iterations < 0 or self.refit_iterations < 0 or not self.admm_rho > 0:
            raise SecateurError("--admm-iterations and --refit-iterations must be >= 0, --admm-rho > 0")
        check_prune_fields(self)
        # Resolve now so a malformed pattern, an N:M/sparsity clash or a bad --owl fails before any work.
        sparsity = self.resolved_sparsity()
        if not isinstance(self.pattern_object(), Tiered) and self.tiers is not None:
            raise SecateurError(f"--tiers applies to --pattern tiered, not {self.pattern}: drop one")
        if self.channel_permutation and not isinstance(self.pattern_object(), NM):
            raise SecateurError(
                f"--channel-permutation spreads channels over N:M groups; --pattern {self.pattern} has none: "
                "drop --channel-permutation"
            )
        method = REGISTRY.find("method", self.method)
        kind = self.pattern_object().kind
        if method is not None and kind not in method.patterns:
            raise SecateurError(
                f"--method {self.method} takes {', '.join(method.patterns)} patterns, not {self.pattern}: "
                "choose one of those, or another method (wanda, magnitude, ria take every pattern)"
            )
        if self.owl is not None:
            if isinstance(self.pattern_object(), (NM, Tiered)):
                raise SecateurError(
                    f"--owl varies sparsity per layer; pattern {self.pattern} fixes it: drop one"
                )
            OwlSettings.parse(self.owl).check(sparsity)

    # Parsed once per config (frozen: the values cannot change under the cache), however many
    # checks and pipeline stages ask for them.
    @functools.cached_property
    def _pattern(self):
        return parse_pattern(self.pattern).configured(self)

    @functools.cached_property
    def _sparsity(self) -> float:
        return self._pattern.resolve_sparsity(self.sparsity)

    def pattern_object(self):
        return self._pattern

    def resolved_sparsity(self) -> float:
        return self._sparsity


@dataclass(frozen=True)
class EvalConfig:
    """How perplexity is measured."""

    dataset: str | None = option(
        None,
        "text to measure perplexity on (default: the calibration dataset's test split)",
        flag="--eval-dataset",
    )
    seqlen: int | None = option(
        None, "tokens per evaluation window (default: --seqlen)", flag="--eval-seqlen"
    )
    batch_size: int = option(
        4, "evaluation windows per forward pass", "--per_device_eval_batch_size", flag="--eval-batch-size"
    )
    max_windows: int | None = option(
        None, "evaluate at most this many windows (default: the whole test split)", flag="--eval-windows"
    )
    dense: bool = option(True, "also measure the dense model before pruning", flag="--eval-dense")
    enabled: bool = option(True, "measure perplexity at all (--no-eval skips it)", flag="--eval")

    def __post_init__(self) -> None:
        if self.seqlen is not None and self.seqlen < 2:
            raise SecateurError(f"--eval-seqlen must be at least 2 tokens, got {self.seqlen}")
        if self.batch_size < 1:
            raise SecateurError(f"--eval-batch-size must be at least 1, got {self.batch_size}")
        if self.max_windows is not None and self.max_windows < 1:
            raise SecateurError(f"--eval-windows must be at least 1, got {self.max_windows}")


@dataclass(frozen=True)
class StructuredConfig:
    importance: str = option(
        "taylor",
        "group importance: taylor (|W·dL/dW|), taylor_2nd (+ Fisher term), wanda (|W|·||X||), magnitude",
        "--importance_method",
        "--importance-method",
    )
    pruning_ratio: float = option(0.2, "fraction of the model's total parameters to remove, in (0, 1)")
    temperature: float | None = option(
        None,
        "H-GSP prior strength T (score x ln(1+influence)^T); 0 turns priors off. Default: 0 with taylor "
        "importances, 1 with wanda and magnitude (each measured best, docs/benchmarks.md)",
    )
    tau: float | None = option(
        None,
        "H-GSP gate: 0 = block-wise priors, inf = layer-wise, unset = 25th percentile of layer influence",
    )
    epsilon: float = option(
        0.0,
        "H-GSP collapse threshold: after planning, a layer keeping less than this share of itself "
        "(mean of its KV-group and MLP-channel shares) is removed whole; 0 collapses none",
    )
    freeze_first_n_layers: int = option(0, "keep the first N decoder layers whole")
    freeze_last_n_layers: int = option(0, "keep the last N decoder layers whole")
    uniform: bool = option(False, "same ratio in every layer (a standard config) instead of the global plan")
    round_to: int = option(64, "with --uniform or --method osscar: MLP channels kept are a multiple of this")
    gradient_batch_size: int = option(4, "calibration windows per backward pass (taylor)")
    gradient_checkpointing: bool = option(
        False,
        "recompute activations in the backward pass (taylor; less memory)",
        "--use_gradient_checkpointing",
    )
    plan: str | None = option(None, "apply this saved structured_plan.json instead of planning")
    reconstruct: bool = option(
        False,
        "refit o_proj and down_proj by least squares on the calibration activations, layer by layer, "
        "so each rebuilds its unpruned output from the inputs it keeps",
    )
    serve: str | None = option(
        None,
        "plan for a serving engine: vllm (its nemotron-nas format keeps query heads global, so a "
        "layer's attention goes whole or stays whole, layer 0's stays; MLP channels go one by one)",
    )

    def __post_init__(self) -> None:
        # The GQA toolkit's documentation also calls them taylor_fo / taylor_so (first/second order).
        object.__setattr__(self, "importance", IMPORTANCE_ALIASES.get(self.importance, self.importance))
        if self.importance not in STRUCTURED_IMPORTANCES:
            raise SecateurError(
                f"--importance must be one of {', '.join(STRUCTURED_IMPORTANCES)}, got {self.importance!r}"
            )
        if not 0.0 < self.pruning_ratio < 1.0:
            raise SecateurError(f"--pruning-ratio must be in (0, 1), got {self.pruning_ratio}")
        if self.temperature is not None and (not self.temperature >= 0 or math.isinf(self.temperature)):
            raise SecateurError(f"--temperature must be a finite number >= 0, got {self.temperature}")
        if self.tau is not None and not self.tau >= 0:
            raise SecateurError(f"--tau must be >= 0 (or inf), got {self.tau}")
        if not 0 <= self.epsilon <= 1:
            raise SecateurError(f"--epsilon is a share of a layer, in [0, 1]; got {self.epsilon}")
        if self.freeze_first_n_layers < 0 or self.freeze_last_n_layers < 0:
            raise SecateurError("--freeze-first-n-layers and --freeze-last-n-layers must be >= 0")
        if self.round_to < 1 or self.gradient_batch_size < 1:
            raise SecateurError("--round-to and --gradient-batch-size must be at least 1")
        if self.serve is not None and self.serve != "vllm":
            raise SecateurError(f"--serve must be vllm, got {self.serve!r}")
        if self.serve is not None and self.uniform:
            raise SecateurError(
                "--uniform gives a standard checkpoint that every engine loads as it is: drop --serve"
            )

    @property
    def prior_temperature(self) -> float:
        """T as given, else the default of the importance: with Taylor the priors cost 3-10x in
        perplexity on SmolLM2 (they cut attention far more), with Wanda or magnitude they save it."""
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.importance.startswith("taylor") else 1.0

    @property
    def needs_gradients(self) -> bool:
        return self.importance.startswith("taylor") and self.plan is None

    @property
    def needs_activations(self) -> bool:
        planning = self.plan is None and (self.importance != "magnitude" or self.prior_temperature > 0)
        return planning or self.reconstruct


@dataclass(frozen=True)
class DepthConfig:
    """Depth pruning: `secateur prune --method depth` removes whole decoder layers."""

    num_layers: int | None = option(None, "remove this many consecutive decoder layers (the best window)")
    score: str = option(
        "ppl",
        "how windows are ranked: ppl (calibration perplexity without them) or bi (block influence, faster)",
    )
    layers: str | None = option(None, "remove exactly these layers, e.g. 11-13 or 3,5,7 (no scoring)")

    def __post_init__(self) -> None:
        if self.score not in ("ppl", "bi"):
            raise SecateurError(f"--score must be ppl or bi, got {self.score!r}")
        if self.num_layers is not None and self.num_layers < 1:
            raise SecateurError(f"--num-layers must be at least 1, got {self.num_layers}")


@dataclass(frozen=True)
class ExpertsConfig:
    """Expert pruning: `secateur prune --method experts` removes whole routed experts per layer."""

    experts_pruning_ratio: float | None = option(
        None, "fraction of every MoE layer's routed experts to remove, in (0, 1) (rounded down)"
    )
    num_experts: int | None = option(
        None, "routed experts to KEEP in every MoE layer (the config's num_experts becomes this)"
    )
    expert_score: str = option(
        "reap",
        "how experts are ranked: reap (mean router weight x expert output norm over the tokens routed "
        "to it, Lasby et al. 2025) or frequency (how many calibration tokens it is routed)",
    )

    def __post_init__(self) -> None:
        if self.expert_score not in EXPERT_SCORES:
            raise SecateurError(
                f"--expert-score must be one of {', '.join(EXPERT_SCORES)}, got {self.expert_score!r}"
            )
        ratio = self.experts_pruning_ratio
        if ratio is not None and not 0.0 < ratio < 1.0:
            raise SecateurError(f"--experts-pruning-ratio must be in (0, 1), got {ratio}")
        if self.num_experts is not None and self.num_experts < 1:
            raise SecateurError(f"--num-experts must be at least 1, got {self.num_experts}")


EXPERT_SCORES = ("reap", "frequency")


@dataclass(frozen=True)
class OsscarConfig:
    """OSSCAR MLP pruning: `secateur prune --method osscar` (uses --round-to for the kept width)."""

    # 0.1 as in AMD Quark's OSSCARConfig, where users of this method come from.
    mlp_pruning_ratio: float = option(0.1, "fraction of every layer's MLP channels to remove, in (0, 1)")
    damp_percent: float = option(
        0.01, "dampening of the least-squares refit, relative to each channel's scale"
    )
    swaps: int = option(8, "local-search swap moves tried per layer (0: the start + refit only)")
    start: str = option(
        "greedy",
        "where the search starts: wanda (channel norms) or greedy (backward elimination with refit)",
        flag="--osscar-start",
    )
    skip_first_tokens: int = option(
        1, "leave the first positions of every window (the attention sink) out of the refit statistics"
    )
    true_sequential: bool = option(
        True,
        "statistics of each layer from the inputs the already-pruned layers give it "
        "(--no-true-sequential: from the dense model's; Quark's true_sequential flag is another thing: "
        "it groups a layer's modules)",
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.mlp_pruning_ratio < 1.0:
            raise SecateurError(f"--mlp-pruning-ratio must be in (0, 1), got {self.mlp_pruning_ratio}")
        if not self.damp_percent >= 0:
            raise SecateurError(f"--damp-percent must be >= 0, got {self.damp_percent}")
        if self.swaps < 0:
            raise SecateurError(f"--swaps must be >= 0, got {self.swaps}")
        if self.start not in ("wanda", "greedy"):
            raise SecateurError(f"--osscar-start must be wanda or greedy, got {self.start!r}")
        if self.skip_first_tokens < 0:
            raise SecateurError(f"--skip-first-tokens must be >= 0, got {self.skip_first_tokens}")


@dataclass(frozen=True)
class PruneRecipe:
    """Everything `secateur prune` does, as data: the manifest of a run is a valid recipe."""

    model: str = option(
        "smollm2-135m",
        "embedded model name (see `secateur models`), local Hugging Face folder, or hub id",
        "--base_model",
        "--base-model",
    )
    dtype: str = option("auto", "float32, float16, bfloat16, or auto (fp32 on CPU, the checkpoint's on GPU)")
    out: str | None = option(None, "output folder for the pruned checkpoint", "--save_model", "--save-model")
    overwrite: bool = option(False, "replace an existing --out folder")
    trust_remote_code: bool = option(
        False,
        "run the modeling code that ships with the checkpoint (only for sources you trust); an "
        "architecture secateur has no row for is then pruned with mask methods only",
    )
    stream: bool = option(
        False,
        "leave the decoder layers on disk and read each just before its turn (models larger than "
        "RAM; mask methods)",
    )
    max_memory: float | None = option(
        None,
        "GiB of RAM the model may take; a larger one is streamed (--stream) with a mask method, "
        "refused otherwise (default: the memory free when the run starts)",
    )
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    structured: StructuredConfig = field(default_factory=StructuredConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    osscar: OsscarConfig = field(default_factory=OsscarConfig)
    experts: ExpertsConfig = field(default_factory=ExpertsConfig)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise SecateurError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        check_recipe_sections(self)


DTYPES = ("auto", "float32", "float16", "bfloat16")
STRUCTURED_IMPORTANCES = ("taylor", "taylor_2nd", "wanda", "magnitude")
IMPORTANCE_ALIASES = {"taylor_fo": "taylor", "taylor_so": "taylor_2nd"}


def to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build `cls` from a dict, recursing into nested config dataclasses; unknown keys are errors."""
    if not isinstance(data, dict):
        raise SecateurError(f"expected a mapping for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SecateurError(
            f"unknown field {unknown[0]!r} in {cls.__name__}; known fields: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        target = hints[name]  # nested configs are the fields typed as a config dataclass
        if dataclasses.is_dataclass(target) and isinstance(target, type):
            value = from_dict(target, value)
        values[name] = value
    try:
        return cls(**values)
    except TypeError as exc:  # wrong value types surface here
        raise SecateurError(f"bad value in {cls.__name__}: {exc}") from None


def load_recipe(path: str | Path) -> PruneRecipe:
    """Read a recipe (or a run's secateur.json, whose "recipe" key holds one) from YAML or JSON."""
    path = Path(path)
    if not path.is_file():
        raise SecateurError(f"recipe file {path} does not exist")
    text = path.read_text()
    import yaml

    try:  # safe_load: a `!!python/...` tag is refused, never constructed
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise SecateurError(
            f"recipe {path} cannot be read ({first}); recipes hold plain values only (no !!python tags)"
        ) from None
    if isinstance(data, dict) and "recipe" in data:
        data = data["recipe"]
    return from_dict(PruneRecipe, data)
