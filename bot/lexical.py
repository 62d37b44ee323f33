"""Lexical search: BM25 (bm25s) over character 4-grams, with a glossary of lay and nynorsk synonyms.

Character n-grams match across bokmål/nynorsk spellings (undersøke/undersøkje), split or joined compounds
(skole miljø/skolemiljø) and typos, which word tokens with a stemmer miss.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import yaml

from bot.errors import DocumentError
from bot.refs import find_refs

NGRAM = 4
REF_WEIGHT = 2
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def normalise_query(text: str) -> str:
    """Lowercase, NFC, punctuation to spaces: the form both tokenising and glossary matching use."""
    text = unicodedata.normalize("NFC", text).lower()
    return " ".join(_WORD.findall(text))


def tokenize(text: str) -> list[str]:
    """Character n-grams plus one whole token per legal reference ("§12-4"), repeated to weigh more.

    Split into n-grams, "§ 12-3" is only " 12 " and " 3 ", which half the corpus shares; as one token
    it finds the passages about that paragraph, and old numbers ("9 A-3") also give their new one.
    """
    ref_tokens = [ref.replace(" ", "") for ref in find_refs(text)]
    return char_ngrams(text) + ref_tokens * REF_WEIGHT


def char_ngrams(text: str, n: int = NGRAM) -> list[str]:
    """Padded character n-grams per word; short words count as one token each."""
    tokens: list[str] = []
    for word in normalise_query(text).split():
        padded = f" {word} "
        if len(padded) <= n:
            tokens.append(padded)
        else:
            tokens.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return tokens


def _term_pattern(term: str) -> str:
    """Long terms match word starts (inflections); short ones only whole words, to avoid chance hits."""
    escaped = re.escape(normalise_query(term))
    return escaped if len(term) >= 5 else escaped + r"\b"


def terms_regex(terms) -> re.Pattern:
    """One pattern matching any of the terms in a normalised text (`normalise_query`), as the glossary does."""
    return re.compile(r"\b(?:" + "|".join(_term_pattern(t) for t in terms) + r")")


ACT_GAP = 2  # at most this many words between who acts and what they do ("læreren min ler av meg")


@dataclass(frozen=True)
class GlossaryEntry:
    canonical: tuple[str, ...]  # search terms added to the query
    variants: tuple[str, ...]  # what users write instead
    harm: bool = False  # words for being hurt (bullying, violence, exclusion …): such a message is never declined
    rules: tuple[str, ...] = ()  # the rules (§) a question in these words is about
    who: tuple[str, ...] = ()  # with `does`: the group also matches someone (who) doing something (does)
    does: tuple[str, ...] = ()

    def pattern(self) -> re.Pattern:
        alternatives = [terms_regex(self.variants + self.canonical).pattern]
        if self.who and self.does:
            who, does = terms_regex(self.who).pattern, terms_regex(self.does).pattern
            alternatives.append(rf"{who}\w*(?:\W+\w+){{0,{ACT_GAP}}}?\W+{does}")
        return re.compile("|".join(f"(?:{a})" for a in alternatives))


class Glossary:
    """Synonym groups from knowledge/glossary.yaml; a query with a variant also searches the canonical terms."""

    def __init__(self, entries: list[GlossaryEntry]):
        self.entries = entries
        self._patterns = [(entry, entry.pattern()) for entry in entries]
        harm = [t for entry in entries if entry.harm for t in (*entry.variants, *entry.canonical)]
        self._harm = terms_regex(harm) if harm else None

    @classmethod
    def load(cls, path: Path) -> "Glossary":
        """The glossary file (no file: an empty glossary).

        Raises:
            DocumentError: naming the file, when it cannot be read or is not a list of synonym groups.
        """
        if not path.exists():
            return cls([])
        shape = ("the glossary must be a list of {canonical: [terms], variants: [terms], harm: true|false, "
                 "rules: ['§ …'], acts: {who: [terms], does: [terms]}}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise DocumentError(path, f"cannot read the glossary: {exc}") from None
        if not isinstance(data, list):
            raise DocumentError(path, shape)
        entries = []
        for number, item in enumerate(data, start=1):
            canonical = item.get("canonical") if isinstance(item, dict) else None
            variants = (item.get("variants") or []) if isinstance(item, dict) else None
            harm = item.get("harm", False) if isinstance(item, dict) else None
            rules = (item.get("rules") or []) if isinstance(item, dict) else None
            acts = (item.get("acts") or {}) if isinstance(item, dict) else None
            if not isinstance(canonical, list) or not canonical or not isinstance(variants, list) \
                    or not isinstance(harm, bool) or not isinstance(rules, list) or not isinstance(acts, dict) \
                    or set(acts) - {"who", "does"} or any(not isinstance(v, list) for v in acts.values()) \
                    or bool(acts.get("who")) != bool(acts.get("does")):
                raise DocumentError(path, f"{shape}; entry {number} is not one")
            unknown = [r for r in rules if find_refs(str(r)) != [str(r)]]
            if unknown:
                raise DocumentError(path, f"entry {number}: {unknown[0]!r} is not a rule like '§ 12-5'")
            entries.append(GlossaryEntry(tuple(str(t) for t in canonical), tuple(str(t) for t in variants), harm,
                                         tuple(str(r) for r in rules), tuple(str(t) for t in acts.get("who") or []),
                                         tuple(str(t) for t in acts.get("does") or [])))
        return cls(entries)

    def matches(self, text: str) -> bool:
        """Whether the text uses any term of the glossary, i.e. speaks the language of chapter 12."""
        norm = normalise_query(text)
        return any(pattern.search(norm) for _, pattern in self._patterns)

    def names_harm(self, text: str) -> bool:
        """Whether the text speaks of someone being hurt (the groups marked `harm: true`)."""
        return bool(self._harm) and bool(self._harm.search(normalise_query(text)))

    def rules_named(self, text: str) -> set[str]:
        """The rules of every group the text uses (its words for tvangsmulkt name § 12-8)."""
        norm = normalise_query(text)
        return {rule for entry, pattern in self._patterns if entry.rules and pattern.search(norm)
                for rule in entry.rules}

    def expand(self, text: str, terms_per_group: int | None = None) -> str:
        """The text followed by the canonical terms (or the first few) of every group it mentions."""
        norm = normalise_query(text)
        extra = [
            t for entry, pattern in self._patterns if pattern.search(norm) for t in entry.canonical[:terms_per_group]
        ]
        # Each added word costs query-embedding time, so add every term once.
        extra = list(dict.fromkeys(t for t in extra if t.lower() not in norm))
        return f"{text} {' '.join(extra)}" if extra else text


class LexicalIndex:
    """BM25 over character n-grams of each passage's heading path and text."""

    def __init__(self, retriever: bm25s.BM25):
        self._bm25 = retriever
        self._vocab = set(retriever.vocab_dict)

    @classmethod
    def build(cls, texts: list[str]) -> "LexicalIndex":
        retriever = bm25s.BM25(k1=1.2, b=0.75)
        retriever.index([tokenize(t) for t in texts], show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self._bm25.save(str(folder))

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        return cls(bm25s.BM25.load(str(folder)))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for the query (0 where nothing matches)."""
        tokens = [t for t in tokenize(query) if t in self._vocab]
        if not tokens:
            return np.zeros(self._bm25.scores["num_docs"], dtype=np.float32)
        return self._bm25.get_scores(tokens)
