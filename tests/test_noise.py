"""Keyboard mashing is told apart from real words in every language the bot meets."""

import pytest

from bot.noise import is_noise


@pytest.mark.parametrize("text", ["asdfghjkl", "qwerty", "jkjkjkjk", "hhhhh", "sdfg hjkl", "asdf?", "zxcvb!!"])
def test_keyboard_mashing_is_noise(text):
    assert is_noise(text)


@pytest.mark.parametrize("text", [
    "hei", "ok", "mobbing", "SFO", "PPT", "xD", "lol", "hahaha", "jajaja", "property", "hjelp", "kva no",
    "Cześć", "Привіт", "مرحبا", "§ 12-4", "12-4", "😀😀😀", "", "   ", "?",
])
def test_words_numbers_emoji_and_other_scripts_are_not_noise(text):
    assert not is_noise(text)


def test_a_known_word_is_never_noise():
    assert is_noise("hmmm") and not is_noise("hmmm", frozenset({"hmmm"}))


def test_one_real_word_among_mashing_is_enough_to_read_the_message():
    assert not is_noise("asdf mobbing")
