"""Plain words for the terms a reply used: "hva betyr det?" or "forklar enklere" right after an answer or a step.

knowledge/explain.yaml holds, per term, the words that name it in the bot's replies, a short explanation per
language and the passage it rests on (cited, so an explanation never stands without its source). What a user
last read is remembered as term ids only (never text), in memory, for a few minutes.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from bot.datafiles import read_yaml_mapping
from bot.errors import DocumentError
from bot.flows import passage_alternatives
from bot.lexical import normalise_query, terms_regex
from bot.replies import Citation

log = logging.getLogger(__name__)

LANGS = ("nb", "nn", "en")
MAX_TERMS = 3  # more than three explanations is a lecture, not an answer to "what does that mean?"
DEFINITION_WORDS = 8  # "hva er en aktivitetsplan?" asks for the term; a longer message asks about a case
RECENT_SECONDS = 10 * 60
RECENT_USERS = 4096  # memory bound: the oldest users are dropped first


@dataclass(frozen=True)
class Term:
    id: str
    words: tuple[str, ...]
    source: str  # "<document id>#<heading prefix>", alternatives separated by " | " as in the flows
    text: dict[str, str]


class Terms:
    """The explained terms, in the file's order: the order in which they are explained when several are named."""

    def __init__(self, terms: list[Term], asking: tuple[str, ...] = ()):
        self.terms = terms
        self.asking = asking  # how a question for a term's meaning starts, normalised
        self._owner = {normalise_query(word): term for term in terms for word in term.words}
        # Longest first, so "skjerpet aktivitetsplikt" wins over "aktivitetsplikt" where both start.
        self._pattern = terms_regex(sorted(self._owner, key=len, reverse=True)) if self._owner else None

    @classmethod
    def load(cls, path: Path) -> "Terms":
        """The terms of knowledge/explain.yaml (none without the file); raises DocumentError naming it."""
        data = read_yaml_mapping(path, required=False)
        raw = data.get("terms") or []
        if not isinstance(raw, list):
            raise DocumentError(path, "'terms' must be a list")
        terms, seen_ids, seen_words = [], set(), {}
        for i, item in enumerate(raw, 1):
            where = f"term {i}"
            if not isinstance(item, dict):
                raise DocumentError(path, f"{where} must be a mapping with id, words, source and nb/nn/en")
            term_id = str(item.get("id") or "").strip()
            words = item.get("words")
            source = str(item.get("source") or "").strip()
            if not term_id or term_id in seen_ids:
                raise DocumentError(path, f"{where} needs a unique 'id'")
            if not isinstance(words, list) or not words or not all(str(w).strip() for w in words):
                raise DocumentError(path, f"term '{term_id}' needs 'words' (a list of words)")
            if "#" not in source:
                raise DocumentError(path, f"term '{term_id}' needs a 'source' like 'kapittel-12-forklart#Heading'")
            missing = [lang for lang in LANGS if not str(item.get(lang) or "").strip()]
            if missing:
                raise DocumentError(path, f"term '{term_id}' lacks its explanation in {', '.join(missing)}")
            folded = tuple(str(w).strip().casefold() for w in words)
            for word in folded:
                if word in seen_words:
                    raise DocumentError(path, f"'{word}' names both '{seen_words[word]}' and '{term_id}'")
                seen_words[word] = term_id
            seen_ids.add(term_id)
            terms.append(Term(term_id, folded, source, {lang: str(item[lang]).strip() for lang in LANGS}))
        asking = data.get("asking") or {}
        if not isinstance(asking, dict) or not all(isinstance(v, list) for v in asking.values()):
            raise DocumentError(path, "'asking' must map a language to a list of phrases")
        return cls(terms, tuple(normalise_query(str(p)) for phrases in asking.values() for p in phrases))

    def named_in(self, text: str) -> list[str]:
        """Ids of the terms `text` names, most needed first (the file's order)."""
        if self._pattern is None:
            return []
        found = {self._owner[m.group(0)].id for m in self._pattern.finditer(normalise_query(text))}
        return [term.id for term in self.terms if term.id in found]

    def asked_for(self, text: str) -> str | None:
        """The term a short question asks the meaning of («hva er en aktivitetsplan?»), else None."""
        words = normalise_query(text)
        if len(words.split()) > DEFINITION_WORDS or not any(f"{words} ".startswith(f"{p} ") for p in self.asking):
            return None
        named = self.named_in(text)
        return named[0] if len(named) == 1 else None

    def get(self, term_id: str) -> Term | None:
        return next((term for term in self.terms if term.id == term_id), None)


class Explanations:
    """Remembers which terms each user last read, and explains them on request."""

    def __init__(self, core, terms: Terms):
        self.core = core
        self.terms = terms
        self._seen: OrderedDict[str, tuple[tuple[str, ...], float]] = OrderedDict()

    @classmethod
    def from_core(cls, core) -> "Explanations":
        knowledge = getattr(core.settings, "knowledge_dir", None)
        return cls(core, Terms.load(Path(knowledge) / "explain.yaml") if knowledge else Terms([]))

    def saw(self, user_id: str, text: str) -> None:
        """The user was just shown `text` (an answer or a step): what "hva betyr det?" will be about."""
        self._seen[user_id] = (tuple(self.terms.named_in(text)), time.monotonic())
        self._seen.move_to_end(user_id)
        while len(self._seen) > RECENT_USERS:
            self._seen.popitem(last=False)

    def recent(self, user_id: str) -> tuple[str, ...]:
        seen = self._seen.get(user_id)
        if seen is None or time.monotonic() - seen[1] > RECENT_SECONDS:
            self._seen.pop(user_id, None)
            return ()
        return seen[0]

    def forget_user(self, user_id: str) -> None:
        self._seen.pop(user_id, None)

    def names_a_term(self, text: str) -> bool:
        """ "hva betyr tvangsmulkt?" asks about a term by name: a question, not a follow-up on the last reply."""
        return bool(self.terms.named_in(text))

    def explain(self, state, lang: str) -> tuple[list[str], list[Citation]] | None:
        """Explanations of the terms the user last read (at most three), each ending with its citation mark, and
        the citations; None when the last reply named no term."""
        return self._lines(state, self.recent(state.user_id)[:MAX_TERMS], lang)

    def define(self, state, term_id: str, lang: str) -> tuple[list[str], list[Citation]] | None:
        """The explanation of one term a user asked about by name, with its citation; None without its source."""
        return self._lines(state, (term_id,), lang)

    def _lines(self, state, ids, lang: str) -> tuple[list[str], list[Citation]] | None:
        if not ids:
            return None
        role = self.core.retrieval_role(state)
        before = set(self.recent(state.user_id))
        lines: list[str] = []
        citations: list[Citation] = []
        for term_id in ids:
            term = self.terms.get(term_id)
            if term is None:
                continue
            citation = self._cite(term, lang, role)
            if citation is None:  # a term whose source the reader may not see is not explained without it
                continue
            same = next((c for c in citations if c.passage_id == citation.passage_id), None)
            if same is None:
                same = replace(citation, n=len(citations) + 1)
                citations.append(same)
            lines.append(f"{term.text[lang if lang in LANGS else 'nb']} [{same.n}]")
        if not lines:
            return None
        # What "hva betyr det?" asks about next: the words of these explanations not explained just now.
        later = [t for t in self.terms.named_in("\n".join(lines)) if t not in ids and t not in before]
        self._seen[state.user_id] = (tuple(later), time.monotonic())
        return lines, citations

    def _cite(self, term: Term, lang: str, role: str) -> Citation | None:
        alternatives = passage_alternatives(term.source)
        language_of = self.core.walk.document_language
        ordered = sorted(alternatives, key=lambda key: language_of(key.split("#", 1)[0]) != lang)
        try:
            for key in ordered:
                found = self.core.answerer.citations_for_keys([key], role)
                if found:
                    return found[0]
        except Exception:  # an explanation never stands without its source; the reply falls back calmly
            log.exception("looking up the source of an explanation failed")
        return None


__all__ = ["Explanations", "Term", "Terms"]
