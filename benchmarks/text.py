"""Text generation: tokens per second and time to first token through the server (POST
/v1/chat/completions with stream: true, read as SSE) against the family's adapter called in
this process (the same model, prompt, seed and max_tokens; greedy, so both make the same
tokens), rounds interleaved, one torch thread on each side.

    .venv/bin/python benchmarks/text.py [--rounds 5] [--max-tokens 128] [--smollm2]

Time to first token in process is from the call to the first token's progress report (what
the server's worker writes at once); through the server it is from the POST to the first SSE
chunk with text, so it includes submit (a durable job), claim, and the stream's wait for the
job's change. Tokens per second are output tokens over the whole request.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import QuietContext, Server, write_result

TINY = "limner/tiny-llama"
SMOL = "HuggingFaceTB/smollm2-135m-instruct"
PROMPT = "Write a short paragraph about a lighthouse on a rocky coast at night."


class FirstToken(QuietContext):
    """Records when the first token's progress came (the adapter's Watch reports each token)."""

    def __init__(self) -> None:
        self.first: float | None = None

    def figures(self, values: dict[str, Any], *, now: bool = False) -> None:
        if self.first is None:
            self.first = time.perf_counter()


class InProcess:
    def __init__(self, model_id: str) -> None:
        import torch

        from limner.adapters import load_adapter
        from limner.adapters.base import LoadEnv
        from limner.catalog import load_catalog

        torch.set_num_threads(1)
        self.entry = load_catalog().get(model_id)
        self.adapter = load_adapter(self.entry.family)
        env = LoadEnv(device="cpu", models_dir=Path(tempfile.mkdtemp(prefix="limner-bench-text-")))
        self.model = self.adapter.load(self.entry, env)

    def __call__(self, max_tokens: int) -> tuple[float, float, int, str]:
        from limner.adapters.base import WorkItem
        from limner.catalog.inputs import finalize_input, parse_input

        body = {
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "seed": 1,
        }
        parsed = finalize_input(self.entry, parse_input(self.entry, body))
        ctx = FirstToken()
        started = time.perf_counter()
        [output] = self.adapter.run(self.model, self.entry, [WorkItem("bench", parsed)], ctx)
        ended = time.perf_counter()
        tokens = int(output.extra["usage"]["output_tokens"])
        return (ctx.first or ended) - started, ended - started, tokens, str(output.extra["output"])


def through_server(http: httpx.Client, model_id: str, max_tokens: int) -> tuple[float, float, int, str]:
    body = {
        "model": model_id,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first: float | None = None
    tokens = 0
    text = ""
    started = time.perf_counter()
    with http.stream("POST", "/v1/chat/completions", json=body, headers={"X-Limner-Cache": "off"}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            for choice in event.get("choices", []):
                piece = choice["delta"].get("content") or ""
                if piece and first is None:
                    first = time.perf_counter()
                text += piece
            if event.get("usage"):
                tokens = int(event["usage"]["completion_tokens"])
    ended = time.perf_counter()
    return (first or ended) - started, ended - started, tokens, text


def measure(model_id: str, rounds: int, max_tokens: int, http: httpx.Client) -> dict[str, Any]:
    local = InProcess(model_id)
    local(max_tokens)  # warm both sides: the model resident, the first call's overheads paid
    through_server(http, model_id, max_tokens)
    runs: dict[str, list[tuple[float, float, int, str]]] = {"in_process": [], "server": []}
    for _ in range(rounds):
        runs["in_process"].append(local(max_tokens))
        runs["server"].append(through_server(http, model_id, max_tokens))
    same_text = all(a[3] == b[3] for a, b in zip(runs["in_process"], runs["server"], strict=True))
    figures: dict[str, Any] = {}
    for side, made in runs.items():
        figures[side] = {
            "ttft_ms": round(1000 * statistics.median(r[0] for r in made), 1),
            "tokens_per_s": round(statistics.median(r[2] / r[1] for r in made), 1),
            "output_tokens": made[0][2],
        }
    server, inproc = figures["server"], figures["in_process"]
    figures["ratio_tokens_per_s"] = round(server["tokens_per_s"] / inproc["tokens_per_s"], 3)
    figures["ttft_extra_ms"] = round(server["ttft_ms"] - inproc["ttft_ms"], 1)
    figures["same_text"] = same_text
    print(
        f"{model_id}: in process {inproc['tokens_per_s']} tok/s, TTFT {inproc['ttft_ms']} ms; "
        f"server {server['tokens_per_s']} tok/s ({figures['ratio_tokens_per_s']}x), TTFT {server['ttft_ms']} ms "
        f"(+{figures['ttft_extra_ms']} ms); {inproc['output_tokens']} tokens, same text: {same_text}"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--smollm2", action="store_true", help="Also SmolLM2-135M (real weights, ~20 s to load).")
    args = parser.parse_args()
    models = [TINY, SMOL] if args.smollm2 else [TINY]
    results: dict[str, Any] = {}
    with Server(workers=1, env={"LIMNER_THREADS": "1", "LIMNER_RUN_TIMEOUT_S": "3600"}) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.base, timeout=600) as http:
            for model_id in models:
                results[model_id] = measure(model_id, args.rounds, args.max_tokens, http)
    write_result(
        "text",
        {
            "rounds": args.rounds,
            "max_tokens": args.max_tokens,
            "aim": {"ratio_tokens_per_s": ">= 0.9", "ttft_extra_ms": "<= 50"},
            "models": results,
        },
    )


if __name__ == "__main__":
    main()
