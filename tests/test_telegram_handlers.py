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
from telegram.error import NetworkError
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
    """Answers the Bot API methods a handler may use, validated like Telegram; refuses everything else.

    `fail(method, *codes)` makes the next calls of `method` answer with those HTTP codes (0 = connection
    reset), one per call; `updates` is what getUpdates returns (raw dicts, consumed by the offset).
    """

    ALLOWED = {"getMe", "sendMessage", "answerCallbackQuery", "editMessageReplyMarkup", "setMyCommands",
               "getUpdates", "deleteWebhook", "setWebhook"}

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self._ids = count(5000)
        self._failures: dict[str, list[int]] = {}
        self.updates: list[dict] = []

    def fail(self, method: str, *codes: int) -> None:
        self._failures.setdefault(method, []).extend(codes)

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
        if self._failures.get(name):
            code = self._failures[name].pop(0)
            if code == 0:
                raise NetworkError("connection reset (injected)")
            return code, json.dumps({"ok": False, "error_code": code, "description": f"injected {code}"}).encode()
        try:
            result = self._answer(name, params)
        except ApiError as exc:
            return exc.code, json.dumps({"ok": False, "error_code": exc.code, "description": exc.description}).encode()
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _answer(self, name: str, params: dict):
        if name == "getMe":
            return BOT
        if name == "getUpdates":
            offset = int(params.get("offset") or 0)
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            return list(self.updates)
        if name in ("deleteWebhook", "setWebhook"):
            return True
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
    first = dialog.flows["forelder-utrygg"].start
    assert any(data.startswith(f"s|forelder-utrygg|{first}|") for data in request.buttons())
    assert dialog.store.get_user(f"tg:{PARENT}").step_id == first


async def test_role_button_and_walkthrough_step_answer_the_callback(bot):
    app, request, dialog = bot
    await app.process_update(press(app, "r|parent"))
    assert len(request.named("answerCallbackQuery")) == 1
    assert dialog.store.get_user(f"tg:{PARENT}").role == "parent"
    request.clear()
    flow = dialog.flows["forelder-utrygg"]
    await app.process_update(press(app, "f|forelder-utrygg"))
    await app.process_update(press(app, f"s|forelder-utrygg|{flow.start}|0"))
    assert dialog.store.get_user(f"tg:{PARENT}").step_id == flow.steps[flow.start].buttons[0].next
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


async def test_an_english_answer_in_a_bokmal_chat_is_labelled_in_english(bot):
    app, request, _ = bot
    await app.process_update(message(app, "What is an aktivitetsplan?"))
    answer = request.texts()[0]
    assert CATALOG.get("telegram.sources", "en") in answer and CATALOG.get("telegram.sources", "nb") not in answer
    labels = [b["text"] for p in request.sent() for row in (p.get("reply_markup") or {}).get("inline_keyboard", [])
              for b in row]
    assert CATALOG.get("telegram.vote_up", "en") in labels


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
    await app.process_update(press(app, "r|parent"))
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
    await app.process_update(press(app, "r|parent"))
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
        assert texts.count(CATALOG.get("telegram.rate_limited")) == 1
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
    assert CATALOG.get("telegram.report.urgent", "nn", count=0) in empty
    assert "(noen i fare): 3." in format_report({**report, "urgent_replies": 3}, "nb", CATALOG)


# -- reliability and security (issue 13) --------------------------------------------------------------------
import asyncio  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402

from bot import telegram_bot  # noqa: E402
from bot.errors import Kap12Error  # noqa: E402
from bot.telegram_bot import (  # noqa: E402
    ChatOrderedProcessor,
    install_log_filter,
    serve,
    webhook_server,
)


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(telegram_bot, "SEND_BACKOFF", 0.01)
    monkeypatch.setattr(telegram_bot, "STARTUP_FIRST_WAIT", 0.01)


def error_text(lang: str = "nb") -> str:
    return CATALOG.get("telegram.error", lang)


async def test_d1_a_verified_staff_member_gets_public_answers_in_a_group(bot):
    app, request, dialog = bot
    await app.process_update(press(app, "r|staff", user_id=STAFF))  # on the allow-list: proven
    await app.process_update(message(app, "aktivitetsplan", user_id=STAFF))
    assert dialog.answerer.asked[-1][1] == "staff"  # privately: staff passages
    request.clear()
    await app.process_update(message(app, "@kap12_test_bot aktivitetsplan", user_id=STAFF, chat_id=GROUP))
    assert dialog.answerer.asked[-1][1] == "parent"  # posted to the group: public only, whoever asks
    [answer] = request.sent()
    assert answer["chat_id"] == GROUP and "Kilder" in request.texts()[0]
    await app.process_update(message(app, "aktivitetsplan", user_id=STAFF))
    assert dialog.answerer.asked[-1][1] == "staff"  # and the proof still holds in private
    assert dialog.store.get_user(f"tg:{STAFF}").staff_verified is True


async def test_d1_group_commands_never_show_what_is_stored_about_someone(bot):
    app, request, _ = bot
    await app.process_update(message(app, "/personvern", user_id=STAFF, chat_id=GROUP))
    [pointer] = request.texts()
    assert "https://t.me/kap12_test_bot" in pointer and CATALOG.get("dialog.privacy_item.role", role="")[:5] \
        not in pointer


async def test_d15_the_notice_promises_nothing_and_slett_is_never_limited(settings, tmp_path):
    settings = settings.model_copy(update={"rate_limit_per_minute": 2})
    request = OfflineRequest()
    dialog = make_dialog(settings, tmp_path)
    app = build_application(settings, dialog, request=request)
    async with app:
        await app.process_update(press(app, "r|parent"))
        for _ in range(4):
            await app.process_update(message(app, "aktivitetsplan"))
        notice = CATALOG.get("telegram.rate_limited")
        assert request.texts().count(notice) == 1
        assert "svarer jeg igjen" not in notice and "/slett" in notice
        request.clear()
        await app.process_update(message(app, "/slett"))  # over the limit, and still done
        assert request.texts() == [CATALOG.get("dialog.forgotten")]
        assert dialog.store.get_user(f"tg:{PARENT}") is None


async def test_d5_a_send_that_fails_once_is_retried_and_never_becomes_an_error(bot, fast_retries):
    app, request, dialog = bot
    for code in (500, 0, 502):  # 500, connection reset, bad gateway
        request.clear()
        request.fail("sendMessage", code)
        await app.process_update(message(app, "aktivitetsplan"))
        assert len(request.named("sendMessage")) == 2  # the failed try and the retry
        assert "Kilder" in request.texts()[-1]
        assert error_text() not in request.texts()


async def test_d5_a_send_that_keeps_failing_is_logged_not_reported_as_an_error(bot, fast_retries, caplog):
    app, request, dialog = bot
    request.fail("sendMessage", *[500] * 10)
    with caplog.at_level(logging.WARNING, logger="bot.telegram_bot"):
        await app.process_update(press(app, "r|staff", user_id=PARENT))
    assert dialog.store.get_user(f"tg:{PARENT}").role == "staff"  # the work was done and stored
    assert len(request.named("sendMessage")) == telegram_bot.SEND_ATTEMPTS  # no error message on top
    assert "failed 3 times" in caplog.text and "Traceback" not in caplog.text


async def test_d5_a_failed_callback_answer_still_carries_out_the_press(bot, fast_retries):
    app, request, dialog = bot
    request.fail("answerCallbackQuery", 500, 500, 500)
    await app.process_update(press(app, "r|parent"))
    assert dialog.store.get_user(f"tg:{PARENT}").role == "parent"
    assert request.sent() and error_text() not in request.texts()


async def test_d5_a_vote_whose_buttons_cannot_be_removed_is_stored_and_thanked(bot, fast_retries):
    app, request, dialog = bot
    await app.process_update(message(app, "aktivitetsplan"))
    [answer] = request.sent()
    vote = next(d for d in request.buttons() if d.startswith("fb|"))
    request.clear()
    request.fail("editMessageReplyMarkup", 500, 500, 500)
    await app.process_update(press(app, vote, markup=answer["reply_markup"]))
    assert dialog.store.report()["documents"][0]["up"] == 1
    assert request.texts() == [CATALOG.get("dialog.vote_thanks")]


def _raw_message(update_id: int, text: str, user_id: int = PARENT) -> dict:
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 0, "text": text,
                                                "chat": _chat(user_id, None), "from": _user(user_id)}}


async def test_d2_an_unreadable_update_is_skipped_by_id_and_type_and_the_rest_are_handled(bot, caplog):
    app, request, _ = bot
    secret_text = "Datteren min Ingrid blir mobbet"
    broken = {"update_id": 10, "message": {"message_id": 1, "date": 0, "chat": _chat(PARENT, None),
                                           "from": _user(PARENT), "poll": {"id": "p", "question": secret_text}}}
    request.updates = [_raw_message(9, secret_text), broken, _raw_message(11, "hei")]
    caplog.set_level(logging.DEBUG)
    updates = await app.bot.get_updates(offset=9, timeout=0)
    assert [u.update_id for u in updates] == [9, 11]
    request.updates.append(_raw_message(12, "igjen"))
    updates = await app.bot.get_updates(offset=12, timeout=0)
    assert [u.update_id for u in updates] == [12]
    # The broken update was last in its batch: the next poll confirms it, so it never comes back.
    request.updates = [{**broken, "update_id": 20}]
    assert await app.bot.get_updates(offset=13, timeout=0) == ()
    await app.bot.get_updates(offset=13, timeout=0)
    assert request.named("getUpdates")[-1]["offset"] == 21
    assert "skipped update 10 (message)" in caplog.text
    assert secret_text not in caplog.text and "kari" not in caplog.text


def test_d2_library_log_records_never_carry_message_text(settings, caplog):
    import telegram.ext  # noqa: F401  (creates the library's loggers)

    secret = "Datteren min Ingrid (10) blir mobbet"
    settings = settings.model_copy(update={"telegram_token": load_settings(telegram_token="123:SECRET-TOKEN")
                                           .telegram_token})
    logger = logging.getLogger("telegram.ext.Updater")
    try:
        installed = install_log_filter(settings)
        for name in ("telegram", "telegram.ext.Updater", "telegram.ext.ExtBot", "httpx"):
            assert installed in logging.getLogger(name).filters, name
        with caplog.at_level(logging.DEBUG):
            logger.critical("Error while parsing updates! Received data was %r", [{"message": {"text": secret}}])
            logging.getLogger("telegram.ext.ExtBot").debug("Processing update %s for %s", {"text": secret}, 7)
            logging.getLogger("httpx").error("url https://api/bot123:SECRET-TOKEN/getMe (%s)", 500)
        assert secret not in caplog.text and "SECRET-TOKEN" not in caplog.text
        assert "<withheld>" in caplog.text and "for 7" in caplog.text and "(500)" in caplog.text
        caplog.clear()
        install_log_filter(settings.model_copy(update={"log_message_text": True}))  # local debugging only
        with caplog.at_level(logging.DEBUG):
            logger.debug("Processing update %s", {"text": secret})
        assert secret in caplog.text
    finally:
        install_log_filter(settings)


async def test_d4_updates_from_different_chats_overlap_and_one_chat_stays_in_order():
    processor = ChatOrderedProcessor()
    done: list[str] = []

    async def work(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        done.append(name)

    def upd(update_id: int, chat_id: int) -> Update:
        return Update.de_json(_raw_message(update_id, "x", user_id=chat_id), None)

    started = time.monotonic()
    await asyncio.gather(
        processor.process_update(upd(1, 1), work("a1", 0.3)),
        processor.process_update(upd(2, 1), work("a2", 0.01)),
        processor.process_update(upd(3, 2), work("b1", 0.01)),
    )
    assert done.index("a1") < done.index("a2")  # one chat: in order, although a2 is quicker
    assert done[0] == "b1"  # another chat does not wait for chat 1
    assert time.monotonic() - started < 0.6
    assert len(processor.chats) == 0  # no lock left behind


class SlowDialog(Dialog):
    def handle_text(self, user_id, text, **options):
        if "tung" in text:
            time.sleep(0.8)  # CPU-bound in the real core: must not hold up the event loop or other users
        return super().handle_text(user_id, text, **options)


async def test_d4_a_slow_question_does_not_hold_up_another_user(settings, tmp_path):
    request = OfflineRequest()
    app = build_application(settings, make_dialog(settings, tmp_path, cls=SlowDialog), request=request)
    async with app:
        finished: dict[int, float] = {}

        async def ask(user_id: int, text: str) -> None:
            await app.process_update(message(app, text, user_id=user_id))
            finished[user_id] = time.monotonic()

        started = time.monotonic()
        await asyncio.gather(ask(PARENT, "tung aktivitetsplan"), ask(STAFF, "aktivitetsplan"))
        assert finished[STAFF] - started < 0.5 < finished[PARENT] - started


def _garbage_state(tmp_path) -> SqliteStore:
    path = tmp_path / "bad" / "state.sqlite3"
    path.parent.mkdir()
    path.write_bytes(b"garbage, not SQLite " * 200)
    return SqliteStore(path)


async def test_d6_a_broken_state_file_still_answers_everything_including_slett(settings, tmp_path):
    request = OfflineRequest()
    dialog = Dialog(settings, FakeAnswerer(), load_flows(KNOWLEDGE / "flows"), CATALOG, _garbage_state(tmp_path),
                    require_staff_proof=True)
    app = build_application(settings, dialog, request=request)
    async with app:
        await app.process_update(message(app, "/start"))
        await app.process_update(press(app, "r|parent"))
        await app.process_update(message(app, "aktivitetsplan"))
        await app.process_update(message(app, "/slett"))
    texts = request.texts()
    assert error_text() not in texts
    assert any("Kilder" in t for t in texts)
    assert texts[-1] == CATALOG.get("dialog.forgotten")
    assert dialog.store.get_user(f"tg:{PARENT}") is None


async def test_d6_a_locked_state_file_answers_within_a_bounded_time(settings, tmp_path, caplog):
    path = tmp_path / "state.sqlite3"
    store = SqliteStore(path, busy_timeout=0.3)
    store.get_user("x")
    dialog = Dialog(settings, FakeAnswerer(), load_flows(KNOWLEDGE / "flows"), CATALOG, store,
                    require_staff_proof=True)
    request = OfflineRequest()
    app = build_application(settings, dialog, request=request)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    try:
        async with app:
            started = time.monotonic()
            await app.process_update(press(app, "r|parent"))
            await app.process_update(message(app, "aktivitetsplan"))
            assert time.monotonic() - started < 2.0
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert error_text() not in request.texts() and any("Kilder" in t for t in request.texts())
    assert "move it away" not in caplog.text.lower()
    store._down_until = None  # (the pause after a failure is over)
    assert store.get_user(f"tg:{PARENT}").role == "parent"  # written once the lock was gone
    assert sqlite3.connect(path).execute("SELECT role FROM users").fetchall() == [("parent",)]


async def _serve_briefly(app, seconds: float = 0.3, until=None):
    """Serve for `seconds`, or, with `until`, until it holds (at most 10 s: a busy machine may be slow to start)."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop))
    await asyncio.sleep(seconds)
    for _ in range(500 if until is not None else 0):
        if until():
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_d5_start_up_retries_and_the_command_menu_is_optional(settings, tmp_path, fast_retries, caplog):
    request = OfflineRequest()
    request.fail("getMe", 0, 502)  # reset, then bad gateway, then fine
    request.fail("setMyCommands", *[500] * 20)
    request.fail("deleteWebhook", 500)
    app = build_application(settings, make_dialog(settings, tmp_path), request=request)
    with caplog.at_level(logging.WARNING):
        await _serve_briefly(app, until=lambda: request.named("getUpdates"))
    assert len(request.named("getMe")) == 3
    assert request.named("getUpdates")  # it polled
    assert "command menu could not be set" in caplog.text


async def test_d5_a_rejected_token_stops_with_one_clear_error(settings, tmp_path, fast_retries):
    request = OfflineRequest()
    request.fail("getMe", 401)
    app = build_application(settings, make_dialog(settings, tmp_path), request=request)
    with pytest.raises(ConfigError, match="KAP12_TELEGRAM_TOKEN"):
        await asyncio.wait_for(serve(app, asyncio.Event()), 5)
    # … and also when the token is revoked while the bot runs.
    request = OfflineRequest()
    app = build_application(settings, make_dialog(settings, tmp_path), request=request)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop))
    await asyncio.sleep(0.2)
    request.fail("getUpdates", *[401] * 5)
    with pytest.raises(ConfigError, match="401"):
        await asyncio.wait_for(task, 10)


async def test_d5_an_unreachable_api_gives_up_with_a_message(settings, tmp_path, fast_retries, monkeypatch):
    monkeypatch.setattr(telegram_bot, "STARTUP_ATTEMPTS", 3)
    request = OfflineRequest()
    request.fail("getMe", 0, 0, 0)
    app = build_application(settings, make_dialog(settings, tmp_path), request=request)
    with pytest.raises(Kap12Error, match="getMe failed 3 times"):
        await asyncio.wait_for(serve(app, asyncio.Event()), 5)


async def test_d9_start_takes_back_proofs_that_no_longer_hold(settings, tmp_path):
    dialog = make_dialog(settings, tmp_path)
    dialog.staff.prove_by_allow_list("tg:555")  # once on the allow-list, no longer
    dialog.staff.prove_by_allow_list(f"tg:{STAFF}")
    app = build_application(settings, dialog, request=OfflineRequest())
    await _serve_briefly(app)
    assert dialog.store.get_user("tg:555").staff_verified is False
    assert dialog.store.get_user(f"tg:{STAFF}").staff_verified is True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_d13_webhook_bodies_that_are_not_updates_get_400_and_size_is_capped(bot, caplog):
    app, request, dialog = bot
    port = _free_port()
    server = webhook_server(app, "/telegram", "good_secret")
    server.listen(port, address="127.0.0.1")
    url = f"http://127.0.0.1:{port}/telegram"
    headers = {"X-Telegram-Bot-Api-Secret-Token": "good_secret", "Content-Type": "application/json"}
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for body in (b"null", b"[1, 2]", b'"x"', b'{"message": "x"}', b"[" * 100_000 + b"]" * 100_000,
                         b'{"update_id": true}', b"\xff\xfe not json"):
                response = await client.post(url, content=body, headers=headers)
                assert response.status_code == 400, body[:20]
                assert "Traceback" not in response.text
            try:  # over the cap: tornado refuses it before reading it (a status or a closed connection)
                response = await client.post(url, content=b'{"update_id": 1, "x": "' + b"a" * 2_000_000 + b'"}',
                                             headers=headers)
                assert response.status_code in (400, 413)
            except httpx.TransportError:
                pass
            response = await client.post(url, content=json.dumps(_raw_message(77, "hei")), headers={
                **headers, "X-Telegram-Bot-Api-Secret-Token": "wrong"})
            assert response.status_code == 403
            # A real update is queued; one this library cannot read is skipped with 200 (no redelivery loop).
            response = await client.post(url, content=json.dumps(_raw_message(78, "aktivitetsplan")), headers=headers)
            assert response.status_code == 200 and app.update_queue.qsize() == 1
            broken = {"update_id": 79, "message": {"message_id": 1, "date": 0, "poll": {"id": "p"}}}
            response = await client.post(url, content=json.dumps(broken), headers=headers)
            assert response.status_code == 200 and app.update_queue.qsize() == 1
            response = await client.get(f"http://127.0.0.1:{port}/healthz")
            assert response.status_code == 503  # initialized, not started
    finally:
        server.stop()
        await server.close_all_connections()
    assert "Traceback" not in caplog.text


def test_d4_the_core_runs_in_a_bounded_pool(settings, tmp_path):
    app = build_application(settings, make_dialog(settings, tmp_path), request=OfflineRequest())
    assert app.bot_data["pool"]._max_workers == telegram_bot.CORE_THREADS >= 2
    assert isinstance(app.update_processor, ChatOrderedProcessor)
    assert threading.current_thread() is threading.main_thread()
