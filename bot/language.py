"""Which language a message is written in: nb, nn, en, or another one (pl, uk, ar, so, …) as "other".

A few hundred characters of a question are enough for word lists: the bot needs to know whether to answer
in the user's chosen language, switch to English, or say that it only speaks Norwegian and English.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

import yaml

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_CYRILLIC_ARABIC = re.compile(r"[\u0400-\u04ff\u0600-\u06ff]")
_POLISH = re.compile(r"[ąęłśżźćń]")

MARKERS_FILE = "data/language-markers.yaml"  # inside the package: a language's common words are no one's local content


@functools.cache
def _markers() -> dict[str, frozenset[str]]:
    """The marker words per language (bot/data/language-markers.yaml), read once."""
    data = yaml.safe_load(resources.files("bot").joinpath(MARKERS_FILE).read_text(encoding="utf-8")) or {}
    markers = data.get("markers") if isinstance(data, dict) else None
    if not isinstance(markers, dict) or not {"en", "nb", "nn"} <= set(markers):
        raise ValueError(f"{MARKERS_FILE}: 'markers' must list words for en, nb and nn")
    return {str(lang): frozenset(str(w).casefold() for w in words or []) for lang, words in markers.items()}


def detect_language(text: str) -> str:
    """'nb', 'nn', 'en' or 'other'; '' when there is nothing to go on (a number, an emoji, one word)."""
    sample = text[:400].casefold()
    if _CYRILLIC_ARABIC.search(sample):
        return "other"
    words = _WORD.findall(sample)
    if _POLISH.search(sample) and not re.search(r"[æøå]", sample):
        return "other"
    markers = _markers()
    scores = {lang: 0.0 for lang in markers}
    only_nn = only_nb = 0
    for word in words:
        owners = [lang for lang, words_of in markers.items() if word in words_of]
        for lang in owners:
            scores[lang] += 1.0 / len(owners)
        only_nn += owners == ["nn"]
        only_nb += owners == ["nb"]
    # English rarely carries æ, ø or å, except in a Norwegian name («a school in Tromsø», «we live in Bærum»):
    # a capitalised word does not rule English out.
    if any(re.search(r"[æøå]", word) and not word[:1].isupper() for word in _WORD.findall(text[:400])):
        scores["en"] = 0
    best = max(scores, key=lambda lang: scores[lang])
    if best == "other" and words and len(words) < 3 and scores["other"] == len(words):  # «mahadsanid», «dziękuję»
        return "other"
    if scores[best] < 1 or (len(words) < 3 and scores[best] < 2):
        return ""
    # Nynorsk and bokmål share most words: only clearly nynorsk words decide for nynorsk.
    if best in ("nb", "nn"):
        return "nn" if only_nn > only_nb else "nb"
    return best
