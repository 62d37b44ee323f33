"""The UI catalogue: merging parts, fallback, and completeness of the shipped catalogue."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from bot.dialog import KEYS
from bot.errors import DocumentError
from bot.i18n import LANGUAGES, Catalog

UI_DIR = Path(__file__).resolve().parent.parent / "knowledge" / "ui"


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return Catalog.load(UI_DIR)


def test_shipped_catalogue_has_every_key_in_every_language(shipped):
    missing = {lang: sorted(keys) for lang, keys in shipped.missing_keys().items() if keys}
    assert missing == {}, f"keys missing per language: {missing}"


def test_shipped_translations_take_the_same_placeholders(shipped):
    mismatched = []
    for key in sorted(shipped.keys()):
        names = {lang: shipped.placeholders(key, lang) for lang in LANGUAGES}
        if len({frozenset(v) for v in names.values()}) != 1:
            mismatched.append((key, names))
    assert mismatched == []


def test_every_key_the_core_uses_is_in_the_catalogue_and_none_is_dead(shipped):
    dialog_keys = {key.removeprefix("dialog.") for key in shipped.keys() if key.startswith("dialog.")}
    assert set(KEYS) - dialog_keys == set(), "used by bot/dialog.py or bot/console.py but not in the catalogue"
    assert dialog_keys - set(KEYS) == set(), "in dialog.*.yaml but never used"


def test_the_code_only_uses_declared_keys():
    root = Path(__file__).resolve().parent.parent / "bot"
    used = set()
    for name in ("dialog.py", "console.py"):
        source = (root / name).read_text(encoding="utf-8")
        used |= set(re.findall(r'_t\(\s*"([a-z_.-]+)"', source))
    assert used and used <= set(KEYS)


def test_emergency_number_and_not_a_verdict_in_every_language(shipped):
    for lang in LANGUAGES:
        assert "112" in shipped.get("dialog.limits", lang)
        assert "112" in shipped.get("dialog.help", lang)
    assert "ikke vurdere en bestemt sak" in shipped.get("dialog.limits", "nb")
    assert "ikkje vurdere ei bestemt sak" in shipped.get("dialog.limits", "nn")
    assert "cannot assess a specific case" in shipped.get("dialog.limits", "en")


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_parts_merge_and_a_missing_translation_falls_back_to_bokmal(tmp_path):
    write(tmp_path, "a.nb.yaml", "a.hello: 'Hei, {name}!'\na.only_nb: 'Bare bokmål'\n")
    write(tmp_path, "a.nn.yaml", "a.hello: 'Hei, {name}!'\n")
    write(tmp_path, "b.en.yaml", "b.bye: 'Bye'\n")
    catalog = Catalog.load(tmp_path)
    assert catalog.get("a.hello", "nn", name="Kari") == "Hei, Kari!"
    assert catalog.get("a.only_nb", "en") == "Bare bokmål"
    assert catalog.get("b.bye", "nb") == "Bye"  # defined only in English: still never raises
    assert catalog.get("a.hello", "de", name="X") == "Hei, X!"  # unknown language → bokmål
    assert catalog.missing_keys() == {
        "nb": {"b.bye"}, "nn": {"a.only_nb", "b.bye"}, "en": {"a.hello", "a.only_nb"},
    }


def test_unknown_key_is_a_bug():
    with pytest.raises(KeyError):
        Catalog({"nb": {"x": "y"}}).get("nope", "nb")


def test_formatting_never_breaks_a_conversation(caplog):
    catalog = Catalog({"nb": {"gap": "Hei {name}, {missing}", "bad": "Hei {", "plain": "Ingen {{klammer}}"}})
    assert catalog.get("gap", "nb", name="Ola") == "Hei Ola, {missing}"
    with caplog.at_level(logging.WARNING):
        assert catalog.get("bad", "nb") == "Hei {"
    assert "malformed placeholder" in caplog.text
    assert catalog.get("plain", "nb") == "Ingen {klammer}"


@pytest.mark.parametrize(
    "name, text, problem",
    [
        ("a.de.yaml", "x: y\n", "<part>.<lang>.yaml"),
        ("nolang.yaml", "x: y\n", "<part>.<lang>.yaml"),
        ("a.nb.yaml", "- a\n- b\n", "flat mapping"),
        ("a.nb.yaml", "x: [1, 2]\n", "must be text"),
        ("a.nb.yaml", "x: 'unclosed\n", "cannot read"),
    ],
)
def test_bad_catalogue_files_name_the_file_and_the_problem(tmp_path, name, text, problem):
    write(tmp_path, name, text)
    with pytest.raises(DocumentError) as caught:
        Catalog.load(tmp_path)
    assert name in str(caught.value) and problem in str(caught.value)


def test_a_key_defined_by_two_parts_is_an_error(tmp_path):
    write(tmp_path, "a.nb.yaml", "same.key: 'A'\n")
    write(tmp_path, "b.nb.yaml", "same.key: 'B'\n")
    with pytest.raises(DocumentError, match="already defined in a.nb.yaml"):
        Catalog.load(tmp_path)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DocumentError, match="does not exist"):
        Catalog.load(tmp_path / "nope")
