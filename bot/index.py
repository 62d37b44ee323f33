"""Build and load the passage index: passages, their embeddings (faiss) and the lexical index (bm25s).

Layout under index_dir:
  builds/<stamp>/   one complete build: passages.jsonl, vectors.npy, dense.faiss, lexical/, manifest.json,
                    sections.json + questions.npy (question-first retrieval), scope.json + scope.npy and
                    gate.json (the scope gate trained on this build's data), content/ (the last good copy of
                    the content files the bot reads at start-up: catalogue, flows, routing, safety …; bot/content.py)
  current           symlink to the build in service, swapped atomically when a new build is complete
  cache/            embeddings by content hash, per embedder, so a rebuild only embeds what changed
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from bot.chunk import Passage, chunk_document
from bot.content import CONTENT_DIR, snapshot
from bot.embed import Embedder
from bot.errors import DocumentError, EmbedderMismatchError, IndexMissingError
from bot.gate import Gate, ScopeData, TopicWords, max_similarity, similarity_features, train_gate
from bot.ingest import Document, load_documents
from bot.lexical import Glossary, LexicalIndex
from bot.sections import SectionRecord, load_situations, section_records

# Exact search is fast enough below this many passages; above it, HNSW keeps queries well under 100 ms.
HNSW_FROM = 20_000
HNSW_M = 32
HNSW_EF_SEARCH = 96
FORMAT_VERSION = 2


@dataclass
class BuildSummary:
    documents: int
    passages: int
    embedded: int
    reused: int
    seconds: float
    path: Path
    warnings: list[str] = field(default_factory=list)
    gate: dict | None = None  # the scope gate's calibration on held-out data


def _cache_paths(index_dir: Path, embedder: Embedder) -> tuple[Path, Path]:
    slug = "".join(
        c if c.isalnum() or c in "-_." else "_" for c in f"{embedder.name}-{embedder.version}-{embedder.dim}"
    )
    folder = index_dir / "cache"
    return folder / f"{slug}.npy", folder / f"{slug}.json"


def _load_cache(index_dir: Path, embedder: Embedder) -> dict[str, np.ndarray]:
    vec_path, key_path = _cache_paths(index_dir, embedder)
    try:
        keys = json.loads(key_path.read_text())
        vectors = np.load(vec_path)
        if len(keys) != len(vectors) or vectors.shape[1] != embedder.dim:
            return {}
        return dict(zip(keys, vectors, strict=True))
    except (OSError, ValueError):
        return {}  # no cache or a damaged one: embed everything again


# During a long build the embedding cache is saved this often, so an interrupted build resumes where it was.
CHECKPOINT_SECONDS = 30.0
CHECKPOINT_CHUNK = 256  # passages embedded between two looks at the clock


def _embed_missing(index_dir: Path, embedder: Embedder, cache: dict, missing: list[str], texts: dict,
                   batch_size: int, bar) -> None:
    """Embed the passages not in the cache, saving the cache every CHECKPOINT_SECONDS and on an interrupt."""
    last_save = time.monotonic()

    def checkpoint() -> None:
        keys = list(cache)
        if keys:
            _save_cache(index_dir, embedder, keys, np.stack([cache[k] for k in keys]))

    try:
        for start in range(0, len(missing), CHECKPOINT_CHUNK):
            chunk = missing[start : start + CHECKPOINT_CHUNK]
            new = embedder.embed_passages([texts[h] for h in chunk], batch_size, bar.update if bar else None)
            cache.update(zip(chunk, new, strict=True))
            if time.monotonic() - last_save >= CHECKPOINT_SECONDS and start + len(chunk) < len(missing):
                checkpoint()
                last_save = time.monotonic()
    except KeyboardInterrupt:  # Ctrl-C (and SIGTERM, which `kap12` turns into one): keep what was done
        checkpoint()
        raise


def _clean_stray_builds(index_dir: Path) -> None:
    """Remove `.tmp-*` build folders and `.current-*` links that a killed build left behind.

    A folder of a build still running (its process id is in the name) is left alone.
    """
    builds = index_dir / "builds"
    leftovers = [p for p in builds.glob(".tmp-*")] if builds.is_dir() else []
    leftovers += [p for p in index_dir.glob(".current-*") if p.is_symlink()]
    for path in leftovers:
        match = re.search(r"-(\d+)(?:-\d+)?$", path.name)
        pid = int(match.group(1)) if match else None
        if pid is not None and pid != os.getpid() and _process_alive(pid):
            continue
        if path.is_symlink():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process: leave its folder alone
    return True


def _save_cache(index_dir: Path, embedder: Embedder, hashes: list[str], vectors: np.ndarray) -> None:
    vec_path, key_path = _cache_paths(index_dir, embedder)
    vec_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_vec, tmp_key = vec_path.with_suffix(".tmp.npy"), key_path.with_suffix(".tmp")
    np.save(tmp_vec, vectors)
    tmp_key.write_text(json.dumps(hashes))
    os.replace(tmp_vec, vec_path)
    os.replace(tmp_key, key_path)


def make_dense_index(vectors: np.ndarray) -> faiss.Index:
    """Inner product on normalised vectors (= cosine); exact for small bases, HNSW for large ones."""
    dim = vectors.shape[1]
    if len(vectors) >= HNSW_FROM:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def document_row(doc: Document, count: int, knowledge_dir: Path) -> dict:
    """What `kap12 sources` lists and the manifest records about one document."""
    return {
        "id": doc.id,
        "title": doc.title,
        "kind": doc.kind,
        "audience": doc.audience,
        "language": doc.language,
        "updated": doc.updated,
        "url": doc.url,
        "sources": doc.sources,
        "file": str(doc.path.relative_to(knowledge_dir)),
        "passages": count,
        "sections": len(doc.sections),
        "answered_sections": sum(1 for s in doc.sections if s.short),
        "municipality": doc.municipality,
    }


def serves(doc: Document, municipality: str) -> bool:
    """Local documents only where the settings name their municipality; everything else everywhere."""
    return doc.municipality is None or doc.municipality.casefold() == municipality.strip().casefold()


def _query_key(text: str) -> str:
    return hashlib.sha1(f"query\n{text}".encode()).hexdigest()


def build_index(
    knowledge_dir: Path, index_dir: Path, embedder: Embedder, batch_size: int = 32, progress=None,
    municipality: str = "",
) -> BuildSummary:
    """Ingest knowledge_dir and swap in a new index; on any error the index in service is untouched.

    Args:
        progress: optional callable(total) returning an object with update(n) and close(), e.g. tqdm.
        municipality: KAP12_MUNICIPALITY; documents marked for another municipality are left out.
    """
    started = time.perf_counter()
    docs = [doc for doc in load_documents(knowledge_dir) if serves(doc, municipality)]
    for doc in docs:
        if doc.municipality and doc.municipality.casefold() not in doc.title.casefold():
            doc.title = f"{doc.title} ({doc.municipality})"  # citations say whose local rule it is
    passages: list[Passage] = []
    rows = []
    for doc in docs:
        doc_passages = chunk_document(doc)
        passages.extend(doc_passages)
        rows.append(document_row(doc, len(doc_passages), knowledge_dir))
    warnings = [f"{r['file']}: no passages (empty document?)" for r in rows if r["passages"] == 0]

    cache = _load_cache(index_dir, embedder)
    hashes = [p.content_hash for p in passages]
    missing = sorted({h for h in hashes if h not in cache})
    texts = {p.content_hash: p.embed_text() for p in passages}
    bar = progress(len(missing)) if progress and missing else None
    if missing:
        _embed_missing(index_dir, embedder, cache, missing, texts, batch_size, bar)
    if bar:
        bar.close()
    vectors = (
        np.stack([cache[h] for h in hashes]).astype(np.float32) if passages else np.empty((0, embedder.dim), np.float32)
    )
    records = section_records(docs, passages, load_situations(knowledge_dir))
    question_texts = [q for r in records for q in r.questions]
    question_section = [i for i, r in enumerate(records) for _ in r.questions]
    scope = ScopeData.load(knowledge_dir)
    query_texts = list(dict.fromkeys(question_texts + scope.texts + scope.voices))
    new_queries = [t for t in query_texts if _query_key(t) not in cache]
    if new_queries:
        bar = progress(len(new_queries)) if progress else None
        for start in range(0, len(new_queries), batch_size):
            batch = new_queries[start : start + batch_size]
            cache.update(zip([_query_key(t) for t in batch], embedder.embed_batch(batch, "query"), strict=True))
            if bar:
                bar.update(len(batch))
        if bar:
            bar.close()
    question_vectors = _stack([cache[_query_key(t)] for t in question_texts], embedder.dim)
    scope_vectors = _stack([cache[_query_key(t)] for t in scope.texts], embedder.dim)
    voice_vectors = _stack([cache[_query_key(t)] for t in scope.voices], embedder.dim)
    gate = _train_gate(question_vectors, vectors, scope, scope_vectors, voice_vectors, _names_harm(knowledge_dir),
                       question_texts)

    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    _clean_stray_builds(index_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{time.perf_counter_ns() % 10**6}"
    tmp = builds / f".tmp-{stamp}"
    try:
        tmp.mkdir()
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
            for p in passages:
                fh.write(json.dumps(p.to_json(), ensure_ascii=False) + "\n")
        np.save(tmp / "vectors.npy", vectors)
        faiss.write_index(make_dense_index(vectors), str(tmp / "dense.faiss"))
        LexicalIndex.build([p.embed_text() for p in passages]).save(tmp / "lexical")
        manifest = {
            "format": FORMAT_VERSION,
            "embedder": embedder.identity(),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "passages": len(passages),
            "documents": rows,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
        sections_data = {"sections": [r.to_json() for r in records], "question_section": question_section}
        (tmp / "sections.json").write_text(json.dumps(sections_data, ensure_ascii=False))
        np.save(tmp / "questions.npy", question_vectors)
        scope_data = {"texts": scope.texts, "kinds": scope.kinds, "labels": scope.labels, "where": scope.where,
                      "words": scope.words, "cues": scope.cues}
        (tmp / "scope.json").write_text(json.dumps(scope_data, ensure_ascii=False))
        np.save(tmp / "scope.npy", scope_vectors)
        (tmp / "gate.json").write_text(json.dumps(gate.to_json() if gate else None))
        # Content files that load cleanly, or the copies the build in service kept of those that do not.
        warnings += snapshot(knowledge_dir, index_dir, tmp / CONTENT_DIR)
        final = builds / stamp
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_current(index_dir, final)
    keep = list(dict.fromkeys(hashes + [_query_key(t) for t in query_texts]))
    _save_cache(index_dir, embedder, keep, np.stack([cache[h] for h in keep]) if keep else vectors)
    return BuildSummary(
        documents=len(docs),
        passages=len(passages),
        embedded=len(missing),
        reused=len(set(hashes)) - len(missing),
        seconds=time.perf_counter() - started,
        path=final,
        warnings=warnings,
        gate=gate.report if gate else None,
    )


def _stack(rows: list[np.ndarray], dim: int) -> np.ndarray:
    return np.stack(rows).astype(np.float32) if rows else np.empty((0, dim), np.float32)


def _names_harm(knowledge_dir: Path):
    """The glossary's test for words of someone being hurt (never true without a loadable glossary: the build
    then calibrates the gate on the gate alone, and the snapshot keeps the glossary's good copy)."""
    try:
        return Glossary.load(knowledge_dir / "glossary.yaml").names_harm
    except DocumentError:
        return lambda text: False


def _train_gate(questions: np.ndarray, passages: np.ndarray, scope: ScopeData, scope_vectors: np.ndarray,
                voices: np.ndarray, names_harm=lambda text: False, question_texts: list[str] | None = None):
    """Train the scope gate on this build's questions (in), off-topic questions (out), chat phrases and the
    real-voice questions labelled in or out. `names_harm(text)`: the answerer never declines such a message.
    With `question_texts` and topic words, whether a message names an off-topic subject is a feature too."""
    kinds = np.array(scope.kinds)
    off, chat = scope_vectors[kinds == "out"], scope_vectors[kinds == "chat"]
    if len(questions) < 10 or len(off) < 10 or len(chat) < 5:
        return None  # not enough data to learn from: the answerer falls back to its similarity floor
    topic_words = TopicWords(scope.words) if question_texts is not None else TopicWords([])
    pairs = list(zip(scope.texts, scope.kinds, strict=True))
    of_kind = {kind: [t for t, k in pairs if k == kind] for kind in ("out", "chat")}
    texts = {"in": question_texts or [], **of_kind, "voice": scope.voices}

    def features(vectors: np.ndarray, own: str) -> np.ndarray:
        return similarity_features(
            max_similarity(vectors, questions, own == "in"), max_similarity(vectors, passages),
            max_similarity(vectors, off, own == "out"), max_similarity(vectors, chat, own == "chat"),
            topic_words.named(texts[own]) if topic_words else None,
        )

    embeddings = np.concatenate([questions, off, chat, voices])
    feats = np.concatenate([features(questions, "in"), features(off, "out"), features(chat, "chat"),
                            features(voices, "voice")])
    labels = (["in"] * len(questions) + ["out"] * len(off) + ["chat"] * len(chat)
              + ["in" if flag else "out" for flag in scope.voice_in_scope])
    voice = np.arange(len(labels)) >= len(labels) - len(voices)
    never_refused = np.concatenate([np.zeros(len(labels) - len(voices), bool),
                                    np.array([names_harm(t) for t in scope.voices], bool)])
    gate = train_gate(embeddings, feats, labels, voice, never_refused)
    gate.report["topic_words"] = bool(topic_words)  # the answerer adds the same feature, from the same words
    # Below this closeness to any section's question, an in-scope message is vague: it gets a short answer
    # and the walkthroughs that fit rather than quotes (the least similar 5 % of the questions, each measured
    # without itself).
    gate.report["vague_below"] = round(float(np.percentile(max_similarity(questions, questions, True), 5)), 4)
    return gate



def _swap_current(index_dir: Path, build: Path) -> None:
    """Point index_dir/current at build in one atomic rename, then drop older builds."""
    link = index_dir / "current"
    tmp_link = index_dir / f".current-{os.getpid()}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(Path("builds") / build.name)
    os.replace(tmp_link, link)
    for old in (index_dir / "builds").iterdir():
        if old != build and not old.name.startswith(".tmp-"):
            shutil.rmtree(old, ignore_errors=True)


@dataclass
class LoadedIndex:
    passages: list[Passage]
    vectors: np.ndarray
    dense: faiss.Index
    lexical: LexicalIndex
    manifest: dict
    sections: list[SectionRecord] = field(default_factory=list)
    question_vectors: np.ndarray | None = None
    question_section: np.ndarray | None = None  # section index of each question
    passage_section: np.ndarray | None = None  # section index of each passage (-1: none)
    scope_vectors: np.ndarray | None = None
    scope: dict = field(default_factory=dict)  # kinds, labels, where per scope vector
    gate: Gate | None = None

    @property
    def documents(self) -> list[dict]:
        return self.manifest["documents"]


def load_index(index_dir: Path, embedder: Embedder | None = None) -> LoadedIndex:
    """Load the index in service; refuses one built by another embedder than `embedder`."""
    current = index_dir / "current"
    hint = "Run `kap12 index` to build it."
    if not (current / "manifest.json").exists():
        raise IndexMissingError(f"No index in {index_dir.resolve()}. {hint}")
    try:
        manifest = json.loads((current / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"index format {manifest.get('format')} is not {FORMAT_VERSION}")
        if embedder is not None and manifest["embedder"] != embedder.identity():
            built = manifest["embedder"]
            raise EmbedderMismatchError(
                f"The index was built with {built['name']} ({built['version']}, dim {built['dim']}), but the "
                f"settings ask for {embedder.name} ({embedder.version}, dim {embedder.dim}). "
                "Run `kap12 index` to rebuild it with the configured embedder."
            )
        with open(current / "passages.jsonl", encoding="utf-8") as fh:
            passages = [Passage.from_json(json.loads(line)) for line in fh if line.strip()]
        vectors = np.load(current / "vectors.npy")
        dense = faiss.read_index(str(current / "dense.faiss"))
        lexical = LexicalIndex.load(current / "lexical")
        if not (len(passages) == len(vectors) == dense.ntotal == manifest["passages"]):
            raise ValueError("passages, vectors and indexes disagree in length")
        sections_data = json.loads((current / "sections.json").read_text(encoding="utf-8"))
        sections = [SectionRecord.from_json(r) for r in sections_data["sections"]]
        question_vectors = np.load(current / "questions.npy")
        question_section = np.asarray(sections_data["question_section"], dtype=np.int64)
        scope = json.loads((current / "scope.json").read_text(encoding="utf-8"))
        scope_vectors = np.load(current / "scope.npy")
        gate_data = json.loads((current / "gate.json").read_text(encoding="utf-8"))
        gate = Gate.from_json(gate_data) if gate_data else None
        if len(question_vectors) != len(question_section) or len(scope_vectors) != len(scope["kinds"]):
            raise ValueError("questions or scope data disagree in length")
    except EmbedderMismatchError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        raise IndexMissingError(f"The index in {index_dir.resolve()} is damaged ({exc}). {hint}") from None
    if isinstance(dense, faiss.IndexHNSWFlat):
        dense.hnsw.efSearch = HNSW_EF_SEARCH
    passage_section = np.full(len(passages), -1, dtype=np.int64)
    for number, record in enumerate(sections):
        passage_section[record.passages] = number
    return LoadedIndex(passages, vectors, dense, lexical, manifest, sections, question_vectors, question_section,
                       passage_section, scope_vectors, scope, gate)
