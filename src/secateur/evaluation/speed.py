"""Real speed: prefill and decode latency/throughput, peak memory, size on disk.

Protocol, per (batch size, prompt length): `warmup` untimed runs, then `runs` timed ones; each run
is one prefill (a forward over the whole prompt that fills the KV cache) followed by `new_tokens`
greedy decode steps, one token at a time, reusing the cache. Reported: median and spread (min..max)
of prefill latency and of per-token decode latency, and the throughputs they imply. On CUDA every
timing is bracketed by synchronisations and peak memory is `max_memory_allocated` above what was
allocated before (activations, KV cache, workspace; not the weights). On CPU it is the process's
peak resident set during the timed runs (sampled every 5 ms; weights and Python included), what a
user watching `top` sees: after warm-up the allocator reuses its memory, so a growth would read 0.
Random token ids are used: speed does not depend on the text.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch


@dataclass
class Timing:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Timing:
        return cls(statistics.median(values), min(values), max(values))


@dataclass
class SpeedRow:
    model: str
    device: str
    dtype: str
    kernels: str  # "dense" or "2:4 semi-structured"
    batch_size: int
    prompt_len: int
    new_tokens: int
    prefill_s: Timing
    decode_token_s: Timing  # per generated token (per step of the whole batch)
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    peak_memory_mb: float

    def to_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakRss:
    """Highest resident set size seen while active, sampled every 5 ms in a thread (CPU runs)."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


@torch.inference_mode()
def _one_run(model, ids: torch.Tensor, new_tokens: int, device: torch.device) -> tuple[float, float]:
    """(prefill seconds, decode seconds for `new_tokens` steps)."""
    _sync(device)
    start = time.perf_counter()
    out = model(input_ids=ids, use_cache=True)
    _sync(device)
    prefill = time.perf_counter() - start
    cache = out.past_key_values
    token = out.logits[:, -1].argmax(-1, keepdim=True)
    start = time.perf_counter()
    for _ in range(new_tokens):
        out = model(input_ids=token, past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        token = out.logits[:, -1].argmax(-1, keepdim=True)
    _sync(device)
    return prefill, time.perf_counter() - start


def measure_speed(
    model,
    *,
    label: str,
    device: torch.device,
    batch_size: int,
    prompt_len: int,
    new_tokens: int,
    warmup: int,
    runs: int,
    kernels: str = "dense",
    seed: int = 0,
) -> SpeedRow:
    vocab = model.get_input_embeddings().weight.shape[0]
    ids = torch.randint(0, vocab, (batch_size, prompt_len), generator=torch.Generator().manual_seed(seed))
    ids = ids.to(device)
    for _ in range(warmup):
        _one_run(model, ids, new_tokens, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    prefills, decodes = [], []
    with PeakRss() as rss:
        for _ in range(runs):
            prefill, decode = _one_run(model, ids, new_tokens, device)
            prefills.append(prefill)
            decodes.append(decode / max(new_tokens, 1))
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else rss.peak_mb
    prefill_t, decode_t = Timing.of(prefills), Timing.of(decodes)
    return SpeedRow(
        model=label,
        device=str(device),
        dtype=str(next(model.parameters()).dtype).replace("torch.", ""),
        kernels=kernels,
        batch_size=batch_size,
        prompt_len=prompt_len,
        new_tokens=new_tokens,
        prefill_s=prefill_t,
        decode_token_s=decode_t,
        prefill_tokens_per_s=batch_size * prompt_len / prefill_t.median,
        decode_tokens_per_s=batch_size / decode_t.median if new_tokens else 0.0,
        peak_memory_mb=peak,
    )


def checkpoint_bytes(location: str | Path) -> int | None:
    """Bytes of the weight files of a local checkpoint folder (None for hub ids)."""
    path = Path(location)
    if not path.is_dir():
        return None
    files = [*path.glob("*.safetensors"), *path.glob("*.bin")]
    return sum(f.stat().st_size for f in files)
