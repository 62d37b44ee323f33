"""The conversation core, driven through the real flows and catalogue with a fake answerer."""

from __future__ import annotations

import sqlite3
from collections import deque
from pathlib import Path

import pytest
from fakes import KNOWLEDGE, FakeAnswerer

from bot.config import load_settings
from bot.dialog import MAX_DATA_BYTES, MAX_QUESTION_CHARS, Dialog
from bot.flows import Flow, load_flows
from bot.i18n import LANGUAGES, Catalog
from bot.replies import Reply
from bot.store import SqliteStore

FLOWS = load_flows(KNOWLEDGE / "flows")
CATALOG = Catalog.load(KNOWLEDGE / "ui")
ROLE_FOR_FLOW = {flow_id: flow.roles[0] for flow_id, flow in FLOWS.items()}
CODE = "rosa-elefant-42"
USER, OTHER = "tg:1", "tg:2"


def t(key: str, lang: str = "nb", **fmt) -> str:
    return CATALOG.get(f"dialog.{key}", lang, **fmt)


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "data" / "state.sqlite3"


@pytest.fixture
def answerer() -> FakeAnswerer:
    return FakeAnswerer()


@pytest.fixture
def make(db_path, answerer):
    """make(**options) → a Dialog over the real flows; each call opens a fresh store on the same file."""

    def build(*, proof: bool = False, code: str | None = CODE, flows: dict | None = None, retention: int = 90,
              fake: FakeAnswerer | None = None) -> Dialog:
        settings = load_settings(data_dir=db_path.parent, staff_invite_code=code, state_retention_days=retention)
        return Dialog(settings, fake or answerer, FLOWS if flows is None else flows, CATALOG,
                      SqliteStore(db_path), require_staff_proof=proof)

    return build


@pytest.fixture
def dialog(make) -> Dialog:
    return make()


def one(replies: list[Reply]) -> Reply:
    assert len(replies) == 1, [r.text for r in replies]
    return replies[0]


def data_for(reply: Reply, label: str) -> str:
    for row in reply.buttons:
        for button in row:
            if button.label == label:
                return button.data
    raise AssertionError(f"no button {label!r} in {[[b.label for b in row] for row in reply.buttons]}")


def all_data(reply: Reply) -> list[str]:
    return [button.data for row in reply.buttons for button in row]


def position(dialog: Dialog, user_id: str = USER) -> tuple:
    state = dialog.store.get_user(user_id)
    return (state.flow_id, state.step_id) if state else (None, None)


def path_to_end(flow: Flow) -> list[int]:
    """Button indexes from the start to the nearest step without a `next` button (breadth first)."""
    todo = deque([(flow.start, [])])
    seen = set()
    while todo:
        step_id, presses = todo.popleft()
        step = flow.steps[step_id]
        if not any(b.next for b in step.buttons):
            return presses
        seen.add(step_id)
        for index, button in enumerate(step.buttons):
            if button.next and button.next not in seen:
                todo.append((button.next, presses + [index]))
    raise AssertionError(f"{flow.id} has no end")


def choose(dialog: Dialog, role: str, lang: str = "nb", user_id: str = USER) -> None:
    dialog.handle_button(user_id, f"l|{lang}")
    dialog.handle_button(user_id, f"r|{role}")


def start_flow(dialog: Dialog, flow_id: str, user_id: str = USER) -> Reply:
    return one(dialog.handle_button(user_id, f"f|{flow_id}"))


# -- start, roles, languages ----------------------------------------------------------------------------------
def test_start_greets_states_the_limits_and_asks_for_a_role_without_storing_anything(dialog):
    reply = one(dialog.handle_command(USER, "start"))
    assert t("greeting") in reply.text and t("limits") in reply.text and "112" in reply.text
    assert all_data(reply) == ["r|parent", "r|pupil", "r|staff", "r|new_teacher"]
    assert dialog.store.export_user(USER) == {}  # a visitor who only says hello leaves nothing behind


@pytest.mark.parametrize("lang", LANGUAGES)
def test_role_choice_is_remembered_and_the_menu_offers_that_roles_flows(dialog, lang):
    dialog.handle_button(USER, f"l|{lang}")
    reply = one(dialog.handle_button(USER, "r|staff"))
    assert t("role_set", lang, role=t("role.staff", lang)) in reply.text
    offered = [d.split("|")[1] for d in all_data(reply) if d.startswith("f|")]
    assert offered[0] == "ansatt-melde"  # the role's main walkthrough first
    assert set(offered) == {f.id for f in FLOWS.values() if "staff" in f.roles}
    assert dialog.store.get_user(USER).role == "staff"


@pytest.mark.parametrize("role, flow_id", [("parent", "forelder-utrygg"), ("staff", "ansatt-melde"),
                                           ("new_teacher", "nyutdannet")])
def test_meld_starts_the_walkthrough_for_the_role(dialog, role, flow_id):
    dialog.handle_button(USER, f"r|{role}")
    reply = one(dialog.handle_command(USER, "meld"))
    assert reply.kind == "flow_step"
    assert reply.text.startswith(FLOWS[flow_id].title["nb"])
    assert position(dialog) == (flow_id, FLOWS[flow_id].start)


def test_meld_before_choosing_a_role_asks_for_the_role_instead_of_guessing(dialog):
    reply = one(dialog.handle_command(USER, "/meld"))
    assert position(dialog) == (None, None)
    assert {"r|parent", "r|pupil", "r|staff", "r|new_teacher"} <= set(all_data(reply))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_switching_language_first_still_asks_for_the_role(dialog, lang):
    reply = one(dialog.handle_button(USER, f"l|{lang}"))
    assert {"r|parent", "r|pupil", "r|staff", "r|new_teacher"} <= set(all_data(reply))
    assert dialog.catalog.get("dialog.ask_role", lang) in reply.text


def test_deep_link_opens_a_flow_the_role_may_see(dialog):
    greeting, step = dialog.handle_command(USER, "start", "statsforvalteren")
    assert "112" in greeting.text
    assert step.kind == "flow_step" and position(dialog) == ("statsforvalteren", FLOWS["statsforvalteren"].start)


@pytest.mark.parametrize("payload", ["rektor-sak", "no-such-flow", "../../etc/passwd", "x" * 300])
def test_deep_link_to_a_staff_flow_or_junk_just_greets(dialog, payload):
    reply = one(dialog.handle_command(USER, "start", payload))
    assert all_data(reply) == ["r|parent", "r|pupil", "r|staff", "r|new_teacher"]
    assert position(dialog) == (None, None)


def test_sprak_offers_three_languages_and_the_alias_with_a_ring_works(dialog):
    reply = one(dialog.handle_command(USER, "språk"))
    assert all_data(reply) == ["l|nb", "l|nn", "l|en"]
    assert [b.label for row in reply.buttons for b in row] == ["Bokmål", "Nynorsk", "English"]
    reply = one(dialog.handle_button(USER, "l|en"))
    assert reply.text.startswith("Language: English.")
    assert dialog.language(USER) == "en"


# Walking every flow, button by button in every language, is tests/test_walkthrough.py's job.


# Steps whose § refs their passages do not carry yet (content to fix in knowledge/flows or the documents).
@pytest.mark.parametrize(
    "flow_id, step_id", [(f.id, s.id) for f in FLOWS.values() for s in f.steps.values() if s.refs]
)
def test_each_step_shows_its_refs_as_citations(make, answerer, flow_id, step_id):
    """The § refs a step rests on appear in its citations, for the role the step is written for."""
    dialog = make()
    role = ROLE_FOR_FLOW[flow_id]
    choose(dialog, role)
    start_flow(dialog, flow_id)
    with sqlite3.connect(dialog.store.path) as db:  # jump straight to the step, as a restart would
        db.execute("UPDATE users SET step_id = ? WHERE user_id = ?", (step_id, USER))
    reply = one(dialog.handle_button(USER, f"c|{flow_id}|{step_id}"))
    shown = {ref for c in reply.citations for ref in c.refs}
    step = FLOWS[flow_id].steps[step_id]
    assert set(step.refs) <= shown, f"{flow_id}/{step_id}: {sorted(set(step.refs) - shown)} not in the citations"


def test_step_citations_carry_the_refs_of_the_step(make, tmp_path):
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    (flows_dir / "mini.yaml").write_text(
        """
id: mini
roles: [parent]
title: {nb: "Mini", nn: "Mini", en: "Mini"}
summary: {nb: "Kort", nn: "Kort", en: "Short"}
start: en
steps:
  - id: en
    text: {nb: "Steg en", nn: "Steg ein", en: "Step one"}
    refs: ["§ 12-4", "§ 12-6"]
    passages: ["kapittel-12-forklart#Skriftlig plan", "kapittel-12-forklart#§ 12-6", "ukjent-dokument#Noe"]
    advice: {nb: "Skriv ned alt.", nn: "Skriv ned alt.", en: "Write it all down."}
    buttons:
      - label: {nb: "Neste", nn: "Neste", en: "Next"}
        next: to
  - id: to
    text: {nb: "Steg to", nn: "Steg to", en: "Step two"}
    refs: ["§ 12-4"]
""",
        encoding="utf-8",
    )
    dialog = make(flows=load_flows(flows_dir))
    reply = start_flow(dialog, "mini")
    assert reply.text == "Mini\n\nSteg en\n\nRåd: Skriv ned alt."
    assert [c.n for c in reply.citations] == [1, 2]  # the unknown document's key resolves to nothing
    assert "§ 12-4" in reply.citations[0].refs and "Skriftlig plan" in reply.citations[0].section
    assert "§ 12-6" in reply.citations[1].refs
    assert all_data(reply)[0] == "s|mini|en|0" and all_data(reply)[-2:] == ["a", "k|meny"]
    reply = one(dialog.handle_button(USER, "s|mini|en|0"))
    assert reply.citations == [] and reply.text.startswith("Steg to")
    assert dialog.catalog.get("flow.end", "nb", title="Mini") in reply.text


# -- questions inside and outside flows -------------------------------------------------------------------------
def test_leave_a_flow_with_a_question_and_resume_at_the_same_step(dialog, answerer):
    choose(dialog, "parent")
    start_flow(dialog, "forelder-utrygg")
    one(dialog.handle_button(USER, "s|forelder-utrygg|hvor|0"))
    assert position(dialog) == ("forelder-utrygg", "snakk")

    prompt = one(dialog.handle_button(USER, "a"))
    assert prompt.text == t("ask_prompt")
    answer = one(dialog.handle_text(USER, "Hva skal stå i en aktivitetsplan?"))
    assert answer.kind == "answer" and answer.feedback_id
    assert answer.citations and "§ 12-4" in answer.citations[0].refs
    assert answerer.asked[-1] == ("Hva skal stå i en aktivitetsplan?", "parent", "nb")
    resume = data_for(answer, t("button.resume"))
    assert resume == "c|forelder-utrygg|snakk"

    refusal = one(dialog.handle_text(USER, "Når er det høstferie?"))
    assert refusal.kind == "refusal" and refusal.citations == [] and refusal.feedback_id is None
    assert data_for(refusal, t("button.resume")) == resume
    assert position(dialog) == ("forelder-utrygg", "snakk")  # questions never move the user

    step = one(dialog.handle_button(USER, resume))
    assert step.kind == "flow_step" and FLOWS["forelder-utrygg"].steps["snakk"].text["nb"] in step.text


def test_typing_a_visible_button_label_presses_it(dialog, answerer):
    choose(dialog, "parent")
    start_flow(dialog, "forelder-utrygg")
    label = FLOWS["forelder-utrygg"].steps["hvor"].buttons[0].label["nb"]
    reply = one(dialog.handle_text(USER, f"  {label.upper()}  "))
    assert reply.kind == "flow_step" and position(dialog) == ("forelder-utrygg", "snakk")
    menu = one(dialog.handle_text(USER, t("button.menu").lower()))
    assert menu.kind == "menu" and data_for(menu, t("button.resume")) == "c|forelder-utrygg|snakk"
    assert answerer.asked == []  # none of it went to the answerer as a question


def test_question_only_text_never_presses_a_button(dialog, answerer):
    choose(dialog, "parent")
    start_flow(dialog, "forelder-utrygg")
    label = FLOWS["forelder-utrygg"].steps["hvor"].buttons[0].label["nb"]
    reply = one(dialog.handle_text(USER, label, question_only=True))
    assert reply.kind in ("answer", "refusal") and answerer.asked[-1][0] == label
    assert position(dialog) == ("forelder-utrygg", "hvor")


def test_an_answer_that_suggests_a_flow_offers_to_start_it(dialog):
    choose(dialog, "parent")
    answer = one(dialog.handle_text(USER, "Hvordan klager jeg til statsforvalteren?"))
    data = data_for(answer, t("button.start_flow", title=FLOWS["statsforvalteren"].title["nb"]))
    assert data == "f|statsforvalteren"
    assert data_for(answer, t("button.menu")) == "k|meny"  # not in a flow: no resume, the menu instead
    one(dialog.handle_button(USER, data))
    assert position(dialog) == ("statsforvalteren", "vilkar")


def test_a_suggested_flow_for_another_role_is_not_offered(make):
    fake = FakeAnswerer()
    dialog = make(fake=fake)
    choose(dialog, "staff")
    answer = one(dialog.handle_text(USER, "mobbing i klassen"))  # the fake suggests the parents' flow
    assert not any(d.startswith("f|") for d in all_data(answer))


def test_a_question_without_text_or_with_control_characters(dialog, answerer):
    for empty in ("", "   ", "\n\t\n", "\x00\x07\x1b", None):
        reply = one(dialog.handle_text(USER, empty))
        assert reply.text.startswith(t("empty")) and reply.kind == "menu"
    assert answerer.asked == []
    reply = one(dialog.handle_text(USER, "aktivitets\x00plan\x1b?\ud800"))
    assert reply.kind == "answer" and answerer.asked[-1][0] == "aktivitetsplan?"


def test_a_very_long_question_is_answered_politely_from_its_beginning(dialog, answerer):
    text = "Hva er en aktivitetsplan? " + "bla " * 5000
    notice, answer = dialog.handle_text(USER, text)
    assert notice.text == t("too_long", limit=MAX_QUESTION_CHARS)
    assert answer.kind == "answer"
    assert len(answerer.asked[-1][0]) == MAX_QUESTION_CHARS


def test_answerer_failure_is_a_calm_reply(make):
    class Broken(FakeAnswerer):
        def ask(self, question, role="parent", lang="nb"):
            raise RuntimeError("index gone")

        def citations_for_keys(self, keys, role):
            raise RuntimeError("index gone")

        def sources(self):
            raise RuntimeError("index gone")

    dialog = make(fake=Broken())
    assert one(dialog.handle_text(USER, "aktivitetsplan")).text.startswith(t("error"))
    assert one(dialog.handle_command(USER, "kilder")).kind == "error"
    step = start_flow(dialog, "forelder-utrygg")  # the walkthrough still works, just without citations
    assert step.kind == "flow_step" and step.citations == []


# -- switching role and language mid-conversation ------------------------------------------------------------
def test_switching_language_mid_flow_shows_the_same_step_in_the_new_language(dialog):
    choose(dialog, "parent")
    start_flow(dialog, "forelder-utrygg")
    dialog.handle_button(USER, "s|forelder-utrygg|hvor|0")
    notice, step = dialog.handle_button(USER, "l|nn")
    assert notice.text == t("language_set", "nn", language="Nynorsk")
    steps = FLOWS["forelder-utrygg"].steps
    assert steps["snakk"].text["nn"] in step.text
    assert data_for(step, steps["snakk"].buttons[0].label["nn"]) == "s|forelder-utrygg|snakk|0"
    assert data_for(step, t("button.ask", "nn")) == "a"
    nxt = one(dialog.handle_button(USER, "s|forelder-utrygg|snakk|0"))
    assert steps["si-fra"].text["nn"] in nxt.text
    dialog.handle_button(USER, "l|en")
    assert one(dialog.handle_text(USER, "aktivitetsplan")).kind == "answer"
    assert dialog.store.get_user(USER).language == "en"


def test_switching_to_a_role_the_flow_is_not_for_leaves_the_flow(dialog):
    choose(dialog, "parent")
    start_flow(dialog, "forelder-utrygg")
    reply = one(dialog.handle_button(USER, "r|staff"))
    assert position(dialog) == (None, None)
    assert "c|" not in " ".join(all_data(reply)) and "f|ansatt-melde" in all_data(reply)
    assert one(dialog.handle_button(USER, "s|forelder-utrygg|hvor|0")).text.startswith(t("expired"))


def test_switching_to_a_role_the_flow_is_also_for_keeps_the_position(dialog, answerer):
    choose(dialog, "staff")
    start_flow(dialog, "ansatt-melde")
    dialog.handle_button(USER, "s|ansatt-melde|folg-med|0")
    reply = one(dialog.handle_button(USER, "r|new_teacher"))
    assert data_for(reply, t("button.resume")) == "c|ansatt-melde|gripe-inn"
    dialog.handle_text(USER, "kollega")
    assert answerer.asked[-1][1] == "new_teacher"


def test_a_flow_for_another_role_cannot_be_started_by_button(dialog):
    choose(dialog, "parent")
    reply = one(dialog.handle_button(USER, "f|rektor-sak"))
    assert reply.text.startswith(t("flow_not_for_role")) and position(dialog) == (None, None)


def test_without_a_role_the_public_walkthroughs_open_but_not_the_staff_ones(dialog):
    assert one(dialog.handle_button(USER, "f|elev-utrygg")).kind == "flow_step"
    reply = one(dialog.handle_button("someone", "f|rektor-sak"))
    assert reply.text.startswith(t("flow_not_for_role")) and dialog.store.get_user("someone") is None


# -- staff proof ----------------------------------------------------------------------------------------------
def test_unproven_staff_get_public_content_only(make, answerer):
    dialog = make(proof=True)
    dialog.handle_button(USER, "r|staff")
    dialog.handle_button(USER, "k|meny")  # goes on without the code
    reply = one(dialog.handle_text(USER, "Hva gjør jeg hvis en kollega krenker en elev?"))
    assert answerer.asked[-1][1] == "parent" and reply.kind == "refusal"
    assert dialog.role_for_retrieval(USER) == "parent"
    start_flow(dialog, "ansatt-melde")  # the walkthrough is open to a claimed role …
    assert answerer.key_calls[-1][1] == "parent"  # … but its passages are the public ones


def test_the_invite_code_verifies_and_is_never_stored(make, answerer, db_path):
    dialog = make(proof=True)
    reply = one(dialog.handle_button(USER, "r|new_teacher"))
    assert t("staff_code_prompt") in reply.text
    wrong = one(dialog.handle_text(USER, "feil-kode"))
    assert wrong.text == t("staff_code_wrong") and answerer.asked == []  # a wrong code is not a question
    right = one(dialog.handle_text(USER, f"  {CODE} "))
    assert right.text.startswith(t("staff_verified"))
    assert dialog.store.get_user(USER).staff_verified is True
    dialog.handle_text(USER, "kollega")
    assert answerer.asked[-1][1] == "new_teacher"
    assert CODE.encode() not in db_path.read_bytes()


def test_typing_the_code_when_not_asked_for_is_just_a_question(make, answerer):
    dialog = make(proof=True)
    dialog.handle_button(USER, "r|staff")
    dialog.handle_command(USER, "hjelp")  # moved on: no longer waiting for the code
    dialog.handle_text(USER, CODE)
    assert answerer.asked[-1] == (CODE, "parent", "nb")
    assert dialog.store.get_user(USER).staff_verified is False


def test_too_many_wrong_codes_stop_the_guessing(make):
    dialog = make(proof=True)
    dialog.handle_button(USER, "r|staff")
    for _ in range(4):
        assert one(dialog.handle_text(USER, "gjett")).text == t("staff_code_wrong")
    assert one(dialog.handle_text(USER, "gjett")).text.startswith(t("staff_code_locked"))
    reply = one(dialog.handle_button(USER, "r|staff"))  # asking again does not reopen it
    assert t("staff_proof_unavailable") in reply.text
    dialog.handle_text(USER, CODE)
    assert dialog.store.get_user(USER).staff_verified is False


def test_without_an_invite_code_only_the_allow_list_proves_staff(make, answerer):
    dialog = make(proof=True, code=None)
    reply = one(dialog.handle_button(USER, "r|staff"))
    assert t("staff_proof_unavailable") in reply.text
    dialog.prove_staff(USER)
    dialog.handle_text(USER, "kollega")
    assert answerer.asked[-1][1] == "staff"


def test_no_proof_needed_in_the_terminal(dialog, answerer):
    dialog.handle_button(USER, "r|staff")
    dialog.handle_text(USER, "kollega")
    assert answerer.asked[-1][1] == "staff"


# -- store: restart, forget, privacy -----------------------------------------------------------------------------
def test_a_restart_in_the_middle_of_a_flow_resumes_at_the_same_step(make):
    before = make()
    choose(before, "staff", "nn")
    start_flow(before, "rektor-sak")
    step_reply = one(before.handle_button(USER, "s|rektor-sak|motta|0"))
    pending = all_data(step_reply)[0]
    before.store.close()

    after = make()  # new Dialog, new SqliteStore, same file
    assert position(after) == ("rektor-sak", "vurder")
    reply = one(after.handle_button(USER, pending))  # the button sent before the restart still works
    assert FLOWS["rektor-sak"].steps["undersok"].text["nn"] in reply.text
    menu = one(after.handle_command(USER, "start"))
    assert data_for(menu, t("button.resume", "nn")) == "c|rektor-sak|undersok"


def test_forget_removes_everything_about_the_user_and_nothing_else(dialog):
    choose(dialog, "parent", user_id=USER)
    start_flow(dialog, "forelder-utrygg", user_id=USER)
    choose(dialog, "staff", "en", user_id=OTHER)
    start_flow(dialog, "ansatt-melde", user_id=OTHER)
    answer = one(dialog.handle_text(USER, "aktivitetsplan"))

    reply = one(dialog.handle_command(USER, "slett"))
    assert reply.text == t("forgotten")
    assert dialog.store.export_user(USER) == {}
    assert dialog.vote(USER, answer.feedback_id, True)[0].text == t("vote_expired")
    assert dialog.store.export_user(OTHER)["step_id"] == "folg-med"
    assert one(dialog.handle_command(USER, "slett")).text == t("forgotten_nothing")
    privacy = one(dialog.handle_command(USER, "personvern"))
    assert t("privacy_nothing") in privacy.text
    assert dialog.store.export_user(USER) == {}  # looking at the privacy page stores nothing


def test_personvern_says_what_is_stored_why_and_for_how_long(make):
    dialog = make(retention=30)
    choose(dialog, "parent")
    start_flow(dialog, "statsforvalteren")
    reply = one(dialog.handle_command(USER, "personvern"))
    assert t("privacy", days=30) in reply.text and "30" in reply.text
    assert t("privacy_item.role", role=t("role.parent")) in reply.text
    assert "Melde saken" in reply.text or FLOWS["statsforvalteren"].title["nb"] in reply.text


def test_message_text_is_never_stored(dialog, db_path):
    choose(dialog, "parent")
    start_flow(dialog, "forelder-utrygg")
    secret = "Sofie-i-4B-blir-plaget-aktivitetsplan"
    answer = one(dialog.handle_text(USER, secret))
    dialog.vote(USER, answer.feedback_id, up=False)
    dialog.handle_text(USER, "zebrafiskens hemmelighet")
    dialog.store.close()
    content = db_path.read_bytes()
    assert b"Sofie" not in content and b"zebrafisk" not in content


def test_idle_users_are_purged_when_the_core_starts_working(make, db_path):
    first = make()
    choose(first, "parent", user_id=OTHER)
    first.store.close()
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE users SET updated_at = '2001-01-01T00:00:00Z'")
    second = make()
    second.handle_command(USER, "hjelp")
    assert second.store.get_user(OTHER) is None


# -- feedback ------------------------------------------------------------------------------------------------
def test_votes_store_the_cited_passages_once_and_only_for_the_asker(dialog):
    answer = one(dialog.handle_text(USER, "aktivitetsplan"))
    assert one(dialog.vote(OTHER, answer.feedback_id, True)).text == t("vote_expired")
    assert one(dialog.vote(USER, answer.feedback_id, False)).text == t("vote_thanks")
    assert one(dialog.vote(USER, answer.feedback_id, True)).text == t("vote_already")
    assert one(dialog.vote(USER, "nope", True)).text == t("vote_expired")
    report = dialog.store.report()
    assert report["documents"] == [{"document": "Kapittel 12 forklart", "up": 0, "down": 1}]
    assert report["questions"] == {"answered": 1, "refused": 0, "refused_share": 0.0}
    second = one(dialog.handle_text(USER, "mobbing"))
    assert one(dialog.handle_button(USER, f"v|+|{second.feedback_id}")).text == t("vote_thanks")


def test_refused_questions_are_counted(dialog):
    dialog.handle_text(USER, "Når er vinterferien?")
    dialog.handle_text(USER, "aktivitetsplan")
    assert dialog.store.report()["questions"]["refused_share"] == 0.5


# -- bad buttons and input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        "", "x", "s", "s|", "s|||", "s|nope|hvor|0", "s|forelder-utrygg|nope|0", "s|forelder-utrygg|hvor|9",
        "s|forelder-utrygg|hvor|-1", "s|forelder-utrygg|hvor|²", "s|forelder-utrygg|hvor|0|extra",
        "s|forelder-utrygg|snakk|0", "s|statsforvalteren|vilkar|0", "c|forelder-utrygg|plan", "f|nope",
        "r|admin", "l|de", "k|slett", "k|drop", "v|*|abc", "v|+|", "a|b", "q|x", "ø" * 40, "f|" + "x" * 70,
        "\x00", "s|forelder-utrygg|hvor|0\n",
    ],
)
def test_unknown_stale_or_forged_buttons_get_a_calm_reply_and_the_menu(dialog, db_path, data):
    choose(dialog, "parent", user_id=OTHER)
    start_flow(dialog, "statsforvalteren", user_id=OTHER)
    choose(dialog, "parent")
    start_flow(dialog, "forelder-utrygg")
    reply = one(dialog.handle_button(USER, data))
    if data == "v|+|":
        assert reply.text == t("vote_expired")
    else:
        assert reply.kind == "menu" and reply.text.startswith(t("expired"))
        assert data_for(reply, t("button.resume")) == "c|forelder-utrygg|hvor"
    assert position(dialog) == ("forelder-utrygg", "hvor")
    assert position(dialog, OTHER) == ("statsforvalteren", "vilkar")


def test_a_button_from_an_earlier_step_is_stale(dialog):
    choose(dialog, "parent")
    first = start_flow(dialog, "forelder-utrygg")
    dialog.handle_button(USER, all_data(first)[0])
    again = one(dialog.handle_button(USER, all_data(first)[0]))  # pressed twice
    assert again.text.startswith(t("expired"))
    assert position(dialog) == ("forelder-utrygg", "snakk")


def test_non_string_button_data_is_calm(dialog):
    assert one(dialog.handle_button(USER, None)).text.startswith(t("expired"))
    assert one(dialog.handle_button(USER, 12345)).text.startswith(t("expired"))


def test_unknown_commands_are_calm(dialog):
    for command in ("frobnicate", "", "/", "start@other_bot_nope", "DROP TABLE"):
        reply = dialog.handle_command(USER, command)
        assert reply and all(isinstance(r, Reply) for r in reply)
    assert one(dialog.handle_command(USER, "frobnicate")).text.startswith(t("unknown_command"))
    assert one(dialog.handle_command(USER, "/HJELP")).text.startswith(t("help"))


def test_a_corrupt_state_row_is_answered_calmly_and_other_rows_survive(make, db_path):
    dialog = make()
    choose(dialog, "staff", user_id=OTHER)
    start_flow(dialog, "kollega-krenker", user_id=OTHER)
    choose(dialog, "parent")
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE users SET role = ?, language = ?, flow_id = ?, step_id = NULL WHERE user_id = ?",
                   (b"\xde\xad\xbe\xef", "??", "x" * 500, USER))
    for call in (lambda: dialog.handle_text(USER, "aktivitetsplan"),
                 lambda: dialog.handle_button(USER, "s|forelder-utrygg|hvor|0"),
                 lambda: dialog.handle_command(USER, "start")):
        replies = call()
        assert replies and all(isinstance(r, Reply) for r in replies)
    assert position(dialog, OTHER) == ("kollega-krenker", "hva-gjelder")
    assert dialog.store.get_user(USER) is not None  # repaired by the next save, as a fresh user


def test_a_stored_position_in_a_removed_step_falls_back_to_the_menu(make, db_path):
    dialog = make()
    choose(dialog, "parent")
    start_flow(dialog, "forelder-utrygg")
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE users SET step_id = 'removed-step' WHERE user_id = ?", (USER,))
    reply = one(make().handle_command(USER, "start"))
    assert reply.kind == "menu" and not any(d.startswith("c|") for d in all_data(reply))


def test_every_button_the_core_builds_fits_telegram(dialog):
    for role in ("parent", "staff", "new_teacher"):
        dialog.handle_button(USER, f"r|{role}")
        for reply in dialog.handle_command(USER, "meny") + dialog.handle_command(USER, "start", "x"):
            assert all(len(d.encode()) <= MAX_DATA_BYTES for d in all_data(reply))


def test_a_catalogue_without_the_core_keys_is_refused_at_start(db_path, answerer):
    with pytest.raises(ValueError, match="dialog.greeting"):
        Dialog(load_settings(), answerer, FLOWS, Catalog({"nb": {}}), SqliteStore(db_path))


def test_kilder_lists_the_sources_and_marks_staff_documents(dialog, answerer):
    reply = one(dialog.handle_command(USER, "kilder"))
    assert reply.text.startswith(t("sources_header"))
    docs = answerer.documents
    law = docs["kapittel-12-forklart"]
    assert f"{law['title']} (lovveiledning, oppdatert {law['updated']})" in reply.text
    staff = docs["rutiner-for-ansatte"]
    assert f"{staff['title']} (rutine, oppdatert {staff['updated']}) {t('sources_staff')}" in reply.text
    vefsn = docs["vefsn-orientering-psykososialt-skolemiljo"]
    assert f"{vefsn['title']} (kommunalt dokument, oppdatert –)" in reply.text  # no date claimed
    assert all(doc["title"] in reply.text for doc in docs.values())


# -- acknowledging the person --------------------------------------------------------------------------------
def test_a_worried_story_is_acknowledged_in_one_sentence_before_the_advice(dialog):
    choose(dialog, "parent")
    story = ("Datteren min gråter hver morgen før skolen og det har gått tre uker siden vi sa fra, "
             "og ingenting har skjedd. Hva skal stå i en aktivitetsplan?")
    reply = one(dialog.handle_text(USER, story))
    assert reply.kind == "answer"
    assert reply.text.startswith(dialog.catalog.get("chat.acknowledge", "nb") + "\n\n")
    plain = one(dialog.handle_text(USER, "Hva skal stå i en aktivitetsplan?"))
    assert not plain.text.startswith(dialog.catalog.get("chat.acknowledge", "nb"))
