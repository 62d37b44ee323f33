"""The Telegram handlers through `application.process_update(...)`, offline.

A request class stands in for the network: it answers the few Bot API methods the bot may call, checks
each call with the emulator's Telegram rules (HTML, length, keyboards) and fails on anything else.
The conversation core is the real one (`bot.dialog.Dialog` with the shipped flows and catalogue) over a
deterministic FakeAnswerer.
"""

from __future__ import annotations

import json
import logging
from itertools import count
from pathlib import Path

import pytest
from botapi_emulator import ApiError, check_reply_markup, check_text
from fakes import FakeAnswerer
from telegram import Update
from telegram.request import BaseRequest, RequestData

from bot.config import load_settings
from bot.dialog import Dialog
from bot.errors import ConfigError
from bot.flows import load_flows
from bot.i18n import Catalog
from bot.report import format_report
from bot.store import SqliteStore
from bot.telegram_bot import MENU_COMMANDS, UserRateLimit, build_application, register_commands

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
BOT = {"id": 999, "is_bot": True, "first_name": "kap12", "username": "kap12_test_bot", "can_join_groups": True,
       "can_read_all_group_messages": False, "supports_inline_queries": False}
PARENT, STAFF, GROUP = 1001, 2002, -100500
CATALOG = Catalog.load(KNOWLEDGE / "ui")


class OfflineRequest(BaseRequest):
    """Answers the Bot API methods a handler may use, validated like Telegram; refuses everything else."""

    ALLOWED = {"getMe", "sendMessage", "answerCallbackQuery", "editMessageReplyMarkup", "setMyCommands"}

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self._ids = count(5000)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    @property
    def read_timeout(self):
        return 1.0

    async def do_request(self, url, method, request_data: RequestData | None = None, **timeouts):
        name = url.rsplit("/", 1)[-1]
        if name not in self.ALLOWED:
            raise AssertionError(f"unexpected network call: {name}")
        params = dict(request_data.parameters) if request_data else {}
        self.calls.append((name, params))
        try:
            result = self._answer(name, params)
        except ApiError as exc:
            return exc.code, json.dumps({"ok": False, "error_code": exc.code, "description": exc.description}).encode()
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _answer(self, name: str, params: dict):
        if name == "getMe":
            return BOT
        if name in ("answerCallbackQuery", "setMyCommands"):
            return True
        if name == "sendMessage":
            text, entities = check_text(params.get("text"), params.get("parse_mode"))
            check_reply_markup(params.get("reply_markup"))
            return {"message_id": next(self._ids), "date": 0, "chat": {"id": params["chat_id"], "type": "private"},
                    "text": text, "entities": entities}
        check_reply_markup(params.get("reply_markup"))
        return True  # editMessageReplyMarkup

    # What the tests look at
    def sent(self) -> list[dict]:
        return [p for name, p in self.calls if name == "sendMessage"]

    def texts(self) -> list[str]:
        return [check_text(p["text"], p.get("parse_mode"))[0] for p in self.sent()]

    def buttons(self) -> list[str]:
        markups = [p.get("reply_markup") or {} for p in self.sent()]
        return [b.get("callback_data") for m in markups for row in m.get("inline_keyboard", []) for b in row]

    def named(self, name: str) -> list[dict]:
        return [p for n, p in self.calls if n == name]

    def clear(self) -> None:
        self.calls.clear()


# -- fake updates ---------------------------------------------------------------------------------------------
_update_ids = count(1)
_message_ids = count(1)


def _user(user_id: int) -> dict:
    return {"id": user_id, "is_bot": False, "first_name": f"U{user_id}", "language_code": "nb"}


def _chat(user_id: int, chat_id: int | None) -> dict:
    if chat_id is None or chat_id == user_id:
        return {"id": user_id, "type": "private", "first_name": f"U{user_id}"}
    return {"id": chat_id, "type": "supergroup", "title": "Foreldre 5B"}


def message(app, text: str | None = None, user_id: int = PARENT, chat_id: int | None = None, edited=False,
            **content) -> Update:
    """A message update; a leading /command and @mentions get their entities as Telegram adds them."""
    msg = {"message_id": next(_message_ids), "date": 0, "chat": _chat(user_id, chat_id), "from": _user(user_id),
           **content}
    if text is not None:
        msg["text"] = text
        entities = []
        if text.startswith("/"):
            entities.append({"type": "bot_command", "offset": 0, "length": len(text.split()[0])})
        at = text.find("@kap12_test_bot")
        if at >= 0 and not text.startswith("/"):
            entities.append({"type": "mention", "offset": at, "length": len("@kap12_test_bot")})
        if entities:
            msg["entities"] = entities
    key = "edited_message" if edited else "message"
    if edited:
        msg["edit_date"] = 1
    return Update.de_json({"update_id": next(_update_ids), key: msg}, app.bot)


def press(app, data: str, user_id: int = PARENT, chat_id: int | None = None, markup: dict | None = None) -> Update:
    """A callback query from a button under one of the bot's messages."""
    msg = {"message_id": next(_message_ids), "date": 0, "chat": _chat(user_id, chat_id), "from": BOT, "text": "…"}
    if markup:
        msg["reply_markup"] = markup
    query = {"id": str(next(_update_ids)), "from": _user(user_id), "chat_instance": "ci", "data": data, "message": msg}
    return Update.de_json({"update_id": next(_update_ids), "callback_query": query}, app.bot)


# -- fixtures -------------------------------------------------------------------------------------------------
def make_dialog(settings, tmp_path, answerer=None, cls=Dialog) -> Dialog:
    return cls(settings, answerer or FakeAnswerer(), load_flows(KNOWLEDGE / "flows"), CATALOG,
               SqliteStore(tmp_path / "state.sqlite3"), require_staff_proof=True)


@pytest.fixture
def settings():
    return load_settings(telegram_token="123:TEST", staff_user_ids=[STAFF], rate_limit_per_minute=1000)


@pytest.fixture
async def bot(settings, tmp_path):
    """(application, request, dialog), initialized without any network."""
    request = OfflineRequest()
    dialog = make_dialog(settings, tmp_path)
    app = build_application(settings, dialog, request=request)
    await app.initialize()
    request.clear()
    yield app, request, dialog
    await app.shutdown()


# -- tests ----------------------------------------------------------------------------------------------------
def test_a_token_is_required(tmp_path):
    with pytest.raises(ConfigError, match="KAP12_TELEGRAM_TOKEN"):
        build_application(load_settings(), make_dialog(load_settings(), tmp_path))


async def test_base_url_points_at_the_configured_bot_api(tmp_path):
    settings = load_settings(telegram_token="123:TEST", telegram_api_url="http://127.0.0.1:9/bot")
    app = build_application(settings, make_dialog(settings, tmp_path), request=OfflineRequest())
    assert app.bot.base_url == "http://127.0.0.1:9/bot123:TEST"


async def test_start_asks_for_a_role_with_buttons(bot):
    app, request, _ = bot
    await app.process_update(message(app, "/start"))
    [sent] = request.sent()
    assert sent["parse_mode"] == "HTML"
    assert {"r|parent", "r|staff", "r|new_teacher"} <= set(request.buttons())
    assert "112" in request.texts()[0]  # the core's limits: not an emergency service


async def test_start_with_a_deep_link_opens_the_flow(bot):
    app, request, dialog = bot
    await app.process_update(message(app, "/start forelder-utrygg"))
    assert any(data.startswith("s|forelder-utrygg|noter|") for data in request.buttons())
    assert dialog.store.get_user(f"tg:{PARENT}").step_id == "noter"


async def test_role_button_and_walkthrough_step_answer_the_callback(bot):
    app, request, dialog = bot
    await app.process_update(press(app, "r|parent"))
    assert len(request.named("answerCallbackQuery")) == 1
    assert dialog.store.get_user(f"tg:{PARENT}").role == "parent"
    request.clear()
    await app.process_update(press(app, "f|forelder-utrygg"))
    await app.process_update(press(app, "s|forelder-utrygg|noter|0"))
    assert dialog.store.get_user(f"tg:{PARENT}").step_id == "kontakt"
    assert len(request.named("answerCallbackQuery")) == 2
    assert request.sent()[-1].get("reply_markup")


async def test_question_gets_citations_and_feedback_buttons_and_a_vote_is_stored(bot):
    app, request, dialog = bot
    await app.process_update(message(app, "Hva er en aktivitetsplan?"))
    [answer] = request.sent()
    text = request.texts()[0]
    assert "Kilder" in text and "§ 12-4" in text
    _, entities = check_text(answer["text"], "HTML")
    assert [e["url"][:8] for e in entities if e["type"] == "text_link"] == ["https://"]
    votes = [d for d in request.buttons() if d.startswith("fb|")]
    assert len(votes) == 2
    request.clear()

    await app.process_update(press(app, votes[0], markup=answer["reply_markup"]))
    [row] = dialog.store.report()["documents"]
    assert (row["up"], row["down"]) == (1, 0)
    [edit] = request.named("editMessageReplyMarkup")  # the 👍/👎 row is taken away after the vote
    assert not any(b["callback_data"].startswith("fb|") for row in edit["reply_markup"]["inline_keyboard"]
                   for b in row)
    assert request.texts() == [CATALOG.get("dialog.vote_thanks")]
    request.clear()
    await app.process_update(press(app, votes[1]))  # the same answer again: counted once
    assert dialog.store.report()["documents"][0]["down"] == 0
    assert request.texts() == [CATALOG.get("dialog.vote_already")]


@pytest.mark.parametrize("data", ["s|nope|x|9", "f|../../etc", "fb|x|abc", "totally forged ø", "a|b|c|d|e"])
async def test_forged_or_stale_button_data_gets_a_calm_reply(bot, data):
    app, request, _ = bot
    await app.process_update(press(app, data))
    assert len(request.named("answerCallbackQuery")) == 1
    assert request.texts()[0].startswith(CATALOG.get("dialog.expired"))


async def test_forged_feedback_id_is_not_counted(bot):
    app, request, dialog = bot
    for data in ("fb|+|nosuchanswer", "v|+|zzz"):  # ours, and the core's own vote format
        request.clear()
        await app.process_update(press(app, data))
        assert request.texts() == [CATALOG.get("dialog.vote_expired")]
    assert dialog.store.report()["documents"] == []


async def test_html_and_markdown_in_a_message_are_harmless(bot):
    app, request, dialog = bot
    await app.process_update(message(app, "<b>mobbing</b> & *hjelp* <script>alert(1)</script>"))
    assert request.texts()  # sent, and every message passed Telegram's HTML rules
    assert dialog.answerer.asked[0][0] == "<b>mobbing</b> & *hjelp* <script>alert(1)</script>"


async def test_a_very_long_message_is_answered_in_valid_parts(bot):
    app, request, _ = bot
    await app.process_update(message(app, "aktivitetsplan " + "ø" * 4050))
    texts = request.texts()
    assert texts[0] == CATALOG.get("dialog.too_long", limit=4000)
    assert any("Kilder" in t for t in texts)


async def test_emoji_only_is_answered_calmly(bot):
    app, request, dialog = bot
    await app.process_update(message(app, "😀🙈👍"))
    assert dialog.answerer.asked[0][0] == "😀🙈👍"
    assert request.texts() == [FakeAnswerer().ask("😀🙈👍").answer]  # the answerer's refusal, as it is


@pytest.mark.parametrize("content", [
    {"sticker": {"file_id": "s", "file_unique_id": "s", "type": "regular", "width": 1, "height": 1,
                 "is_animated": False, "is_video": False}},
    {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}], "caption": "se her"},
    {"voice": {"file_id": "v", "file_unique_id": "v", "duration": 1}},
])
async def test_non_text_messages_get_text_only(bot, content):
    app, request, _ = bot
    await app.process_update(message(app, **content))
    assert request.texts() == [CATALOG.get("telegram.text_only")]
    request.clear()
    await app.process_update(message(app, chat_id=GROUP, **content))
    assert request.sent() == []  # in a group the bot keeps quiet


async def test_edited_message_gets_a_calm_note_and_is_not_answered_again(bot):
    app, request, dialog = bot
    await app.process_update(message(app, "mobbing", edited=True))
    assert request.texts() == [CATALOG.get("telegram.edited")]
    assert dialog.answerer.asked == []
    request.clear()
    await app.process_update(message(app, "mobbing", chat_id=GROUP, edited=True))
    assert request.sent() == []


async def test_unknown_command_gets_the_help_menu(bot):
    app, request, _ = bot
    await app.process_update(message(app, "/finnesikke"))
    assert request.texts()[0].startswith(CATALOG.get("dialog.unknown_command"))
    assert "k|rolle" in request.buttons()


async def test_each_menu_command_reaches_the_core(bot):
    app, request, dialog = bot
    for name in MENU_COMMANDS:
        if name == "slett":
            continue
        request.clear()
        await app.process_update(message(app, f"/{name}"))
        assert request.sent(), name
    request.clear()
    await app.process_update(message(app, "/slett"))
    assert request.texts()[0] == CATALOG.get("dialog.forgotten")
    assert dialog.store.get_user(f"tg:{PARENT}") is None


async def test_group_answers_only_when_addressed_and_never_starts_a_walkthrough(bot):
    app, request, dialog = bot
    await app.process_update(message(app, "aktivitetsplan", chat_id=GROUP))
    assert request.sent() == []  # not addressed to the bot
    await app.process_update(message(app, "@kap12_test_bot hva er en aktivitetsplan?", chat_id=GROUP))
    assert dialog.answerer.asked[-1][0] == "hva er en aktivitetsplan?"
    [answer] = request.sent()
    assert answer["chat_id"] == GROUP
    assert all(d.startswith("fb|") for d in request.buttons())  # only 👍/👎, no walkthrough buttons
    for command in ("/meld", "/start forelder-utrygg", "/rolle@kap12_test_bot", "/sprak"):
        request.clear()
        await app.process_update(message(app, command, chat_id=GROUP))
        [pointer] = request.texts()
        assert "https://t.me/kap12_test_bot" in pointer
    assert "?start=forelder-utrygg" not in pointer
    assert dialog.store.get_user(f"tg:{PARENT}") is None or dialog.store.get_user(f"tg:{PARENT}").flow_id is None
    request.clear()
    await app.process_update(message(app, "/hjelp@kap12_test_bot", chat_id=GROUP))
    assert request.sent()
    request.clear()
    await app.process_update(message(app, "/hjelp@some_other_bot", chat_id=GROUP))
    assert request.sent() == []


async def test_group_text_never_moves_a_private_walkthrough_on(bot):
    app, request, dialog = bot
    await app.process_update(message(app, "/meld"))  # private chat: the parent's walkthrough starts
    state = dialog.store.get_user(f"tg:{PARENT}")
    step = dialog.flows[state.flow_id].steps[state.step_id]
    label = step.buttons[0].label["nb"]
    request.clear()
    await app.process_update(message(app, f"@kap12_test_bot {label}", chat_id=GROUP))
    assert dialog.answerer.asked[-1][0] == label  # treated as a question, not a button press
    after = dialog.store.get_user(f"tg:{PARENT}")
    assert (after.flow_id, after.step_id) == (state.flow_id, state.step_id)
    assert all(d.startswith("fb|") for d in request.buttons())


async def test_group_deep_link_points_to_the_private_chat_with_the_payload(bot):
    app, request, _ = bot
    await app.process_update(message(app, "/start forelder-utrygg", chat_id=GROUP))
    assert "https://t.me/kap12_test_bot?start=forelder-utrygg" in request.texts()[0]


async def test_group_button_press_is_answered_without_reaching_the_core(bot):
    app, request, dialog = bot
    await app.process_update(press(app, "f|forelder-utrygg", chat_id=GROUP))
    [answer] = request.named("answerCallbackQuery")
    assert answer["text"] == CATALOG.get("telegram.group_button")
    assert request.sent() == []
    assert dialog.store.get_user(f"tg:{PARENT}") is None


async def test_staff_allow_list_proves_staff(bot):
    app, request, dialog = bot
    await app.process_update(message(app, "/start", user_id=STAFF))
    await app.process_update(message(app, "/start", user_id=PARENT))
    assert dialog.store.get_user(f"tg:{STAFF}").staff_verified is True
    parent = dialog.store.get_user(f"tg:{PARENT}")
    assert parent is None or parent.staff_verified is False
    # A parent who claims to be staff still gets public passages only.
    await app.process_update(press(app, "r|staff", user_id=PARENT))
    await app.process_update(message(app, "kollega", user_id=PARENT))
    assert dialog.answerer.asked[-1][1] == "parent"
    await app.process_update(press(app, "r|staff", user_id=STAFF))
    await app.process_update(message(app, "kollega", user_id=STAFF))
    assert dialog.answerer.asked[-1][1] == "staff"


async def test_rate_limit_warns_once_then_drops(settings, tmp_path):
    settings = settings.model_copy(update={"rate_limit_per_minute": 2})
    request = OfflineRequest()
    dialog = make_dialog(settings, tmp_path)
    app = build_application(settings, dialog, request=request)
    async with app:
        for _ in range(5):
            await app.process_update(message(app, "/hjelp"))
        texts = request.texts()
        assert texts.count(CATALOG.get("telegram.slow_down")) == 1
        assert len(texts) == 3
        await app.process_update(press(app, "k|meny"))  # a press over the limit is still answered
        assert len(request.named("answerCallbackQuery")) == 1
        await app.process_update(message(app, "/hjelp", user_id=STAFF))  # other users are not affected
        assert len(request.texts()) == 4


def test_user_rate_limit_window_slides():
    now = [0.0]
    limit = UserRateLimit(2, window=60, clock=lambda: now[0])
    assert [limit.check(1) for _ in range(4)] == ["ok", "ok", "warn", "drop"]
    assert limit.check(2) == "ok"
    now[0] = 59.9
    assert limit.check(1) == "drop"
    now[0] = 60.0
    assert limit.check(1) == "ok"
    with pytest.raises(ValueError):
        UserRateLimit(0)


class BrokenDialog(Dialog):
    def handle_text(self, user_id, text, **options):
        raise RuntimeError("the core broke")


async def test_errors_are_logged_without_message_text_and_the_user_is_told(settings, tmp_path, caplog):
    request = OfflineRequest()
    app = build_application(settings, make_dialog(settings, tmp_path, cls=BrokenDialog), request=request)
    caplog.set_level(logging.DEBUG, logger="bot")
    async with app:
        update = message(app, "mitt barn heter Ola og blir mobbet")
        await app.process_update(update)
    assert request.texts() == [CATALOG.get("telegram.error")]
    records = [r for r in caplog.records if r.name == "bot.telegram_bot" and r.levelno == logging.ERROR]
    assert records and records[0].exc_info and "the core broke" in str(records[0].exc_info[1])
    assert f"update {update.update_id} (chat type private)" in records[0].getMessage()
    assert "Ola" not in caplog.text


async def test_message_text_is_logged_only_when_enabled(settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="bot")
    for enabled in (False, True):
        settings = settings.model_copy(update={"log_message_text": enabled})
        app = build_application(settings, make_dialog(settings, tmp_path), request=OfflineRequest())
        async with app:
            await app.process_update(message(app, f"hemmelig spørsmål {enabled}"))
        assert (f"hemmelig spørsmål {enabled}" in caplog.text) is enabled


async def test_command_menu_is_registered_in_bokmal_and_english(bot):
    app, request, _ = bot
    await register_commands(app)
    calls = request.named("setMyCommands")
    assert len(calls) == 2
    nb = calls[0]["commands"]
    assert [c["command"] for c in nb] == list(MENU_COMMANDS)
    assert nb[MENU_COMMANDS.index("slett")]["description"] == CATALOG.get("telegram.cmd.slett", "nb")
    assert calls[1]["language_code"] == "en"


def test_every_telegram_key_exists_in_every_language():
    keys = {k for k in CATALOG.keys() if k.startswith("telegram.")}
    assert {f"telegram.cmd.{name}" for name in MENU_COMMANDS} <= keys
    for lang, missing in CATALOG.missing_keys().items():
        assert not {k for k in missing if k.startswith("telegram.")}, lang
    for key in keys:
        for lang in ("nb", "nn", "en"):
            assert CATALOG.placeholders(key, lang) == CATALOG.placeholders(key, "nb"), (key, lang)


def test_report_lists_votes_per_document_and_the_refused_share():
    report = {"documents": [{"document": "Rutiner for ansatte", "up": 1, "down": 4},
                            {"document": "Kapittel 12 forklart", "up": 7, "down": 0}],
              "questions": {"answered": 7, "refused": 1, "refused_share": 0.125}}
    lines = format_report(report, "nb", CATALOG).splitlines()
    assert lines[0] == CATALOG.get("telegram.report.votes_title", "nb")
    assert lines[2].split() == ["Rutiner", "for", "ansatte", "1", "4"]  # most 👎 first, as the store sorts
    assert "1 uten svar fra kildene (12,5 % uten svar)" in format_report(report, "nb", CATALOG)
    assert "(12.5 % without an answer)" in format_report(report, "en", CATALOG)
    empty = format_report({"documents": [], "questions": {"answered": 0, "refused": 0}}, "nn", CATALOG)
    assert CATALOG.get("telegram.report.no_votes", "nn") in empty
    assert CATALOG.get("telegram.report.no_questions", "nn") in empty
