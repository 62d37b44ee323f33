"""Message drafts (/brev) and the note template (/notat): every letter, the wizard's buttons, forged data."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from fakes import KNOWLEDGE, FakeAnswerer

from bot import drafts as drafts_module
from bot.config import load_settings
from bot.dialog import MAX_DATA_BYTES, Dialog
from bot.drafts import ASK, SINCE, STEPS, TO, WHAT, Drafts, DraftChoice, NoteTemplate, all_choices
from bot.errors import DocumentError
from bot.i18n import LANGUAGES, Catalog
from bot.store import SqliteStore, UserState

DRAFTS = Drafts.load(KNOWLEDGE)
NOTES = NoteTemplate.load(KNOWLEDGE)
CATALOG = Catalog.load(KNOWLEDGE / "ui")
BRACKETED = re.compile(r"\[[^\]]*\]")
SECTION = {"nb": "§", "nn": "§", "en": "section"}  # how each language names a section of the act


def state(lang: str = "nb", role: str | None = "parent") -> UserState:
    return UserState(user_id="tg:1", role=role, language=lang)


def datas(reply) -> list[str]:
    return [button.data for row in reply.buttons for button in row]


# -- every letter ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("writer", ["parent", "pupil"])
def test_every_combination_is_a_complete_letter(lang, writer):
    fill = DRAFTS.blocks[lang]["placeholders"][writer]
    letters = set()
    for choice in all_choices():
        text = DRAFTS.letter(choice, lang, writer)
        letters.add(text)
        assert "{" not in text and "}" not in text, (choice, text)
        # Only the user's own, marked placeholders are left to fill in.
        assert set(BRACKETED.findall(text)) <= set(fill.values()), (choice, set(BRACKETED.findall(text)))
        assert fill["writer"] in text  # signed by the writer
        # The legal basis: § 12-4 always, § 12-5 exactly when an adult at school is involved,
        # § 12-6 exactly when the letter goes to Statsforvalteren.
        assert "12-4" in text
        assert ("12-5" in text) == (choice.what == "a"), choice
        assert ("12-6" in text) == (choice.to == "s"), choice
        assert SECTION[lang] in text
        # The chosen request is in the letter, and the letter has all its parts.
        assert DRAFTS.blocks[lang][writer]["ask"][choice.to][choice.ask].format_map(fill) in text
        assert len(text.split("\n\n")) >= 8
        assert len(text) < 4096  # one Telegram message
    assert len(letters) == len(all_choices())  # every choice changes the text


def test_letters_name_the_recipient_and_the_written_plan():
    for lang, plan, sf in (("nb", "skriftlig plan", "Statsforvalteren"), ("nn", "skriftleg plan", "Statsforvaltaren"),
                           ("en", "written plan", "Statsforvalteren")):
        to_rektor = DRAFTS.letter(DraftChoice("b", "w", "r", "i"), lang, "parent")
        to_sf = DRAFTS.letter(DraftChoice("b", "w", "s", "i"), lang, "parent")
        assert "rektor" in to_rektor.split("\n\n")[1]
        assert sf in to_sf.split("\n\n")[1]
        assert plan in to_rektor and plan in to_sf


def test_pupil_gets_plain_words_and_parent_speaks_about_the_child():
    choice = DraftChoice("o", "m", "r", "p")
    pupil = DRAFTS.on_button(state("nb", "pupil"), ["o", "m", "r", "p"], CATALOG)[-1].text
    parent = DRAFTS.on_button(state("nb", "parent"), ["o", "m", "r", "p"], CATALOG)[-1].text
    staff = DRAFTS.on_button(state("nb", "staff"), ["o", "m", "r", "p"], CATALOG)[-1].text
    nobody = DRAFTS.on_button(state("nb", None), ["o", "m", "r", "p"], CATALOG)[-1].text
    assert pupil == DRAFTS.letter(choice, "nb", "pupil")
    assert "[navnet ditt]" in pupil and "[barnets navn]" not in pupil and "Jeg heter" in pupil
    assert "[barnets navn]" in parent and "barnet mitt" in parent
    assert staff == parent == nobody  # the parent's version is the default


# -- the wizard -------------------------------------------------------------------------------------------------
def test_wizard_walks_every_path_with_short_button_data_and_a_menu_button():
    seen, queue = set(), ["d"]
    letters = 0
    while queue:
        data = queue.pop()
        if data in seen:
            continue
        seen.add(data)
        kind, *args = data.split("|")
        assert kind == "d"
        replies = DRAFTS.on_button(state("nn"), args, CATALOG)
        assert "k|meny" in datas(replies[-1])
        for reply in replies:
            for button in datas(reply):
                assert len(button.encode("utf-8")) <= MAX_DATA_BYTES
                if button.startswith("d|") or button == "d":
                    queue.append(button)
        if len(args) == len(STEPS):
            letters += 1
            assert len(replies) == 2 and "12-4" in replies[1].text
    assert letters == len(WHAT) * len(SINCE) * len(TO) * len(ASK)


def test_each_step_offers_its_options_and_a_way_back():
    first = DRAFTS.command(state(), CATALOG)[0]
    assert datas(first) == [f"d|{code}" for code in WHAT] + ["k|meny"]
    second = DRAFTS.on_button(state(), ["v"], CATALOG)[0]
    assert datas(second) == [f"d|v|{code}" for code in SINCE] + ["d", "k|meny"]
    last = DRAFTS.on_button(state(), ["v", "d", "s"], CATALOG)[0]
    assert datas(last) == [f"d|v|d|s|{code}" for code in ASK] + ["d|v|d", "k|meny"]
    assert CATALOG.get("drafts.ask_ask", "nb") in last.text


def test_result_notes_depend_on_the_choices():
    sf = DRAFTS.on_button(state("nb"), ["b", "w", "s", "i"], CATALOG)[0].text
    rektor = DRAFTS.on_button(state("nb"), ["b", "w", "r", "i"], CATALOG)[0].text
    adult = DRAFTS.on_button(state("nb"), ["a", "w", "r", "i"], CATALOG)[0].text
    english = DRAFTS.on_button(state("en"), ["b", "w", "r", "i"], CATALOG)[0].text
    assert CATALOG.get("drafts.note_sf", "nb") in sf and CATALOG.get("drafts.note_sf", "nb") not in rektor
    assert CATALOG.get("drafts.note_adult", "nb") in adult and CATALOG.get("drafts.note_adult", "nb") not in rektor
    assert CATALOG.get("drafts.note_en", "en") in english
    pupil = DRAFTS.on_button(state("nn", "pupil"), ["b", "w", "r", "i"], CATALOG)[0].text
    assert CATALOG.get("drafts.note_pupil", "nn") in pupil and CATALOG.get("drafts.note_pupil", "nb") not in rektor


@pytest.mark.parametrize("forged", [
    ["z"], ["b", "q"], ["b", "w", "r", "i", "x"], [""], ["B"], ["b", "w", "s", "p", ""], ["b|w"],
    ["d", "w"], ["x" * 200], None, "b",
])
def test_forged_or_stale_data_gets_a_calm_restart(forged):
    replies = DRAFTS.on_button(state("en"), forged, CATALOG)
    assert len(replies) == 1
    assert replies[0].text.startswith(CATALOG.get("drafts.invalid", "en"))
    assert datas(replies[0]) == [f"d|{code}" for code in WHAT] + ["k|meny"]


# -- through the conversation core --------------------------------------------------------------------------------
@pytest.fixture
def dialog(tmp_path) -> Dialog:
    settings = load_settings(data_dir=tmp_path)
    core = Dialog(settings, FakeAnswerer(), {}, CATALOG, SqliteStore(tmp_path / "state.sqlite3"))
    drafts_module.register(core, KNOWLEDGE)
    return core


def test_commands_and_buttons_through_the_core_store_nothing(dialog):
    assert dialog.handle_command("tg:9", "/brev")[0].text == DRAFTS.command(state(), CATALOG)[0].text
    assert dialog.handle_command("tg:9", "letter")[0].text == DRAFTS.command(state(), CATALOG)[0].text
    replies = dialog.handle_button("tg:9", "d|v|m|s|a")
    assert replies[1].text == DRAFTS.letter(DraftChoice("v", "m", "s", "a"), "nb", "parent")
    assert dialog.handle_button("tg:9", "k|brev")[0].text == DRAFTS.command(state(), CATALOG)[0].text
    assert "Dato og klokkeslett:" in dialog.handle_button("tg:9", "k|notat")[1].text
    # A passer-by who made a letter leaves nothing behind: no choice, no text, no row.
    assert dialog.store.get_user("tg:9") is None
    assert dialog.store.export_user("tg:9") == {}


def test_forged_data_through_the_core_never_raises(dialog):
    for data in ("d|", "d|b|w|r|i|extra", "d|" + "é" * 40, "d|b||", "d|||||"):
        replies = dialog.handle_button("tg:9", data)
        assert replies and replies[-1].buttons


# -- note template ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGUAGES)
def test_note_template_in_every_language(lang):
    intro, template = NOTES.command(state(lang), CATALOG)
    assert len(template.text.splitlines()) == 7 and all(line.endswith(":") for line in template.text.splitlines())
    assert "k|meny" in datas(template)
    advice = {"nb": "skjermbilder", "nn": "skjermbilete", "en": "screenshots"}[lang]
    assert advice in intro.text
    pupil = NOTES.command(state(lang, "pupil"), CATALOG)[1].text
    assert pupil != template.text  # the pupil is asked how they felt, not how "the child" felt


# -- catalogue and content checks ----------------------------------------------------------------------------
def test_catalogue_has_every_drafts_key_in_all_languages():
    keys = {key for key in CATALOG.keys() if key.startswith("drafts.")}
    assert set(drafts_module.KEYS) == keys  # every key used, none left over
    for key in keys:
        for lang in LANGUAGES:
            assert key not in CATALOG.missing_keys()[lang]
            assert CATALOG.placeholders(key, lang) == CATALOG.placeholders(key, "nb")


def copy_drafts(tmp_path: Path) -> Path:
    shutil.copytree(KNOWLEDGE / "drafts", tmp_path / "drafts")
    return tmp_path


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


@pytest.mark.parametrize("change, message", [
    (lambda d: d["parent"]["what"].pop("v"), "parent.what"),
    (lambda d: d["pupil"]["ask"]["s"].__setitem__("m", "Snakk med {unknown}"), "{unknown}"),
    (lambda d: d["parent"]["basis"].__setitem__("r", "Broken {"), "malformed"),
    (lambda d: d["placeholders"]["parent"].__setitem__("child", "barnets navn"), "[what to fill in]"),
    (lambda d: d.pop("pupil"), "'pupil' is missing"),
    (lambda d: d["parent"].__setitem__("signature", ""), "parent.signature"),
])
def test_broken_letter_blocks_name_the_file_and_the_problem(tmp_path, change, message):
    knowledge = copy_drafts(tmp_path)
    edit(knowledge / "drafts" / "letters.nn.yaml", change)
    with pytest.raises(DocumentError) as caught:
        Drafts.load(knowledge)
    assert "letters.nn.yaml" in str(caught.value) and message in str(caught.value)


def test_missing_files_are_document_errors(tmp_path):
    knowledge = copy_drafts(tmp_path)
    (knowledge / "drafts" / "letters.en.yaml").unlink()
    with pytest.raises(DocumentError, match="letters.en.yaml"):
        Drafts.load(knowledge)
    edit(knowledge / "drafts" / "note.yaml", lambda d: d["nn"].pop("advice"))
    with pytest.raises(DocumentError, match="nn.advice"):
        NoteTemplate.load(knowledge)


def test_a_catalogue_without_the_drafts_keys_stops_start_up(tmp_path):
    core = Dialog(load_settings(data_dir=tmp_path), FakeAnswerer(), {}, Catalog.load(KNOWLEDGE / "ui"),
                  SqliteStore(tmp_path / "state.sqlite3"))
    core.catalog = Catalog({"nb": {"drafts.start": "Hei"}})
    with pytest.raises(ValueError, match="drafts.result"):
        drafts_module.register(core, KNOWLEDGE)
