"""Hybrid retrieval: dense (faiss) and lexical (BM25) rankings fused by reciprocal rank fusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from bot.chunk import Passage
from bot.embed import Embedder
from bot.index import LoadedIndex
from bot.lexical import Glossary
from bot.roles import AUDIENCES_FOR_ROLE, ROLES



def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], weights: Sequence[float], k: int = 60
) -> dict[int, float]:
    """Fuse ranked lists of ids: score(d) = sum over lists of weight / (k + rank of d), ranks from 1.

    RRF only looks at ranks, so BM25 scores and cosine similarities need no common scale. The constant k
    (60 in Cormack et al., 2009) flattens the head of each list: being first rather than third matters
    less than being found by both retrievers. Weights let one retriever count more than the other.
    """
    if len(rankings) != len(weights):
        raise ValueError("one weight per ranking is needed")
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float  # fused RRF score
    dense: float  # cosine similarity between question and passage
    lexical: float  # BM25 score (0 when the lexical side did not find it)
    question: float = 0.0  # similarity to the closest question its section answers (0: none)


class Retriever:
    """Searches one loaded index with one embedder; configuration is checked once, here."""

    def __init__(
        self,
        index: LoadedIndex,
        embedder: Embedder,
        glossary: Glossary,
        *,
        rrf_k: int = 60,
        weight_lexical: float = 1.0,
        weight_dense: float = 1.0,
        weight_questions: float = 1.0,
        candidates: int = 30,
    ):
        if rrf_k < 1 or candidates < 1:
            raise ValueError("rrf_k and candidates must be at least 1 (KAP12_RRF_K, KAP12_CANDIDATES)")
        if min(weight_lexical, weight_dense, weight_questions) < 0 or weight_lexical + weight_dense == 0:
            raise ValueError("fusion weights must be ≥ 0 and lexical and dense not both 0 "
                             "(KAP12_WEIGHT_LEXICAL, KAP12_WEIGHT_DENSE, KAP12_WEIGHT_QUESTIONS)")
        self.index = index
        self.embedder = embedder
        self.glossary = glossary
        self.rrf_k, self.candidates = rrf_k, candidates
        self.weights = (weight_lexical, weight_dense, weight_questions)
        audiences = np.array([p.audience for p in index.passages])

        def for_role(audience: str, readers, role: str) -> bool:
            # Audience keeps staff material from parents; readers keep the pupils' guide for pupils.
            return audience in AUDIENCES_FOR_ROLE[role] and (not readers or role in readers)

        self._section_allowed = {
            role: np.array([for_role(r.audience, r.readers, role) for r in index.sections], dtype=bool)
            for role in AUDIENCES_FOR_ROLE
        }
        self._allowed = {
            role: np.flatnonzero([for_role(p.audience, p.readers, role) for p in index.passages])
            for role in AUDIENCES_FOR_ROLE
        }
        self._selectors = {
            role: None if len(ids) == len(audiences) else faiss.IDSelectorBatch(ids.astype(np.int64))
            for role, ids in self._allowed.items()
        }
        self._masks = {role: np.isin(np.arange(len(audiences)), ids) for role, ids in self._allowed.items()}

    @classmethod
    def from_settings(cls, index: LoadedIndex, embedder: Embedder, glossary: Glossary, settings) -> "Retriever":
        return cls(
            index,
            embedder,
            glossary,
            rrf_k=settings.rrf_k,
            weight_lexical=settings.weight_lexical,
            weight_dense=settings.weight_dense,
            weight_questions=settings.weight_questions,
            candidates=settings.candidates,
        )

    def _dense_ranking(self, query_vec: np.ndarray, role: str) -> list[int]:
        selector = self._selectors[role]
        params = faiss.SearchParameters(sel=selector) if selector is not None else None
        if params is not None and isinstance(self.index.dense, faiss.IndexHNSWFlat):
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.candidates, 64))
        _, ids = self.index.dense.search(query_vec[None, :].astype(np.float32), self.candidates, params=params)
        return [int(i) for i in ids[0] if i >= 0]

    def _lexical_ranking(self, query: str, role: str) -> tuple[list[int], np.ndarray]:
        scores = self.index.lexical.scores(query)
        scores = np.where(self._masks[role], scores, 0.0)
        top = min(self.candidates, len(scores))
        if top == 0:
            return [], scores
        best = np.argpartition(-scores, top - 1)[:top]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [int(i) for i in best if scores[i] > 0], scores

    def embed_query(self, query: str) -> np.ndarray:
        """The question's vector. One embedding serves the safety check, the section questions and passages."""
        return self.embedder.embed_query(query)

    def section_similarities(self, query_vec: np.ndarray, role: str) -> np.ndarray:
        """Per section: similarity of its closest question to the query (-1 for sections the role may not see)."""
        best = np.full(len(self.index.sections), -1.0, dtype=np.float32)
        vectors = self.index.question_vectors
        if vectors is None or len(vectors) == 0:
            return best
        np.maximum.at(best, self.index.question_section, vectors @ query_vec)
        return np.where(self._section_allowed[role], best, -1.0)

    def _question_ranking(self, section_sims: np.ndarray, query_vec: np.ndarray) -> list[int]:
        """Passages of the sections whose questions are closest, best section first, best passage first."""
        ranking: list[int] = []
        for number in np.argsort(-section_sims, kind="stable"):
            if section_sims[number] < 0 or len(ranking) >= self.candidates:
                break
            members = self.index.sections[number].passages
            ranking += sorted(members, key=lambda i: -float(self.index.vectors[i] @ query_vec))
        return ranking[: self.candidates]

    def search(self, query: str, role: str = "parent", k: int = 10, query_vec: np.ndarray | None = None) -> list[Hit]:
        """The k best passages for the query that the role may see, best first.

        Args:
            query_vec: the question's vector from `embed_query`, when the caller already has it.
        """
        if role not in AUDIENCES_FOR_ROLE:
            raise ValueError(f"unknown role '{role}'; use one of {', '.join(ROLES)}")
        if not self.index.passages or not query.strip():
            return []
        expanded = self.glossary.expand(query)
        if query_vec is None:
            query_vec = self.embed_query(query)
        lexical_ids, lexical_scores = self._lexical_ranking(expanded, role)
        dense_ids = self._dense_ranking(query_vec, role)
        section_sims = self.section_similarities(query_vec, role)
        question_ids = self._question_ranking(section_sims, query_vec)
        fused = reciprocal_rank_fusion([lexical_ids, dense_ids, question_ids], self.weights, self.rrf_k)
        ranked = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        sections = self.index.passage_section
        return [
            Hit(self.index.passages[i], fused[i], float(self.index.vectors[i] @ query_vec), float(lexical_scores[i]),
                float(section_sims[sections[i]]) if sections is not None and sections[i] >= 0 else 0.0)
            for i in ranked
        ]
