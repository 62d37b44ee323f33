"""Telling the language a message is written in, from the word lists in bot/data/language-markers.yaml."""

from bot.language import _markers, detect_language


def test_the_word_lists_load_as_words():
    markers = _markers()
    assert {"en", "nb", "nn", "other"} <= set(markers)
    assert all(isinstance(w, str) and w == w.casefold() for words in markers.values() for w in words)
    assert "no" in markers["nn"]  # YAML would read an unquoted no as false


def test_the_word_lists_decide_the_language():
    # a message made only of nynorsk markers is nynorsk, one only of English markers English
    assert detect_language(" ".join(sorted(_markers()["nn"] - _markers()["nb"]))) == "nn"
    assert detect_language(" ".join(sorted(_markers()["en"] - _markers()["nb"] - _markers()["other"]))) == "en"
