"""The walkthrough runner through the dialog core: every branch of every flow in nb, nn and en, back links,
typed navigation, command buttons, the quiz score, the sources screen, and stale or forged presses."""

from __future__ import annotations

import io

import pytest
from fakes import KNOWLEDGE, FakeAnswerer

from bot import contacts, drafts
from bot.config import load_settings
from bot.console import ConsoleChat
from bot.dialog import Dialog
from bot.flows import LANGS, MAX_STEP_CHARS, Flow, FlowStep, load_flows, passage_alternatives
from bot.i18n import Catalog
from bot.replies import Reply
from bot.store import SqliteStore
from bot.telegram_render import Labels, render_reply
from bot.walkthrough import needs_danger_button, pick
from botapi_emulator import check_reply_markup, parse_html

CATALOG = Catalog.load(KNOWLEDGE / "ui")
FLOWS = load_flows(KNOWLEDGE / "flows")
USER = "walker"


def t(key: str, lang: str = "nb", **fmt) -> str:
    return CATALOG.get(key, lang, **fmt)


@pytest.fixture(scope="module")
def answerer() -> FakeAnswerer:
    return FakeAnswerer()


def quick_store(path) -> SqliteStore:
    """The real store without waiting for the disk on every write (these tests make thousands of them)."""
    store = SqliteStore(path)
    db = store._conn()
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA journal_mode = MEMORY")
    return store


@pytest.fixture
def make(tmp_path, answerer):
    """A core wired like build_dialog (drafts, notes and contacts registered), state in a temp folder."""
    settings = load_settings(data_dir=tmp_path / "data", knowledge_dir=KNOWLEDGE)

    def build() -> Dialog:
        answerer.key_calls.clear()
        dialog = Dialog(settings, answerer, FLOWS, CATALOG, quick_store(tmp_path / "state.sqlite3"))
        drafts.register(dialog, KNOWLEDGE)
        contacts.register(dialog, KNOWLEDGE, settings)
        return dialog

    return build


def one(replies: list[Reply]) -> Reply:
    assert len(replies) == 1, [r.text for r in replies]
    return replies[0]


def labels(reply: Reply) -> list[str]:
    return [button.label for row in reply.buttons for button in row]


def data(reply: Reply) -> list[str]:
    return [button.data for row in reply.buttons for button in row]


def begin(dialog: Dialog, flow: Flow, lang: str, user: str = USER) -> Reply:
    """Choose the flow's first role and the language, then start the flow by its button."""
    dialog.handle_button(user, f"r|{flow.roles[0]}")
    dialog.handle_button(user, f"l|{lang}")
    return one(dialog.handle_button(user, f"f|{flow.id}"))


def paths_to_steps(flow: Flow) -> dict[str, list[int]]:
    """For every step, the button indexes that lead to it from the start (shortest)."""
    paths, todo = {flow.start: []}, [flow.start]
    while todo:
        step_id = todo.pop(0)
        for i, button in enumerate(flow.steps[step_id].buttons):
            if button.next and button.next not in paths:
                paths[button.next] = paths[step_id] + [i]
                todo.append(button.next)
    return paths


def walk_to(dialog: Dialog, flow: Flow, step_id: str, lang: str, user: str = USER) -> Reply:
    reply = begin(dialog, flow, lang, user)
    current = flow.start
    for index in paths_to_steps(flow)[step_id]:
        reply = one(dialog.handle_button(user, f"s|{flow.id}|{current}|{index}"))
        current = flow.steps[current].buttons[index].next
    assert current == step_id
    return reply


def check_step(reply: Reply, flow: Flow, step: FlowStep, lang: str, answerer: FakeAnswerer) -> None:
    """What every step screen must show: its texts, the fixed frame of buttons, and its sources."""
    assert reply.kind == "flow_step"
    assert pick(step.text, lang) in reply.text
    if step.advice:
        assert f"{t('dialog.advice_label', lang)} {pick(step.advice, lang)}" in reply.text
    end = t("flow.end", lang, title=pick(flow.title, lang))
    assert (end in reply.text) == step.is_end
    own = [pick(b.label, lang) for b in step.buttons]
    nav = ([t("flow.button.back", lang)] if step.back else []) + ([t("flow.button.sources", lang)]
                                                                  if step.passages else [])
    danger = [t("safety.button.in_danger", lang)] if needs_danger_button(flow, step) else []
    assert labels(reply) == own + danger + nav + [t("dialog.button.ask", lang), t("dialog.button.menu", lang)]
    assert data(reply)[-1] == "k|meny" and data(reply)[-2] == "a"  # the menu always sits last
    for button, button_data in zip(step.buttons, data(reply), strict=False):
        expected = f"k|{button.command}" if button.command else None
        assert button_data == expected or button_data.startswith(f"s|{flow.id}|{step.id}|")
    # One citation per slot, in the reader's language where the slot offers it, carrying the step's § refs.
    assert len(reply.citations) == len(step.passages), (flow.id, step.id, lang)
    shown = {ref for citation in reply.citations for ref in citation.refs}
    assert set(step.refs) <= shown, (flow.id, step.id, lang, sorted(set(step.refs) - shown))
    for citation, slot in zip(reply.citations, step.passages, strict=True):
        alternatives = passage_alternatives(slot)
        docs = [key.split("#", 1)[0] for key in alternatives]
        doc_id = citation.passage_id.split("#", 1)[0]
        assert doc_id in docs
        in_lang = [d for d in docs if answerer.documents[d]["language"] == lang]
        if in_lang:
            assert doc_id == in_lang[0], (flow.id, step.id, lang)


CASES = [(flow_id, lang) for flow_id in sorted(FLOWS) for lang in LANGS]


@pytest.mark.parametrize("flow_id, lang", CASES)
def test_every_branch_of_every_flow_in_every_language(make, answerer, flow_id, lang):
    """Press every button of every step (reached the shortest way), and go back from where it leads."""
    flow = FLOWS[flow_id]
    dialog = make()  # one core; every walk is a new user, so walks never share a position
    walks = 0
    for step_id in paths_to_steps(flow):
        step = flow.steps[step_id]
        walks += 1
        check_step(walk_to(dialog, flow, step_id, lang, f"u{walks}"), flow, step, lang, answerer)
        for i, button in enumerate(step.buttons):
            walks += 1
            user = f"u{walks}"
            reply = walk_to(dialog, flow, step_id, lang, user)
            pressed = dialog.handle_button(user, data(reply)[i])
            assert pressed and not pressed[0].text.startswith(t("dialog.expired", lang)), (flow_id, step_id, i)
            if button.next:
                check_step(one(pressed), flow, flow.steps[button.next], lang, answerer)
                back = one(dialog.handle_button(user, f"s|{flow.id}|{button.next}|b"))
                check_step(back, flow, flow.steps[flow.steps[button.next].back], lang, answerer)
            elif button.flow:
                target = FLOWS[button.flow]
                check_step(one(pressed), target, target.steps[target.start], lang, answerer)
                assert dialog.store.get_user(user).flow_id == target.id
            else:  # a command runs and the position stays, so the user can go on
                assert dialog.store.get_user(user).step_id == step_id
    assert walks == len(flow.steps) + sum(len(s.buttons) for s in flow.steps.values())


def test_every_step_fits_a_phone_before_its_buttons(make):
    for flow in FLOWS.values():
        for step in flow.steps.values():
            for lang in LANGS:
                body = len(pick(step.text, lang)) + (len(pick(step.advice, lang)) if step.advice else 0)
                assert body <= MAX_STEP_CHARS


def test_back_from_a_step_reached_several_ways_goes_to_its_declared_back(make):
    dialog = make()
    flow = FLOWS["forelder-utrygg"]
    begin(dialog, flow, "nb")
    one(dialog.handle_button(USER, "s|forelder-utrygg|hvor|5"))  # other situations
    one(dialog.handle_button(USER, "s|forelder-utrygg|andre|2"))  # "it's just a conflict"
    reply = one(dialog.handle_button(USER, "s|forelder-utrygg|konflikt|1"))  # what the school must do
    assert flow.steps["skolen-plikt"].text["nb"] in reply.text
    back = one(dialog.handle_button(USER, "s|forelder-utrygg|skolen-plikt|b"))
    assert flow.steps["si-fra"].text["nb"] in back.text  # the declared back, not where we came from


def test_the_start_step_has_no_back_button_and_typed_back_says_so(make):
    dialog = make()
    first = begin(dialog, FLOWS["elev-utrygg"], "nn")
    assert t("flow.button.back", "nn") not in labels(first)
    reply = one(dialog.handle_text(USER, "Tilbake"))
    assert reply.text.startswith(t("flow.no_back", "nn"))
    assert dialog.store.get_user(USER).step_id == "hei"
    assert one(dialog.handle_button(USER, "s|elev-utrygg|hei|b")).text.startswith(t("flow.no_back", "nn"))


@pytest.mark.parametrize("lang, back, menu, onward", [
    ("nb", "tilbake", "Meny", "neste"), ("nn", "førre", "hovudmeny", "vidare"), ("en", "back", "MENU", "next"),
])
def test_typed_back_menu_and_next_work_inside_a_walkthrough(make, lang, back, menu, onward):
    dialog = make()
    flow = FLOWS["ansatt-melde"]
    begin(dialog, flow, lang)
    reply = one(dialog.handle_text(USER, onward))  # one way on: take it
    assert pick(flow.steps["gripe-inn"].text, lang) in reply.text
    one(dialog.handle_text(USER, onward))
    reply = one(dialog.handle_text(USER, onward))  # "melde" has two ways on and a link: show the choices
    assert dialog.store.get_user(USER).step_id == "melde"
    assert reply.text.startswith(t("flow.next_choose", lang))
    reply = one(dialog.handle_text(USER, back))
    assert pick(flow.steps["gripe-inn"].text, lang) in reply.text
    reply = one(dialog.handle_text(USER, menu))
    assert reply.kind == "menu" and data(reply)[0] == "c|ansatt-melde|gripe-inn"  # the way back in
    # Words from another language work too; outside a walkthrough they are just text for the answerer.
    one(dialog.handle_button(USER, "c|ansatt-melde|gripe-inn"))
    assert pick(flow.steps["folg-med"].text, lang) in one(dialog.handle_text(USER, "back")).text


def test_neste_at_the_end_shows_the_end_again(make):
    dialog = make()
    flow = FLOWS["kollega-krenker"]
    walk_to(dialog, flow, "diskret", "nb")
    reply = one(dialog.handle_text(USER, "neste"))
    assert t("flow.end", title=flow.title["nb"]) in reply.text and dialog.store.get_user(USER).step_id == "diskret"


def test_a_command_button_runs_the_dialog_command_and_keeps_the_position(make):
    dialog = make()
    flow = FLOWS["forelder-utrygg"]
    reply = walk_to(dialog, flow, "snakk", "nb")
    note = data(reply)[labels(reply).index(flow.steps["snakk"].buttons[1].label["nb"])]
    assert note == "k|notat"
    replies = dialog.handle_button(USER, note)
    assert replies and not any(r.text.startswith(t("dialog.expired")) for r in replies)
    assert dialog.store.get_user(USER).step_id == "snakk"
    resumed = one(dialog.handle_button(USER, "c|forelder-utrygg|snakk"))
    assert flow.steps["snakk"].text["nb"] in resumed.text


def test_a_command_nobody_registered_gets_the_calm_unknown_reply(make, tmp_path, answerer):
    settings = load_settings(data_dir=tmp_path / "bare", knowledge_dir=KNOWLEDGE)
    dialog = Dialog(settings, answerer, FLOWS, CATALOG, SqliteStore(tmp_path / "bare.sqlite3"))  # no tools
    reply = walk_to(dialog, FLOWS["forelder-utrygg"], "snakk", "nb")
    replies = dialog.handle_button(USER, "s|forelder-utrygg|snakk|1")  # an s|… press of the command button
    assert replies[0].text.startswith(t("dialog.unknown_command"))
    assert "k|notat" in data(reply)


def test_the_sources_button_lists_every_source_and_leads_back(make):
    dialog = make()
    flow = FLOWS["statsforvalteren"]
    step = flow.steps["vilkar"]
    begin(dialog, flow, "en")
    sources = one(dialog.handle_button(USER, "s|statsforvalteren|vilkar|i"))
    assert sources.kind == "sources" and sources.text == t("flow.sources_header", "en")
    assert len(sources.citations) == len(step.passages)
    assert sources.citations[0].passage_id.startswith("guide-in-english#")  # the English guide for English
    assert data(sources) == ["c|statsforvalteren|vilkar", "k|meny"]
    assert dialog.store.get_user(USER).step_id == "vilkar"
    assert step.text["en"] in one(dialog.handle_button(USER, data(sources)[0])).text


def test_the_quiz_ends_with_a_score_kept_in_memory_only(make, tmp_path):
    dialog = make()
    flow = FLOWS["nyutdannet"]
    walk_to(dialog, flow, "q1", "nb")
    right = [i for i, b in enumerate(flow.steps["q1"].buttons) if b.correct][0]
    wrong = [i for i, b in enumerate(flow.steps["q2"].buttons) if not b.correct][0]
    dialog.handle_button(USER, f"s|nyutdannet|q1|{right}")
    dialog.handle_button(USER, "s|nyutdannet|q1-riktig|0")
    dialog.handle_button(USER, f"s|nyutdannet|q2|{wrong}")
    dialog.handle_button(USER, "s|nyutdannet|q2-feil|0")
    dialog.handle_button(USER, "s|nyutdannet|q3|b")  # back to q2 and a better answer does not count
    right2 = [i for i, b in enumerate(flow.steps["q2"].buttons) if b.correct][0]
    dialog.handle_button(USER, f"s|nyutdannet|q2|{right2}")
    dialog.handle_button(USER, "s|nyutdannet|q2-riktig|0")
    right3 = [i for i, b in enumerate(flow.steps["q3"].buttons) if b.correct][0]
    dialog.handle_button(USER, f"s|nyutdannet|q3|{right3}")
    end = one(dialog.handle_button(USER, "s|nyutdannet|q3-riktig|0"))
    assert t("flow.score", correct=2, total=3) in end.text
    assert t("flow.end", title=flow.title["nb"]) in end.text
    stored = (tmp_path / "state.sqlite3").read_bytes()
    assert b"q1-riktig" not in stored and b"correct" not in stored
    # A core that restarted (memory gone) cannot count, and says so instead of guessing.
    again = make()
    assert t("flow.score_unknown") in one(again.handle_button(USER, "c|nyutdannet|slutt")).text
    # /slett forgets the tally too.
    dialog.handle_command(USER, "slett")
    assert not any(key[0] == USER for key in dialog.walk._quiz)


def test_starting_the_course_again_counts_from_zero(make):
    dialog = make()
    flow = FLOWS["nyutdannet"]
    walk_to(dialog, flow, "q1", "en")
    dialog.handle_button(USER, "s|nyutdannet|q1|0")
    begin(dialog, flow, "en")
    assert (USER, "nyutdannet") not in dialog.walk._quiz


@pytest.mark.parametrize("press", ["s|forelder-utrygg|snakk|b", "s|forelder-utrygg|snakk|i",
                                   "s|forelder-utrygg|snakk|n", "s|forelder-utrygg|hvor|x",
                                   "s|forelder-utrygg|hvor|99", "s|elev-utrygg|hei|0"])
def test_frame_presses_for_a_step_the_user_is_not_on_are_stale(make, press):
    dialog = make()
    begin(dialog, FLOWS["forelder-utrygg"], "nb")
    reply = one(dialog.handle_button(USER, press))
    assert reply.text.startswith(t("dialog.expired")) and dialog.store.get_user(USER).step_id == "hvor"


def test_a_question_mid_walkthrough_keeps_the_position_and_the_way_back(make):
    dialog = make()
    flow = FLOWS["forelder-utrygg"]
    walk_to(dialog, flow, "plan", "nb")
    answer = dialog.handle_text(USER, "Hva er en aktivitetsplan?")
    assert "c|forelder-utrygg|plan" in [d for reply in answer for d in data(reply)]
    assert dialog.store.get_user(USER).step_id == "plan"
    ask = one(dialog.handle_button(USER, "a"))
    assert data(ask) == ["c|forelder-utrygg|plan"]  # "ask a question" asks, it does not re-show the step


# --- the terminal chat and Telegram show the same steps ----------------------------------------------------


def console_screen(dialog: Dialog, replies: list[Reply], user: str = USER) -> str:
    out = io.StringIO()
    chat = ConsoleChat(dialog, out, user)
    chat.show(replies)
    return out.getvalue()


@pytest.mark.parametrize("flow_id, lang", [("forelder-utrygg", "nb"), ("elev-utrygg", "nn"), ("rektor-sak", "en")])
def test_console_and_telegram_render_the_same_step(make, flow_id, lang):
    dialog = make()
    flow = FLOWS[flow_id]
    for step_id in paths_to_steps(flow):
        reply = walk_to(dialog, flow, step_id, lang, f"screen-{step_id}")
        screen = console_screen(dialog, [reply], f"screen-{step_id}")
        messages = render_reply(reply, Labels.from_catalog(CATALOG, lang))
        visible = "\n".join(parse_html(message.html)[0] for message in messages)
        markup = messages[-1].keyboard
        check_reply_markup(markup.to_dict())
        telegram_labels = [b.text for row in markup.inline_keyboard for b in row]
        assert telegram_labels == labels(reply)
        for number, label in enumerate(labels(reply), start=1):
            assert f"  {number}) {label}" in screen  # same buttons, same order
        for paragraph in reply.text.split("\n\n"):
            assert paragraph in screen and paragraph in visible
        # One compact line per source in both, no URL written out, no doubled tags.
        for citation in reply.citations:
            assert citation.document.split(": ")[0] in screen and citation.document.split(": ")[0] in visible
        for text in (screen, visible):
            assert "http" not in text
            assert ") (§" not in text and "(råd)" not in text and "(advice)" not in text
        assert screen.count("  · ") == len(reply.citations)
        assert visible.count("• ") == len(reply.citations)


def test_console_numbers_answers_buttons_before_the_votes_and_shows_them_again_after_a_vote(make):
    dialog = make()
    out = io.StringIO()
    chat = ConsoleChat(dialog, out, USER)
    chat.show(dialog.handle_button(USER, "r|parent"))
    walk_to(dialog, FLOWS["forelder-utrygg"], "plan", "nb")
    chat.show(dialog.handle_text(USER, "Hva er en aktivitetsplan?"))
    numbered = {number: option for number, option in chat.options.items()}
    kinds = [option[1][0] for option in numbered.values()]
    assert kinds[-2:] == ["vote", "vote"] and set(kinds[:-2]) == {"button"}
    resume = [n for n, option in numbered.items() if option[1] == ("button", "c|forelder-utrygg|plan")]
    assert resume, numbered
    before = out.getvalue()
    chat.show(chat.handle_line(str(len(numbered) - 1)))  # 👍
    after = out.getvalue()[len(before):]
    assert t("dialog.vote_thanks") in after
    assert f"  {resume[0]}) {t('dialog.button.resume')}" in after  # the options are shown again
    chat.show(chat.handle_line(str(resume[0])))
    assert FLOWS["forelder-utrygg"].steps["plan"].text["nb"] in out.getvalue()[len(before):]


def test_console_shows_the_list_again_after_a_wrong_number(make):
    dialog = make()
    out = io.StringIO()
    chat = ConsoleChat(dialog, out, USER)
    chat.show(dialog.handle_command(USER, "start"))
    first = dict(chat.options)
    chat.show(chat.handle_line("42"))
    text = out.getvalue()
    assert t("dialog.console.no_option", number="42") in text
    assert text.count(f"  1) {first[1][0]}") == 2 and chat.options == first


def test_the_full_source_list_shows_each_link_once(make):
    dialog = make()
    begin(dialog, FLOWS["ansatt-melde"], "nb")
    dialog.handle_text(USER, "neste")
    dialog.handle_text(USER, "neste")
    sources = one(dialog.handle_button(USER, "s|ansatt-melde|melde|i"))
    screen = console_screen(dialog, [sources])
    urls = [c.url for c in sources.citations if c.url]
    for url in set(urls):
        assert screen.count(url) == 1
    html = render_reply(sources, Labels.from_catalog(CATALOG, "nb"))[0].html
    for url in set(urls):
        assert html.count(f'href="{url}"') == 1


def test_typed_words_on_a_tool_screen_do_not_move_the_walkthrough(make):
    dialog = make()
    flow = FLOWS["forelder-utrygg"]
    walk_to(dialog, flow, "voksen", "nb")  # reached via "andre"
    dialog.handle_button(USER, "k|brev")  # the message-draft tool opens its own screen
    dialog.handle_text(USER, "tilbake")  # meant for the tool's screen (or a question), not the flow
    assert dialog.store.get_user(USER).step_id == "voksen"
    dialog.handle_command(USER, "kontakt")
    dialog.handle_text(USER, flow.steps["voksen"].buttons[0].label["nb"])
    assert dialog.store.get_user(USER).step_id == "voksen"
    # Back on the step, typing works again.
    one(dialog.handle_text(USER, t("dialog.button.resume")))
    assert flow.steps["andre"].text["nb"].split("\n")[0] in one(dialog.handle_text(USER, "tilbake")).text
    assert dialog.store.get_user(USER).step_id == "andre"
