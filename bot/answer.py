"""Grounded, extractive answers: the most relevant sentences of the best passages, each with its citation.

No text is generated: an answer only ever quotes the knowledge base. When the best evidence is too weak the
answer is a refusal that says whom to contact instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from bot.chunk import Passage, split_sentences
from bot.embed import Embedder, make_embedder
from bot.i18n import Catalog
from bot.index import LoadedIndex, load_index
from bot.lexical import Glossary, char_ngrams
from bot.replies import Citation
from bot.retrieve import AUDIENCES_FOR_ROLE, Hit, Retriever

MAX_QUESTION_CHARS = 1000  # longer questions are searched by their beginning; embedders truncate anyway
SENTENCES_PER_PASSAGE = 2
# A cited passage must be about as close to the question as the best one; weaker ones add noise.
CITATION_MARGIN = 0.04
# Quotes sharing more than this share of their character n-grams (Jaccard) repeat each other.
REPEAT_OVERLAP = 0.5

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TAG = re.compile(r"<[^>]{0,200}>")
_MARKUP = re.compile(r"[*_`#>\[\]|~]+")


@dataclass
class Answer:
    question: str
    answered: bool
    answer: str
    citations: list[Citation]
    suggested_flow: str | None
    role: str
    # The ranked passages the answer (or refusal) was decided on; for evaluation, not part of the JSON.
    hits: list[Hit] = field(default_factory=list, repr=False, compare=False)

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answered": self.answered,
            "answer": self.answer,
            "citations": [c.to_json() for c in self.citations],
            "suggested_flow": self.suggested_flow,
            "role": self.role,
        }


def clean_question(text: str) -> tuple[str, bool]:
    """Search text for a raw question: no control characters or markup; (text, was_truncated)."""
    text = _ANSI.sub(" ", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = _MARKUP.sub(" ", _TAG.sub(" ", text))
    text = " ".join(text.split())
    if len(text) > MAX_QUESTION_CHARS:
        return text[:MAX_QUESTION_CHARS].rsplit(" ", 1)[0], True
    return text, False


# A sentence that qualifies the one before it: it stays with it in every quote.
_CAVEAT = re.compile(r"ikke bekreftet|ikkje stadfest|må sjekkes|sjekk det|not confirmed|check with|uncertain", re.I)
# Sentences that lean on the one before them; a quote must not start with one.
_LEANING = re.compile(r"^(den|det|dette|denne|disse|de|dei|han|hun|ho|slike|da|så|it|this|these|they|that)\b", re.I)


def pick_sentences(passage: Passage, query: str, limit: int = SENTENCES_PER_PASSAGE) -> list[str]:
    """The run of consecutive sentences that shares the most character n-grams with the question.

    Consecutive, because a quote read on its own must make sense: a run never starts with a sentence that
    leans on the one before ("Den …", "Dette …"), and a lead-in ending with ':' brings its list lines.
    """
    sentences = split_sentences(passage.text)
    if len(sentences) <= limit:
        return sentences
    query_grams = set(char_ngrams(query))

    def overlap(sentence: str) -> float:
        grams = set(char_ngrams(sentence))
        return len(grams & query_grams) / (len(grams) ** 0.5 or 1.0)

    scores = [overlap(s) for s in sentences]
    starts = [i for i in range(len(sentences) - limit + 1) if i == 0 or not _LEANING.match(sentences[i])]
    start = max(starts, key=lambda i: (sum(scores[i : i + limit]), -i))
    end = start + limit
    bullet = ("-", "•")
    while end < len(sentences) and (
        sentences[end - 1].endswith(":")
        or (sentences[end].startswith(bullet) and sentences[end - 1].startswith(bullet))
        or _CAVEAT.search(sentences[end])  # an unconfirmed rule never loses the sentence that says so
    ):
        end += 1
    return sentences[start:end]


def _heading_matches(heading: str, prefix: str) -> bool:
    """Prefix match that does not let "§ 12-1" match "§ 12-10"."""
    heading = heading.lower()
    return heading.startswith(prefix) and not heading[len(prefix) : len(prefix) + 1].isdigit()


def citation_for(n: int, passage: Passage, score: float = 0.0) -> Citation:
    return Citation(
        n=n,
        passage_id=passage.id,
        document=passage.doc_title,
        section=passage.section,
        refs=passage.refs,
        url=passage.url,
        updated=passage.updated,
        text=passage.text,
        score=score,
    )


class Router:
    """Suggests a walkthrough for questions that ask what to do (rules in knowledge/routing.yaml)."""

    def __init__(self, phrases: list[str], rules: list[dict], known_flows: set[str]):
        self.phrases = [p.lower() for p in phrases]
        self.rules = [r for r in rules if r["flow"] in known_flows]

    @classmethod
    def load(cls, knowledge_dir: Path) -> "Router":
        path = knowledge_dir / "routing.yaml"
        known = {p.stem for p in (knowledge_dir / "flows").glob("*.yaml")}
        if not path.exists():
            return cls([], [], known)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls(data.get("action_phrases", []), data.get("flows", []), known)

    def suggest(self, question: str, role: str, refs: list[str]) -> str | None:
        text = " ".join(question.lower().split())
        if not any(p in text for p in self.phrases):
            return None
        for rule in self.rules:
            if role in rule["roles"] and set(rule["refs"]) & set(refs):
                return rule["flow"]
        return None


class Scope:
    """Topics outside chapter 12 (knowledge/scope.yaml), embedded once, to refuse off-topic questions.

    Embedding similarities between any two Norwegian school texts are high, so a fixed floor alone cannot
    tell "SFO fees" from "SFO staff's duty to act". Comparing the question's closeness to known off-topic
    phrases with its closeness to the best passage can.
    """

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors

    @classmethod
    def load(cls, path: Path, embedder: Embedder) -> "Scope":
        phrases: list[str] = []
        if path.exists():
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            phrases = [str(p) for p in data.get("out_of_scope", [])]
        return cls(embedder.embed_batch(phrases, "passage") if phrases else np.empty((0, embedder.dim), np.float32))

    def closeness(self, query_vec: np.ndarray) -> float:
        """Similarity of the question to the nearest off-topic phrase (0 when there are none)."""
        return float((self.vectors @ query_vec).max()) if len(self.vectors) else 0.0


class Answerer:
    """Answers questions from one loaded index. Build it with `from_settings`."""

    def __init__(
        self,
        retriever: Retriever,
        catalog: Catalog,
        router: Router,
        scope: Scope,
        *,
        threshold: float,
        scope_margin: float = 0.0,
        scope_margin_unfamiliar: float = 0.0,
        max_citations: int = 3,
    ):
        if not 0 <= threshold <= 1:
            raise ValueError("answer threshold must be between 0 and 1 (KAP12_ANSWER_THRESHOLD)")
        self.retriever = retriever
        self.index: LoadedIndex = retriever.index
        self.catalog = catalog
        self.router = router
        self.scope = scope
        self.threshold = threshold
        self.scope_margin = scope_margin
        self.scope_margin_unfamiliar = scope_margin_unfamiliar
        self.max_citations = max_citations

    @classmethod
    def from_settings(cls, settings) -> "Answerer":
        """Load embedder, index, glossary, catalogue and routing; raises IndexMissingError if there is no index."""
        embedder = make_embedder(settings)
        index = load_index(settings.index_dir, embedder)
        glossary = Glossary.load(settings.knowledge_dir / "glossary.yaml")
        retriever = Retriever.from_settings(index, embedder, glossary, settings)
        return cls(
            retriever,
            Catalog.load(settings.knowledge_dir / "ui"),
            Router.load(settings.knowledge_dir),
            Scope.load(settings.knowledge_dir / "scope.yaml", embedder),
            threshold=settings.answer_threshold,
            scope_margin=settings.scope_margin,
            scope_margin_unfamiliar=settings.scope_margin_unfamiliar,
            max_citations=settings.max_citations,
        )

    def _refusal(self, question: str, role: str, lang: str, key: str = "answer.not_found") -> Answer:
        contact = "answer.contact.parent" if role == "parent" else "answer.contact.staff"
        text = f"{self.catalog.get(key, lang)}\n\n{self.catalog.get(contact, lang)}"
        return Answer(question, False, text, [], None, role)

    def in_scope(self, query: str, query_vec: np.ndarray, best: float) -> bool:
        """Whether the evidence is strong enough to answer rather than refuse.

        The best passage must pass a similarity floor and be closer to the question than the nearest
        off-topic phrase (knowledge/scope.yaml) by a margin. A question in the vocabulary of chapter 12
        (the glossary) gets a lower margin than one without it: "SFO" or "plaget" is evidence in itself.
        """
        margin = self.scope_margin if self.retriever.glossary.matches(query) else self.scope_margin_unfamiliar
        return best >= self.threshold and best - self.scope.closeness(query_vec) >= margin

    def ask(self, question: str, role: str = "parent", lang: str = "nb") -> Answer:
        """Answer with cited sentences, or refuse when nothing in the knowledge base is close enough."""
        if role not in AUDIENCES_FOR_ROLE:
            raise ValueError(f"unknown role '{role}'")
        query, truncated = clean_question(question)
        if not query:
            return self._refusal(question, role, lang, "answer.empty")
        query_vec = self.retriever.embed_query(query)
        hits = self.retriever.search(query, role, k=10, query_vec=query_vec)
        best = max((h.dense for h in hits[: self.max_citations]), default=0.0)
        if not self.in_scope(query, query_vec, best):
            refusal = self._refusal(question, role, lang)
            refusal.hits = hits
            return refusal
        cited: list[Hit] = [h for h in hits[: self.max_citations] if h.dense >= best - CITATION_MARGIN]
        expanded = self.retriever.glossary.expand(query)
        citations, lines, said = [], [], []
        for hit in cited:
            sentences = pick_sentences(hit.passage, expanded)
            grams = set(char_ngrams(" ".join(sentences)))
            # The parents' guide and the law guide often say the same thing; quote it once.
            if any(len(grams & seen) / max(len(grams | seen), 1) > REPEAT_OVERLAP for seen in said):
                continue
            said.append(grams)
            n = len(citations) + 1
            citations.append(citation_for(n, hit.passage, hit.score))
            lines.append(" ".join(f"{s} [{n}]" for s in sentences))
        notes = [self.catalog.get("answer.general_rules", lang)]
        if truncated:
            notes.insert(0, self.catalog.get("answer.truncated", lang))
        refs = [r for c in citations[:2] for r in c.refs]
        return Answer(
            question=question,
            answered=True,
            answer="\n\n".join(lines + notes),
            citations=citations,
            suggested_flow=self.router.suggest(query, role, refs),
            role=role,
            hits=hits,
        )

    def resolve_passage_key(self, key: str) -> list[Passage]:
        """Passages matching '<document id>#<heading prefix>' (see flows); [] for an unknown key."""
        doc_id, _, heading = key.partition("#")
        heading = heading.strip().lower()
        return [
            p
            for p in self.index.passages
            if p.doc_id == doc_id
            and (not heading or any(_heading_matches(h, heading) for h in (p.doc_title, *p.headings)))
        ]

    def citations_for_keys(self, keys: list[str], role: str) -> list[Citation]:
        """Citations for a flow step: the first passage each key matches that the role may see."""
        allowed = AUDIENCES_FOR_ROLE.get(role, AUDIENCES_FOR_ROLE["parent"])
        citations: list[Citation] = []
        for key in keys:
            match = next((p for p in self.resolve_passage_key(key) if p.audience in allowed), None)
            if match and all(c.passage_id != match.id for c in citations):
                citations.append(citation_for(len(citations) + 1, match))
        return citations

    def sources(self) -> list[dict]:
        return list(self.index.documents)
