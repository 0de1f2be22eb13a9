"""llama.cpp worker: run by path in a Python that has `llama_cpp` (llama-cpp-python), nothing of
secateur. `python llamacpp_worker.py REQUEST.json` prints one JSON object.

Request: {"model": "x.gguf", "threads": 2, "windows": [[ids...], ...] | null,
          "speed": {"prompt_tokens": 512, "new_tokens": 64, "runs": 5} | null}
Perplexity: each window is evaluated with every position's logits kept; the mean NLL of each next
token, summed in float64 (the same tokens secateur's perplexity predicts). Speed: llama.cpp's own
timers (llama_perf_context): prompt processing of `prompt_tokens` in one batch, then `new_tokens`
greedy tokens one at a time; tokens/s of each run, and their median.
"""

import json
import statistics
import sys


def _perplexity(llama_cpp, np, request) -> dict:
    windows = request["windows"]
    seqlen = max(len(w) for w in windows)
    llm = llama_cpp.Llama(
        model_path=request["model"], n_ctx=seqlen, n_batch=seqlen, n_ubatch=seqlen, logits_all=True,
        n_threads=request["threads"], verbose=False,
    )  # fmt: skip
    total, count = 0.0, 0
    for window in windows:
        llm.reset()
        llm.eval(window)
        logits = np.asarray(llm.scores[: len(window)], dtype=np.float64)
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        total -= float(logp[np.arange(len(window) - 1), window[1:]].sum())
        count += len(window) - 1
    return {"perplexity": float(np.exp(total / count)), "mean_nll": total / count, "tokens": count}


def _speed(llama_cpp, np, request) -> dict:
    speed = request["speed"]
    prompt_tokens, new_tokens = speed["prompt_tokens"], speed["new_tokens"]
    llm = llama_cpp.Llama(
        model_path=request["model"], n_ctx=prompt_tokens + new_tokens, n_batch=prompt_tokens,
        n_ubatch=prompt_tokens, n_threads=request["threads"], verbose=False,
    )  # fmt: skip
    vocab = llm.n_vocab()
    prompt = [int(t) for t in np.random.default_rng(0).integers(0, vocab, prompt_tokens)]

    def last_token() -> int:  # greedy: the argmax of the newest logits
        logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(logits, shape=(vocab,))))

    runs = []
    for attempt in range(speed["runs"] + 1):  # the first run warms up
        llm.reset()
        llama_cpp.llama_perf_context_reset(llm.ctx)
        llm.eval(prompt)
        token = last_token()
        for _ in range(new_tokens):
            llm.eval([token])
            token = last_token()
        perf = llama_cpp.llama_perf_context(llm.ctx)
        if attempt:
            runs.append(
                {
                    "prompt_tokens_per_s": 1000 * perf.n_p_eval / perf.t_p_eval_ms,
                    "decode_tokens_per_s": 1000 * perf.n_eval / perf.t_eval_ms if perf.n_eval else 0.0,
                    "n_p_eval": perf.n_p_eval,
                    "n_eval": perf.n_eval,
                }
            )
    return {
        "prompt_tokens_per_s": statistics.median(r["prompt_tokens_per_s"] for r in runs),
        "decode_tokens_per_s": statistics.median(r["decode_tokens_per_s"] for r in runs),
        "runs": runs,
    }


def main() -> None:
    import llama_cpp
    import numpy as np

    with open(sys.argv[1]) as handle:
        request = json.load(handle)
    result = {"engine": f"llama.cpp (llama-cpp-python {llama_cpp.__version__})"}
    if request.get("windows"):
        result["perplexity"] = _perplexity(llama_cpp, np, request)
    if request.get("speed"):
        result["speed"] = _speed(llama_cpp, np, request)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
