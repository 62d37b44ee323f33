"""Keyboard mashing ("asdfghjkl", "jkjkjk", "sdfg hjkl"): a message with letters but no word in it.

Such a message is neither a question nor small talk, so it gets «I did not understand» rather than whatever
chat phrase or off-topic example happens to lie nearest. The test is strict on purpose: only when every word
looks typed at random, so a real word in any language is never turned away.
"""

import re

_ROWS = ("qwertyuiopå", "asdfghjkløæ", "zxcvbnm")
_RUN = 4
# Four keys in a row that do occur inside real words ("property", "Ewert").
_REAL_RUNS = {"erty", "wert"}
_VOWELS = set("aeiouyæøåéèêàáâôóòü")
_WORD = re.compile(r"[^\W\d_]+")
_LATIN = re.compile(r"[a-zæøåéèêàáâôóòü]+")
_REPEATED_UNIT = re.compile(r"(.{1,3}?)\1{2,}")
_LAUGHS = {"ha", "he", "hi", "ho", "ja"}  # "hahaha", "jajaja": laughter and yes, not mashing


def _row_run(word: str) -> bool:
    for row in _ROWS:
        for start in range(len(row) - _RUN + 1):
            run = row[start:start + _RUN]
            if run not in _REAL_RUNS and (run in word or run[::-1] in word):
                return True
    return False


def _random_word(word: str) -> bool:
    if not _LATIN.fullmatch(word):
        return False  # other scripts: no way to tell here, so never noise
    if len(word) >= 4 and not _VOWELS & set(word):
        return True
    if len(word) >= 5 and _REPEATED_UNIT.fullmatch(word) and len(set(word)) <= 2 and word[:2] not in _LAUGHS:
        return True
    return _row_run(word)


def is_noise(text: str, known_words: frozenset[str] = frozenset()) -> bool:
    """True when the text has letters and every word in it looks typed at random (and is not a known word)."""
    words = _WORD.findall(text.lower())
    if not words:
        return False
    return all(word not in known_words and _random_word(word) for word in words)
