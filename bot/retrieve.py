"""Hybrid retrieval: dense (faiss), lexical (BM25) and question-first rankings, fused by reciprocal rank
fusion or, when a fitted model is there (bot/ranking.py), ordered by the model's weighing of their signals."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from bot.chunk import Passage
from bot.embed import Embedder
from bot.index import LoadedIndex
from bot.language import detect_language
from bot.lexical import Glossary, LexicalIndex, char_ngrams, normalise_query, terms_regex
from bot.ranking import FEATURES, RankingModel
from bot.refs import find_refs
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
class _Signals:
    """One question's view from each ranking: what search and calibration both start from."""

    expanded: str
    lexical_scores: np.ndarray
    section_sims: np.ndarray
    fused: dict[int, float]


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float  # the ranking score: the learned model's, or the fused RRF score without a model
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
        model: RankingModel | None = None,
        recent_vectors: int = 1024,
    ):
        if recent_vectors < 0:
            raise ValueError("recent_vectors must be 0 or more (KAP12_RECENT_VECTORS)")
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
        self.model = model
        self.recent_vectors = recent_vectors  # how many query vectors to keep (about 1.5 kB each)
        self._recent_vectors: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._vector_lock = threading.Lock()
        # What each section answers, in words: its questions and short answers (built at load; a few ms).
        self._section_words = LexicalIndex.build(
            [" ".join([*r.questions, *(r.short or {}).values()]) or r.path for r in index.sections]
        ) if index.sections else None
        # Sections written for a narrower situation (accused of bullying, online) and the words that name it.
        self._situations = {n: terms_regex(r.when) for n, r in enumerate(index.sections) if r.when}
        # Each section question's character n-grams: a message worded almost like a listed question is found by
        # its words even when the 4-bit embedding puts a shorter, blander question closer.
        self._question_grams = [frozenset(char_ngrams(q)) for r in index.sections for q in r.questions]
        self._has_questions = np.zeros(len(index.sections), dtype=bool)
        if index.question_section is not None and len(index.question_section):
            self._has_questions[index.question_section] = True
        audiences = np.array([p.audience for p in index.passages])
        # The pupils' guides explain the rules in plain words without § numbers, by design: there a passage of a
        # section that rests on a rule counts as stating it, or a pupil would always be quoted the adults' text.
        # Only a heading that opens with the § is about that rule («§ 12-4 Plikt til …»); «Be om aktivitetsplanen
        # (§ 12-4)» is one point under it, and «hva sier § 12-4?» must open with the rule, not that point.
        self._heading_refs = [{ref for h in p.headings if h.lstrip().startswith("§") for ref in find_refs(h)[:1]}
                              for p in index.passages]
        self._cites = np.array([bool(find_refs(p.text)) or ("pupil" in p.readers and bool(p.refs))
                                for p in index.passages], dtype=bool)

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
    def from_settings(cls, index: LoadedIndex, embedder: Embedder, glossary: Glossary, settings,
                      model: RankingModel | None = None) -> "Retriever":
        return cls(
            index,
            embedder,
            glossary,
            rrf_k=settings.rrf_k,
            weight_lexical=settings.weight_lexical,
            weight_dense=settings.weight_dense,
            weight_questions=settings.weight_questions,
            candidates=settings.candidates,
            model=model,
            recent_vectors=settings.recent_vectors,
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

    def section_allowed(self, role: str, position: int) -> bool:
        """Whether the role may read the section at this position of the index's section list."""
        return bool(self._section_allowed[role][position])

    def embed_query(self, query: str) -> np.ndarray:
        """The question's vector. One embedding serves the safety check, the section questions and passages.

        The last few vectors are kept in memory, keyed by a hash of the text (never the text): a follow-up is
        read together with the question before it, and neither is embedded twice.
        """
        key = hashlib.blake2b(query.encode("utf-8"), digest_size=16).digest()
        with self._vector_lock:
            vector = self._recent_vectors.get(key)
            if vector is not None:
                self._recent_vectors.move_to_end(key)
                return vector
        vector = self.embedder.embed_query(query)
        vector.setflags(write=False)  # shared from now on: a caller that changed it in place would change others'
        with self._vector_lock:
            self._recent_vectors[key] = vector
            while len(self._recent_vectors) > self.recent_vectors:
                self._recent_vectors.popitem(last=False)
        return vector

    def section_similarities(self, query_vec: np.ndarray, role: str) -> np.ndarray:
        """Per section: similarity of its closest question to the query (-1 for sections the role may not see)."""
        best = np.full(len(self.index.sections), -1.0, dtype=np.float32)
        vectors = self.index.question_vectors
        if vectors is None or len(vectors) == 0:
            return best
        np.maximum.at(best, self.index.question_section, vectors @ query_vec)
        return np.where(self._section_allowed[role], best, -1.0)

    def _question_wording(self, query: str, role: str) -> np.ndarray:
        """Per section: the n-gram overlap (cosine of binary sets) of the message with its closest-worded question."""
        best = np.zeros(len(self.index.sections), dtype=np.float32)
        grams = set(char_ngrams(query))
        if not grams or self.index.question_section is None or not len(self._question_grams):
            return best
        overlap = np.array([len(grams & q) / (len(grams) * len(q)) ** 0.5 if q else 0.0
                            for q in self._question_grams], dtype=np.float32)
        np.maximum.at(best, self.index.question_section, overlap)
        return np.where(self._section_allowed[role], best, 0.0)

    def closest_question(self, query_vec: np.ndarray) -> float:
        """Similarity of the closest question of any section, whoever may read it (0 without questions)."""
        vectors = self.index.question_vectors
        return float((vectors @ query_vec).max()) if vectors is not None and len(vectors) else 0.0

    def closest_passage(self, query_vec: np.ndarray) -> float:
        """Similarity of the closest passage, whoever may read it (0 for an empty index); faiss, so a large
        corpus (HNSW) is not scanned whole."""
        if not len(self.index.passages):
            return 0.0
        scores, _ = self.index.dense.search(query_vec[None, :].astype(np.float32), 1)
        return float(scores[0, 0])

    def _question_ranking(self, section_sims: np.ndarray, query_vec: np.ndarray) -> list[int]:
        """Passages of the sections whose questions are closest, best section first, best passage first."""
        ranking: list[int] = []
        for number in np.argsort(-section_sims, kind="stable"):
            if section_sims[number] < 0 or len(ranking) >= self.candidates:
                break
            members = self.index.sections[number].passages
            ranking += sorted(members, key=lambda i: -float(self.index.vectors[i] @ query_vec))
        return ranking[: self.candidates]

    def _section_word_scores(self, expanded: str, role: str) -> np.ndarray:
        if self._section_words is None:
            return np.zeros(0, np.float32)
        scores = self._section_words.scores(expanded)
        return np.where(self._section_allowed[role], scores, 0.0)

    def _signals(self, query: str, role: str, query_vec: np.ndarray) -> "_Signals":
        expanded = self.glossary.expand(query)
        lexical_ids, lexical_scores = self._lexical_ranking(expanded, role)
        dense_ids = self._dense_ranking(query_vec, role)
        section_sims = self.section_similarities(query_vec, role)
        question_ids = self._question_ranking(section_sims, query_vec)
        fused = reciprocal_rank_fusion([lexical_ids, dense_ids, question_ids], self.weights, self.rrf_k)
        return _Signals(expanded, lexical_scores, section_sims, fused)

    def candidate_features(self, query: str, role: str, query_vec: np.ndarray,
                           signals: "_Signals | None" = None) -> tuple[list[int], np.ndarray]:
        """Candidate passage positions and their feature rows (bot.ranking.FEATURES), for search and calibration."""
        signals = signals or self._signals(query, role, query_vec)
        expanded, lexical_scores, section_sims, fused = (signals.expanded, signals.lexical_scores,
                                                         signals.section_sims, signals.fused)
        sections = self.index.passage_section
        words = self._section_word_scores(expanded, role)
        word_ids: list[int] = []
        for number in np.argsort(-words, kind="stable")[: self.candidates]:
            if words[number] <= 0:
                break
            word_ids += self.index.sections[number].passages
        ids = list(dict.fromkeys([*fused, *(i for i in word_ids if self._masks[role][i])]))
        if not ids:
            return [], np.empty((0, len(FEATURES)), np.float32)
        ids_arr = np.asarray(ids)
        secs = sections[ids_arr] if sections is not None else np.full(len(ids), -1)
        has_section = secs >= 0
        safe = np.where(has_section, secs, 0)
        dense = self.index.vectors[ids_arr] @ query_vec
        if len(section_sims):
            with_questions = has_section & self._has_questions[safe]
            q_best = np.where(with_questions, section_sims[safe], dense)  # no questions: the passage speaks
            q_top = float(section_sims.max())
            q_rank = np.where(has_section, 1.0 / (1.0 + _ranks(section_sims)[safe]), 0.0)
            w_rank = np.where(has_section & (words[safe] > 0), 1.0 / (1.0 + _ranks(words)[safe]), 0.0)
            w = np.where(has_section, words[safe], 0.0) / max(float(words.max()), 1e-9)
        else:  # an index without sections: passages only
            q_best, q_top = dense, float(dense.max())
            q_rank = w_rank = w = np.zeros(len(ids))
        lex = lexical_scores[ids_arr]
        lex_scaled = lex / (float(lex.max()) if lex.max() > 0 else 1.0)
        worded = self._question_wording(query, role)
        q_words = np.where(has_section, worded[safe], 0.0) if len(worded) else np.zeros(len(ids))
        q_words_gap = q_words - (float(worded.max()) if len(worded) else 0.0)
        dense_in_section, words_in_section = self._within_section(ids_arr, secs, has_section, dense, query_vec,
                                                                  lexical_scores)
        lang = detect_language(query)
        lang = lang if lang in ("nb", "nn", "en") else "en"
        passages = [self.index.passages[i] for i in ids]
        staff_reader = role in ("staff", "new_teacher")
        columns = {
            "question_best": q_best,
            "question_gap": q_best - max(q_top, float(q_best.max())),
            "question_rank": q_rank,
            "section_words": w,
            "section_words_rank": w_rank,
            "passage_dense": dense,
            "passage_dense_gap": dense - dense.max(),
            "passage_dense_rank": 1.0 / (1.0 + _ranks(dense)),
            "passage_words": lex_scaled,
            "question_wording": q_words,
            "question_wording_gap": q_words_gap,
            "dense_in_section": dense_in_section,
            "words_in_section": words_in_section,
            "passage_words_rank": np.where(lex > 0, 1.0 / (1.0 + _ranks(lex)), 0.0),
            "fused": np.array([fused.get(i, 0.0) * self.rrf_k for i in ids]),
            "same_language": np.array([p.language == lang for p in passages]),
            "for_reader": np.array([role in p.readers for p in passages]),
            "staff_document": np.array([staff_reader and p.audience == "staff" for p in passages]),
            "document_intro": np.array([not p.headings for p in passages]),
            "cites_rule": self._cites[ids_arr],
            "heading_names_asked_rule": self._heading_names(query, ids),
            "words_name_rule": self._words_name_rule(query, passages),
        }
        matrix = np.stack([np.asarray(columns[name], dtype=np.float32) for name in FEATURES], axis=1)
        return ids, matrix

    def _within_section(self, ids_arr: np.ndarray, secs: np.ndarray, has_section: np.ndarray, dense: np.ndarray,
                        query_vec: np.ndarray, lexical_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per candidate: how far its dense and word scores fall below its own section's best passage (0 = best)."""
        in_dense = np.zeros(len(ids_arr), np.float32)
        in_words = np.zeros(len(ids_arr), np.float32)
        top_words = max(float(lexical_scores[ids_arr].max()), 1e-9)
        for number in set(int(n) for n in secs[has_section]):
            members = np.asarray(self.index.sections[number].passages)
            rows = np.flatnonzero(has_section & (secs == number))
            in_dense[rows] = dense[rows] - float((self.index.vectors[members] @ query_vec).max())
            in_words[rows] = (lexical_scores[ids_arr[rows]] - float(lexical_scores[members].max())) / top_words
        return in_dense, in_words

    def _words_name_rule(self, query: str, passages) -> np.ndarray:
        """Per candidate: it rests on a rule the question's words point to (glossary `rules`: «tvangsmulkt» is
        § 12-8, «læreren ler av meg» § 12-5)."""
        named = self.glossary.rules_named(query)
        if not named:
            return np.zeros(len(passages), dtype=bool)
        return np.array([bool(named & set(p.refs)) for p in passages], dtype=bool)

    def _heading_names(self, query: str, ids: list[int]) -> np.ndarray:
        """Per candidate: its heading names a § the question names (the section about that very rule)."""
        asked = set(find_refs(query))
        if not asked:
            return np.zeros(len(ids), dtype=bool)
        return np.array([bool(asked & self._heading_refs[i]) for i in ids], dtype=bool)

    def _unnamed_situations(self, query: str, candidates) -> set[int]:
        """Candidates whose section is for a situation (its `when` words) that the query does not name."""
        sections = self.index.passage_section
        if not self._situations or sections is None:
            return set()
        text = normalise_query(query)
        named = {n: bool(regex.search(text)) for n, regex in self._situations.items()}
        return {i for i in candidates if not named.get(int(sections[i]), True)}

    def search(self, query: str, role: str = "parent", k: int = 10, query_vec: np.ndarray | None = None) -> list[Hit]:
        """The k best passages for the query that the role may see, best first.

        Args:
            query_vec: the question's vector from `embed_query`, when the caller already has it.
        """
        if role not in AUDIENCES_FOR_ROLE:
            raise ValueError(f"unknown role '{role}'; use one of {', '.join(ROLES)}")
        if not self.index.passages or not query.strip():
            return []
        if query_vec is None:
            query_vec = self.embed_query(query)
        signals = self._signals(query, role, query_vec)
        scores = signals.fused
        if self.model is not None:
            ids, matrix = self.candidate_features(query, role, query_vec, signals)
            scores = dict(zip(ids, (float(v) for v in self.model.score(matrix)), strict=True)) if ids else {}
        lexical_scores, section_sims = signals.lexical_scores, signals.section_sims
        sections = self.index.passage_section
        unnamed = self._unnamed_situations(query, scores)
        # A section for a narrower situation the question does not name goes after all the others: "my child
        # is bullied" must not open with what to do when your child is the one accused.
        ranked = sorted(scores, key=lambda i: (i in unnamed, -scores[i], i))[:k]
        return [
            Hit(self.index.passages[i], scores[i], float(self.index.vectors[i] @ query_vec), float(lexical_scores[i]),
                float(section_sims[sections[i]]) if sections is not None and sections[i] >= 0 else 0.0)
            for i in ranked
        ]


def _ranks(values: np.ndarray) -> np.ndarray:
    """Rank of each value from 1 (highest), ties in order."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float32)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks
