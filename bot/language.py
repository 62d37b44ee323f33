"""Which language a message is written in: nb, nn, en, or another one (pl, uk, ar, so, …) as "other".

A few hundred characters of a question are enough for word lists: the bot needs to know whether to answer
in the user's chosen language, switch to English, or say that it only speaks Norwegian and English.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_CYRILLIC_ARABIC = re.compile(r"[\u0400-\u04ff\u0600-\u06ff]")
_POLISH = re.compile(r"[ąęłśżźćń]")

# Frequent words that mostly belong to one language (a word in two lists counts for neither).
_MARKERS = {
    "en": {"the", "is", "are", "my", "what", "how", "does", "do", "school", "child", "son", "daughter", "and",
           "to", "of", "in", "not", "can", "should", "teacher", "bullied", "who", "when", "have", "has", "it",
           "i", "you", "with", "for", "about", "this", "that", "they", "be", "will", "would", "if"},
    "nb": {"jeg", "ikke", "hva", "hvordan", "hvem", "hvis", "skolen", "barnet", "også", "noe", "mitt", "min",
           "det", "er", "og", "på", "har", "skal", "kan", "til", "av", "hun", "han", "blir", "sønnen",
           "datteren", "når", "hvor", "lærer", "læreren", "vi", "meg", "deg", "fra", "mye", "nå", "gjør"},
    "nn": {"eg", "ikkje", "kva", "korleis", "kven", "viss", "skulen", "barnet", "òg", "noko", "mitt", "min",
           "det", "er", "og", "på", "har", "skal", "kan", "til", "av", "ho", "han", "blir", "sonen", "dottera",
           "når", "kor", "lærar", "læraren", "vi", "meg", "deg", "frå", "mykje", "no", "gjer", "dei", "ein",
           "eit", "berre", "heile", "sjølv", "kjem", "fekk", "vere", "gjere"},
    # Polish (also typed without diacritics) and Somali. "in" is Somali too, so it decides for neither.
    "other": {"jest", "nie", "szkoła", "szkole", "szkola", "moje", "moj", "moja", "dziecko", "się", "jak", "co",
              "czy", "syn", "corka", "nauczyciel", "gdzie", "kto", "dlaczego",
              "ardayga", "iskuulka", "waxaa", "maxaa", "waa", "ma", "iyo", "aan", "wiilkayga", "gabadhayda",
              "macallinka", "dugsiga", "dugsigu", "ayaa", "ayaan", "maxay", "maxaan", "sidee", "xaggee", "haddii",
              "waxba", "wax", "oo", "ka", "inuu", "ilmahayga", "kale", "weli", "in"},
}


def detect_language(text: str) -> str:
    """'nb', 'nn', 'en' or 'other'; '' when there is nothing to go on (a number, an emoji, one word)."""
    sample = text[:400].casefold()
    if _CYRILLIC_ARABIC.search(sample):
        return "other"
    words = _WORD.findall(sample)
    if _POLISH.search(sample) and not re.search(r"[æøå]", sample):
        return "other"
    scores = {lang: 0.0 for lang in _MARKERS}
    only_nn = only_nb = 0
    for word in words:
        owners = [lang for lang, markers in _MARKERS.items() if word in markers]
        for lang in owners:
            scores[lang] += 1.0 / len(owners)
        only_nn += owners == ["nn"]
        only_nb += owners == ["nb"]
    if re.search(r"[æøå]", sample):
        scores["en"] = 0  # English questions rarely carry æ, ø or å
    best = max(scores, key=lambda lang: scores[lang])
    if scores[best] < 1 or (len(words) < 3 and scores[best] < 2):
        return ""
    # Nynorsk and bokmål share most words: only clearly nynorsk words decide for nynorsk.
    if best in ("nb", "nn"):
        return "nn" if only_nn > only_nb else "nb"
    return best
