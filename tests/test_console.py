"""`kap12 chat`: the terminal adapter, scripted through io.StringIO."""

from __future__ import annotations

import io

import pytest
from fakes import KNOWLEDGE, FakeAnswerer

from bot.config import load_settings
from bot.console import USER_ID, format_citation, run_chat
from bot.dialog import Dialog
from bot.flows import load_flows
from bot.i18n import Catalog
from bot.replies import Citation
from bot.store import SqliteStore

CATALOG = Catalog.load(KNOWLEDGE / "ui")
FLOWS = load_flows(KNOWLEDGE / "flows")


def t(key: str, lang: str = "nb", **fmt) -> str:
    return CATALOG.get(f"dialog.{key}", lang, **fmt)


@pytest.fixture
def settings(tmp_path):
    return load_settings(data_dir=tmp_path / "data", knowledge_dir=KNOWLEDGE)


@pytest.fixture
def make_dialog(settings):
    def build() -> Dialog:
        return Dialog(settings, FakeAnswerer(), FLOWS, CATALOG, SqliteStore(settings.data_dir / "state.sqlite3"))

    return build


def chat(settings, dialog: Dialog, script: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run_chat(settings, dialog, stdin=io.StringIO(script), stdout=out)
    return code, out.getvalue()


def test_a_scripted_parent_walks_a_flow_asks_votes_resumes_and_deletes(settings, make_dialog):
    dialog = make_dialog()
    flow = FLOWS["forelder-utrygg"]
    script = "\n".join([
        "1",                              # role: parent (options after the greeting)
        "/meld",                          # the parents' walkthrough
        "1",                              # first button: "we have not told anyone yet"
        "Hva er en aktivitetsplan?",      # a question inside the flow
        "2",                              # 👍 (after the answer's own button: 1 is still "continue")
        "1",                              # continue where I was
        "/slett",
    ]) + "\n"
    code, out = chat(settings, dialog, script)
    assert code == 0
    assert out.startswith(t("greeting"))
    assert f"  1) {t('role.parent')}" in out
    assert flow.steps["hvor"].text["nb"].split("\n")[0] in out and flow.steps["snakk"].text["nb"] in out
    assert out.count(flow.steps["snakk"].text["nb"]) == 2  # shown, then shown again on resume
    assert t("console.sources") in out
    assert t("vote_thanks") in out and t("forgotten") in out
    assert dialog.store.report()["documents"][0]["up"] == 1
    assert dialog.store.get_user(USER_ID) is None


def test_citations_render_as_numbered_lines():
    citation = Citation(n=2, passage_id="k#1", document="Kapittel 12 forklart",
                        section="Kapittel 12 forklart › § 12-4 Aktivitetsplikt", refs=("§ 12-4", "§ 12-5"),
                        url="https://example.org/k12", updated="2026-01-01", text="…")
    assert format_citation(citation) == (
        "[2] Kapittel 12 forklart › § 12-4 Aktivitetsplikt (§ 12-5) https://example.org/k12"
    )
    named = Citation(n=3, passage_id="r#2", document="Rutiner", section="Rutiner › Gripe inn (§ 12-4)",
                     refs=("§ 12-4", "§ 10-2", "§ 12-1"), url=None, updated=None, text="…")
    # The heading's own tag goes; the refs are said once.
    assert format_citation(named) == "[3] Rutiner › Gripe inn (§ 12-4, § 10-2, § 12-1)"
    bare = Citation(n=1, passage_id="v#0", document="Vefsn", section="Innledning § 12-10", refs=("§ 12-1",), url=None,
                    updated=None, text="…")
    assert format_citation(bare) == "[1] Vefsn › Innledning § 12-10 (§ 12-1)"


def test_every_command_works_with_a_slash_including_the_ring_in_sprak(settings, make_dialog):
    script = "/hjelp\n/rolle\n/kilder\n/personvern\n/språk\n2\n/sprak\n3\n/start\n"
    code, out = chat(settings, make_dialog(), script)
    assert code == 0
    assert t("help").splitlines()[0] in out
    assert t("ask_role") in out and t("sources_header") in out
    assert t("privacy", days=settings.state_retention_days).splitlines()[0] in out
    assert t("language_set", "nn", language="Nynorsk") in out
    assert t("language_set", "en", language="English") in out
    assert out.rstrip().endswith(t("console.choose", "en"))  # labels follow the chosen language


def test_numbers_out_of_range_and_blank_lines_are_calm(settings, make_dialog):
    code, out = chat(settings, make_dialog(), "\n\n99\n0\n   \n")
    assert code == 0
    assert t("console.no_option", number="99") in out and t("console.no_option", number="0") in out
    assert t("empty") not in out  # blank lines are skipped, not sent


def test_state_survives_a_restart_of_the_chat(settings, make_dialog):
    chat(settings, make_dialog(), "4\n/meld\n1\n")  # new teacher, one step into the course
    code, out = chat(settings, make_dialog(), "1\n")  # menu after /start: 1) continue where you were
    steps = FLOWS["nyutdannet"].steps
    assert code == 0 and steps["fysisk"].text["nb"].split("\n")[0] in out


def test_a_bug_in_the_core_is_logged_and_the_chat_goes_on(settings, make_dialog, caplog):
    dialog = make_dialog()

    def broken(user_id, text):
        raise RuntimeError("boom")

    dialog.handle_text = broken
    code, out = chat(settings, dialog, "hei\n/hjelp\n")
    assert code == 0 and t("error") in out and t("help").splitlines()[0] in out
    assert "the chat failed" in caplog.text and "hei" not in caplog.text


def test_without_an_index_the_chat_says_how_to_fix_it(settings):
    out = io.StringIO()
    code = run_chat(settings, None, stdin=io.StringIO("hei\n"), stdout=out)
    assert code == 1
    assert "kap12 index" in out.getvalue()


def test_an_english_answer_in_a_bokmal_session_is_labelled_in_english(settings, make_dialog):
    code, out = chat(settings, make_dialog(), "1\nWhat is an aktivitetsplan?\n")
    assert code == 0
    answer = out.split("What is an aktivitetsplan?", 1)[1]
    assert t("console.sources", "en") in answer and t("console.vote_prompt", "en") in answer
    assert t("button.vote_up", "en") in answer and t("console.sources") not in answer
    # "Was this answer useful?" heads the votes, not the answer's other buttons (menu, see also …)
    prompt, first_option = answer.index(t("console.vote_prompt", "en")), answer.index("  1) ")
    assert first_option < prompt < answer.index(t("button.vote_up", "en"))
