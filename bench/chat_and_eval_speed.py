"""Chat latency and evaluation throughput on the built-in model. Prints figures; asserts nothing.

    .venv/bin/python bench/chat_and_eval_speed.py                  # 16 tasks, answers up to 32 tokens
    .venv/bin/python bench/chat_and_eval_speed.py --tasks 8 --max-tokens 16

1. Chat through the inference engine (`transformers serve`, started here as `make run` starts
   it): time to first token and decode tokens/s of streamed answers, one request at a time.
2. Evaluation throughput (tasks/s, greedy answers graded by a string check) of
   - the trainer's own batched sampler (`trainer.evaluation.evaluate`, what evaluations use),
   - the engine, one request per task, sequentially and with 4 requests in flight.
The prompts are the demo project's tasks (webapp/core/demo: customer reviews to label).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GRADER = {"type": "string_check", "name": "label", "operation": "ilike", "input": "{{sample.output_text}}",
          "reference": "{{item.reference_answer}}"}


def engine_chat(client, folder: str, messages, max_tokens: int) -> tuple[float, float, int]:
    """(seconds to the first token, seconds in all, completion tokens) of one streamed answer,
    asked for the way the studio asks (its own stop tokens in a generation_config)."""
    own = json.loads((Path(folder) / "generation_config.json").read_text())
    gen = {k: own[k] for k in ("eos_token_id", "pad_token_id", "bos_token_id") if k in own}
    start = time.perf_counter()
    first, tokens = None, 0
    body = {"model": folder, "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "generation_config": json.dumps({**gen, "max_new_tokens": max_tokens, "do_sample": False})}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            for c in chunk.get("choices") or []:
                if (c.get("delta") or {}).get("content") and first is None:
                    first = time.perf_counter() - start
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return first or 0.0, time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import httpx
    import torch

    from tests.webapp.evals.engine import running_engine
    from trainer.evaluation import SamplingSettings, evaluate, load_for_inference
    from trainer.models import resolve_model

    if args.threads:
        torch.set_num_threads(args.threads)
    from webapp.core.demo import demo_rows

    rows = demo_rows()[: args.tasks]
    folder = str(resolve_model("smollm2-135m-instruct"))
    print(f"built-in model: {folder}; {len(rows)} tasks, answers up to {args.max_tokens} tokens, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs")

    # --- the trainer's sampler --------------------------------------------------------------
    model = load_for_inference("smollm2-135m-instruct", device="cpu")
    settings = SamplingSettings(max_completion_tokens=args.max_tokens, batch_rows=16)
    evaluate(model, rows[:2], GRADER, settings)  # warm-up
    t0 = time.perf_counter()
    results = evaluate(model, rows, GRADER, settings)
    ours = time.perf_counter() - t0
    tokens = sum(r.samples[0]["completion_tokens"] for r in results)
    print(f"trainer sampler (batched, {settings.batch_rows} answers per call): {len(rows) / ours:.2f} tasks/s, "
          f"{tokens / ours:.1f} answer tokens/s, mean reward {statistics.fmean(r.reward for r in results):.3f}")
    del model

    # --- the engine -----------------------------------------------------------------------
    with running_engine(Path("/tmp/bench-engine.log"), threads=torch.get_num_threads()) as url:
        client = httpx.Client(base_url=url, timeout=600)
        msgs = [r["messages"] for r in rows]
        engine_chat(client, folder, msgs[0], 4)  # loads the model
        timings = [engine_chat(client, folder, m, args.max_tokens) for m in msgs]
        ttft = [t[0] for t in timings]
        rates = [t[2] / max(t[1] - t[0], 1e-9) for t in timings if t[2] > 1]
        total = sum(t[1] for t in timings)
        print(f"engine chat, one at a time: time to first token median {statistics.median(ttft) * 1000:.0f} ms "
              f"(p90 {sorted(ttft)[int(0.9 * (len(ttft) - 1))] * 1000:.0f} ms), decode "
              f"{statistics.median(rates):.1f} tokens/s median; {len(rows) / total:.2f} tasks/s")
        with ThreadPoolExecutor(4) as pool:
            t0 = time.perf_counter()
            list(pool.map(lambda m: engine_chat(httpx.Client(base_url=url, timeout=600), folder, m, args.max_tokens), msgs))
            parallel = time.perf_counter() - t0
        print(f"engine, 4 requests in flight: {len(rows) / parallel:.2f} tasks/s")


if __name__ == "__main__":
    main()
