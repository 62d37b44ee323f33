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


def test_a_norwegian_place_name_does_not_make_english_another_language():
    for text in ("I just started at a school in Tromsø. A boy in my class sits alone every break. "
                 "is that something I need to do anything about?",
                 "we live in Bærum and my son is being bullied at school, what can we do?",
                 "my daughter's school in Ålesund says they are investigating"):
        assert detect_language(text) == "en", text
    for text, lang in (("datteren min blir mobbet på skolen i Tromsø", "nb"),
                       ("sonen min blir mobba på skulen, kva kan vi gjere?", "nn"),
                       ("hva gjør skolen når barnet mitt blir plaget", "nb"),
                       ("må skolen lage en plan?", "nb")):
        assert detect_language(text) == lang, text


def test_a_norwegian_thanks_is_not_english_and_a_foreign_one_word_thanks_is_another_language():
    # «for» is a Norwegian word as much as an English one
    for text in ("takk for hjelpa", "takk for hjelpen", "tusen takk for svaret"):
        assert detect_language(text) in ("", "nb", "nn"), text
    assert detect_language("thank you for your help") == "en"
    for text in ("mahadsanid", "dziękuję", "dzieki"):
        assert detect_language(text) == "other", text
    for text in ("ok", "in", "hei", "13"):  # one word that is no one's alone says nothing
        assert detect_language(text) == "", text
