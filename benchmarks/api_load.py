"""Bounded load test of `tunelab api`: streaming chat requests from N concurrent clients in this process.

    python benchmarks/api_load.py                         # starts `tunelab api` on a tiny random Qwen2 itself
    python benchmarks/api_load.py --url http://127.0.0.1:8000 --api-key KEY --requests 50
    python benchmarks/api_load.py --compare --sweep 1,8,32   # before / after batching, same run, same machine

Each of the `--concurrency` clients sends its requests one after another (a closed loop), so time to
first token is what a client waits for, not a queue inside this script. `--sweep` repeats the load at
several client counts; `--compare` starts the server twice: "before", the one-at-a-time engine tunelab
had before batching (API_MAX_BATCH=1: transformers' generate, one request at a time,
API_MAX_CONCURRENT=1), and "after", the batching hf engine (API_MAX_BATCH = API_MAX_CONCURRENT =
`--max-batch`), and prints both tables with the throughput gain.

Correctness first: each prompt's greedy (temperature 0) answer is fetched once, non-streaming, as
the reference; every streamed answer under load must equal it token for token, report the same
completion token count, end with a finish_reason and `data: [DONE]`. A request that errors, times
out or ends early counts as failed or lost. Only loopback targets are accepted, the request count
and the total time are bounded, and the exit code is 0 only when every request was answered right.
Prints one JSON summary (also written to --json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

PROMPTS = (
    "Hello, who are you?",
    "Write one sentence about the sea.",
    "What is two plus two?",
    "Name a colour.",
    "Tell me a short joke.",
    "Explain, in a few careful sentences, why the sky looks blue during the day and red at sunset.",
    "List three animals that live in the deep ocean and say one thing about each of them.",
    "Hi",
)  # of different lengths: in a batch they are padded differently, and must still answer as alone
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Outcome:
    prompt: int
    ok: bool = False
    done: bool = False
    text: str = ""
    completion_tokens: int | None = None
    finish_reason: str | None = None
    status: int | None = None
    error: str = ""
    ttft: float | None = None
    latency: float | None = None
    chunks: int = 0
    problems: list[str] = field(default_factory=list)


def _body(prompt: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "bench", "messages": [{"role": "user", "content": prompt}],
                            "temperature": 0, "max_tokens": max_tokens, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


async def reference(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> tuple[str, int]:
    reply = await client.post("/v1/chat/completions", json=_body(prompt, max_tokens, False))
    reply.raise_for_status()
    data = reply.json()
    return data["choices"][0]["message"]["content"], data["usage"]["completion_tokens"]


async def one_stream(client: httpx.AsyncClient, index: int, max_tokens: int) -> Outcome:
    out = Outcome(prompt=index % len(PROMPTS))
    start = time.perf_counter()
    try:
        async with client.stream("POST", "/v1/chat/completions", json=_body(PROMPTS[out.prompt], max_tokens, True)) as r:
            out.status = r.status_code
            if r.status_code != 200:
                out.error = (await r.aread()).decode()[:200]
                return out
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: "):]
                if data == "[DONE]":
                    out.done = True
                    break
                chunk = json.loads(data)
                if chunk.get("usage"):
                    out.completion_tokens = chunk["usage"]["completion_tokens"]
                for choice in chunk["choices"]:
                    piece = choice["delta"].get("content")
                    if piece:
                        if out.ttft is None:
                            out.ttft = time.perf_counter() - start
                        out.text += piece
                        out.chunks += 1
                    if choice.get("finish_reason"):
                        out.finish_reason = choice["finish_reason"]
    except (httpx.HTTPError, json.JSONDecodeError) as error:
        out.error = f"{type(error).__name__}: {error}"
    out.latency = time.perf_counter() - start
    return out


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round(q * (len(values) - 1))))], 4)


async def run_load(url: str, api_key: str | None, requests: int, concurrency: int, max_tokens: int,
                   deadline_s: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency + 1)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=deadline_s) as client:
        refs = [await reference(client, p, max_tokens) for p in PROMPTS]
        outcomes: list[Outcome] = []
        queue = iter(range(requests))

        async def one_client() -> None:
            for index in queue:  # the shared iterator: each client takes the next request when it is free
                outcomes.append(await one_stream(client, index, max_tokens))

        start = time.perf_counter()
        clients = [asyncio.create_task(one_client()) for _ in range(concurrency)]
        _, pending = await asyncio.wait(clients, timeout=deadline_s)
        for task in pending:
            task.cancel()
        wall = time.perf_counter() - start
    for out in outcomes:
        text, tokens = refs[out.prompt]
        checks = {"status 200": out.status == 200, "[DONE] received": out.done,
                  "finish_reason sent": out.finish_reason in ("stop", "length"),
                  "text equals the reference": out.text == text,
                  "usage equals the reference": out.completion_tokens == tokens}
        out.problems = [name for name, good in checks.items() if not good]
        out.ok = not out.problems
    ok = [o for o in outcomes if o.ok]
    tokens = sum(o.completion_tokens or 0 for o in ok)
    failures = [{"request": i, "status": o.status, "problems": o.problems, "error": o.error}
                for i, o in enumerate(outcomes) if not o.ok][:10]
    return {
        "requests": requests, "concurrency": concurrency, "max_tokens": max_tokens,
        "answered_correctly": len(ok), "failed": len(outcomes) - len(ok), "lost": requests - len(outcomes),
        "wall_s": round(wall, 3), "requests_per_s": round(len(ok) / wall, 3) if wall else None,
        "completion_tokens": tokens, "tokens_per_s": round(tokens / wall, 2) if wall else None,
        "latency_p50_s": _pct([o.latency for o in ok if o.latency is not None], 0.5),
        "latency_p95_s": _pct([o.latency for o in ok if o.latency is not None], 0.95),
        "ttft_p50_s": _pct([o.ttft for o in ok if o.ttft is not None], 0.5),
        "ttft_p95_s": _pct([o.ttft for o in ok if o.ttft is not None], 0.95),
        "mean_chunks_per_answer": round(statistics.mean(o.chunks for o in ok), 2) if ok else None,
        "references": [text for text, _ in refs],
        "failures": failures,
    }


def start_server(model: str, port: int, env_extra: dict[str, str]) -> subprocess.Popen[bytes]:
    """`tunelab api` on loopback as a separate process (the load comes from this one).

    `tiny-qwen2` builds a random 2-layer Qwen2 with the real Qwen2.5 tokenizer (untied output head,
    so greedy answers are varied text: comparing them to the references means something)."""
    folder = Path(tempfile.mkdtemp(prefix="tunelab-bench-"))
    if model == "tiny-qwen2":
        from tunelab.testing import TinyModelSpec, build_tiny_model

        model = str(build_tiny_model(folder / "model", family="qwen2", spec=TinyModelSpec(tie_word_embeddings=False), seed=3))
    config = folder / "infer.yaml"
    config.write_text(f"model_name_or_path: {model}\ntemplate: qwen\ninfer_backend: huggingface\n", encoding="utf-8")
    env = {**os.environ, "API_HOST": "127.0.0.1", "API_PORT": str(port), **env_extra}
    code = "import sys; from tunelab.cli.main import main; sys.exit(main(['api', *sys.argv[1:]]))"
    try:
        from tunelab.cli.main import SUBCOMMANDS

        registered = any(c.name == "api" and c.module for c in SUBCOMMANDS)
    except ImportError:
        registered = False
    if not registered:
        code = "import sys; from tunelab.cli.cmd_api import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, str(config)], env=env)


def wait_healthy(url: str, process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"no healthy server at {url} after {timeout:.0f} s")


def requests_for(concurrency: int, minimum: int) -> int:
    """Enough requests that every client sends at least two, and the percentiles have `minimum` samples."""
    return max(minimum, 2 * concurrency)


def sweep(url: str, api_key: str | None, levels: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    for level in levels:
        summary = asyncio.run(run_load(url, api_key, requests_for(level, args.requests), level, args.max_tokens,
                                       args.deadline))
        summary["load_average"] = [round(x, 2) for x in os.getloadavg()]
        runs.append(summary)
        print(f"  {level:>3} clients: {summary['tokens_per_s']} tokens/s, first token p50 {summary['ttft_p50_s']} s, "
              f"p95 {summary['ttft_p95_s']} s, {summary['answered_correctly']}/{summary['requests']} correct",
              file=sys.stderr)
    return runs


MODES = {  # name -> server settings; "before" is the engine tunelab had before batching
    "before": lambda batch: {"API_MAX_BATCH": "1", "API_MAX_CONCURRENT": "1"},
    "after": lambda batch: {"API_MAX_BATCH": str(batch), "API_MAX_CONCURRENT": str(batch)},
}


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["| engine | clients | requests | answered correctly | tokens/s | first token p50 / p95 s | latency p50 / p95 s |",
             "|---|---|---|---|---|---|---|"]
    for mode, runs in results.items():
        for r in runs:
            lines.append(f"| {mode} | {r['concurrency']} | {r['requests']} | {r['answered_correctly']} / {r['requests']} "
                         f"| {r['tokens_per_s']} | {r['ttft_p50_s']} / {r['ttft_p95_s']} "
                         f"| {r['latency_p50_s']} / {r['latency_p95_s']} |")
    return "\n".join(lines)


def compare(args: argparse.Namespace, levels: list[int]) -> dict[str, Any]:
    """Both engines on the same machine, one after the other, each on a server process of its own."""
    results: dict[str, list[dict[str, Any]]] = {}
    for mode, settings in MODES.items():
        print(f"{mode}: {settings(args.max_batch)}", file=sys.stderr)
        process = start_server(args.model, args.port, settings(args.max_batch))
        try:
            wait_healthy(f"http://127.0.0.1:{args.port}", process, timeout=120)
            results[mode] = sweep(f"http://127.0.0.1:{args.port}", None, levels, args)
        finally:
            process.terminate()
            process.wait(timeout=30)
    after, before = results["after"], results["before"]
    low, high = after[0], after[-1]
    all_runs = [r for runs in results.values() for r in runs]
    return {
        "model": args.model, "max_tokens": args.max_tokens, "max_batch": args.max_batch,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "every_answer_equals_its_answer_alone": all(r["answered_correctly"] == r["requests"] for r in all_runs),
        "references_equal_across_engines": before[0]["references"] == after[0]["references"],
        f"after_throughput_{high['concurrency']}_vs_{low['concurrency']}_clients":
            round(high["tokens_per_s"] / low["tokens_per_s"], 2) if low["tokens_per_s"] else None,
        f"after_vs_before_throughput_at_{high['concurrency']}_clients":
            round(high["tokens_per_s"] / before[-1]["tokens_per_s"], 2) if before[-1]["tokens_per_s"] else None,
        "table": table(results),
        "runs": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (loopback only); default: start one")
    parser.add_argument("--model", default="tiny-qwen2", help="model to serve when starting the server "
                        "(a folder, tunelab/tiny-chat, or tiny-qwen2: a random tiny Qwen2)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--requests", type=int, default=50, help="requests in all (with --sweep: at least this many "
                        "per level, and two per client)")
    parser.add_argument("--concurrency", type=int, default=50, help="clients sending at the same time")
    parser.add_argument("--sweep", default=None, help="comma-separated client counts to run one after another, e.g. 1,8,32")
    parser.add_argument("--compare", action="store_true", help="start the server twice: before (one at a time) and "
                        "after (batched); needs no --url")
    parser.add_argument("--max-batch", type=int, default=16, help="API_MAX_BATCH (and API_MAX_CONCURRENT) of --compare's "
                        "batched server")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-concurrent", type=int, default=None, help="API_MAX_CONCURRENT of the started server")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds before unfinished requests count as lost")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.sweep.split(",")] if args.sweep else [args.concurrency]
    if not 1 <= args.requests <= 1000 or not all(1 <= c <= 256 for c in [args.concurrency, *levels]):
        parser.error("--requests must be 1..1000 and --concurrency / --sweep 1..256 (a bounded test)")
    if args.compare:
        if args.url:
            parser.error("--compare starts its own servers; leave out --url")
        summary = compare(args, levels)
        print(summary["table"])
        ok = summary["every_answer_equals_its_answer_alone"]
        printable = {k: v for k, v in summary.items() if k != "table"}
        if args.json:
            args.json.write_text(json.dumps(printable, indent=2) + "\n", encoding="utf-8")
        print(json.dumps({k: v for k, v in printable.items() if k != "runs"}, indent=2))
        return 0 if ok else 1
    process = None
    url = args.url or f"http://127.0.0.1:{args.port}"
    if urlparse(url).hostname not in LOOPBACK:
        parser.error(f"{url}: load tests only target loopback (127.0.0.1, localhost, ::1)")
    if args.url is None:
        extra = {"API_KEY": args.api_key} if args.api_key else {}
        if args.max_concurrent:
            extra["API_MAX_CONCURRENT"] = str(args.max_concurrent)
        process = start_server(args.model, args.port, extra)
    try:
        wait_healthy(url, process, timeout=120)
        runs = sweep(url, args.api_key, levels, args) if args.sweep else \
            [asyncio.run(run_load(url, args.api_key, args.requests, args.concurrency, args.max_tokens, args.deadline))]
        summary = runs[0] if len(runs) == 1 else {"runs": runs, "answered_correctly": sum(r["answered_correctly"] for r in runs),
                                                  "requests": sum(r["requests"] for r in runs)}
        if process is not None:
            summary["server_max_concurrent"] = args.max_concurrent or "default"
            summary["model"] = args.model
        summary["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS", "unset")
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    expected = summary["requests"] if args.sweep else args.requests
    return 0 if summary["answered_correctly"] == expected else 1


if __name__ == "__main__":
    sys.exit(main())
