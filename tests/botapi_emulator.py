"""A small Telegram Bot API server on loopback for end-to-end tests.

It implements the methods kap12-bot uses (getMe, getUpdates, sendMessage, editMessageText,
editMessageReplyMarkup, answerCallbackQuery, setMyCommands, getMyCommands, deleteWebhook, setWebhook) and
validates requests the way Telegram does, so a rendering bug fails the test instead of failing in production:

- text: 1-4096 characters (UTF-16 code units) after entity parsing, leading/trailing whitespace stripped;
- HTML parse mode: only Telegram's tags (b, strong, i, em, u, ins, s, strike, del, a, code, pre, blockquote,
  tg-spoiler, span class="tg-spoiler"), balanced and properly nested, entities &lt; &gt; &amp; &quot; and
  numeric ones. It is stricter than Telegram on purpose: a bare "&" or ">" is rejected too, so a piece of
  text that was never escaped is caught even where Telegram would let it pass;
- inline keyboards: an array of arrays of buttons, each with non-empty text and exactly one action;
  callback_data 1-64 bytes; http(s)/tg URLs;
- callback queries can be answered once; messages are edited only by the bot that sent them, and an edit
  that changes nothing is refused ("message is not modified").

Errors come back as Telegram's JSON ({"ok": false, "error_code": 400, "description": "Bad Request: ..."}),
which python-telegram-bot raises as BadRequest. The server binds 127.0.0.1 on a free port, never waits
longer than `max_poll_timeout` in getUpdates, and shuts itself down after `lifetime` seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

import tornado.httpserver
import tornado.netutil
import tornado.web

MAX_TEXT_LENGTH = 4096  # Telegram's documented limit, written out: the emulator must not trust the bot's constants
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
MAX_BUTTONS = 100

_SUPPORTED_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_TAG_NAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_ATTR_RE = re.compile(r"\s*([a-zA-Z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+)))?")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


class ApiError(Exception):
    """A Bot API error answer."""

    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code = code
        self.description = description


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(source: str) -> tuple[str, list[dict]]:
    """Parse Telegram HTML into (plain text, entities) or raise ApiError like Telegram does."""
    out: list[str] = []
    entities: list[dict] = []
    stack: list[tuple[str, int, dict]] = []  # (tag, utf16 offset, attributes)
    offset = 0  # UTF-16 length of the text produced so far
    i = 0

    def byte_offset(pos: int) -> int:
        return len(source[:pos].encode())

    def emit(text: str) -> None:
        nonlocal offset
        out.append(text)
        offset += utf16_len(text)

    while i < len(source):
        ch = source[i]
        if ch == "&":
            match = _ENTITY_RE.match(source, i)
            if not match:
                raise bad_request(f"can't parse entities: unescaped \"&\" at byte offset {byte_offset(i)}")
            named, dec, hexa = match.groups()
            if named:
                emit(_NAMED_ENTITIES[named])
            else:
                code = int(dec) if dec else int(hexa, 16)
                if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise bad_request(
                        f"can't parse entities: invalid character reference at byte offset {byte_offset(i)}"
                    )
                emit(chr(code))
            i = match.end()
        elif ch == ">":
            raise bad_request(f"can't parse entities: unescaped \">\" at byte offset {byte_offset(i)}")
        elif ch == "<":
            end = source.find(">", i)
            if end < 0:
                raise bad_request(f"can't parse entities: unclosed start tag at byte offset {byte_offset(i)}")
            if source.startswith("</", i):
                name = source[i + 2 : end].strip().lower()
                if not stack:
                    raise bad_request(f"can't parse entities: unexpected end tag at byte offset {byte_offset(i)}")
                open_name, start, attrs = stack.pop()
                if name != open_name:
                    raise bad_request(
                        f"can't parse entities: unmatched end tag at byte offset {byte_offset(i)}, "
                        f'expected "</{open_name}>", found "</{name}>"'
                    )
                if offset > start:
                    entity = {"type": _SUPPORTED_TAGS[open_name], "offset": start, "length": offset - start}
                    if open_name == "a":
                        entity["url"] = attrs["href"]
                    entities.append(entity)
                i = end + 1
                continue
            match = _TAG_NAME_RE.match(source, i + 1)
            if not match:
                raise bad_request(f"can't parse entities: unsupported start tag at byte offset {byte_offset(i)}")
            name = match.group(0).lower()
            if name not in _SUPPORTED_TAGS:
                raise bad_request(
                    f'can\'t parse entities: unsupported start tag "{name}" at byte offset {byte_offset(i)}'
                )
            attrs = _parse_attributes(source[match.end() : end], byte_offset(i))
            _check_tag(name, attrs, [t for t, _, _ in stack], byte_offset(i))
            stack.append((name, offset, attrs))
            i = end + 1
        else:
            emit(ch)
            i += 1
    if stack:
        raise bad_request(f'can\'t parse entities: can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _parse_attributes(text: str, at: int) -> dict:
    attrs = {}
    pos = 0
    text = text.rstrip("/")
    while pos < len(text) and text[pos:].strip():
        match = _ATTR_RE.match(text, pos)
        if not match or match.end() == pos:
            raise bad_request(f"can't parse entities: bad attribute in tag at byte offset {at}")
        name, *values = match.groups()
        value = next((v for v in values if v is not None), "")
        if "&" in value:
            value, _ = parse_html(value)  # attribute values use the same entities
        attrs[name.lower()] = value
        pos = match.end()
    return attrs


def _check_tag(name: str, attrs: dict, open_tags: list[str], at: int) -> None:
    if any(t in ("code", "pre") for t in open_tags) and not (name == "code" and open_tags[-1:] == ["pre"]):
        raise bad_request(f"can't parse entities: tags inside <code>/<pre> are not allowed (byte offset {at})")
    if name == "a":
        if "a" in open_tags:
            raise bad_request(f"can't parse entities: nested links at byte offset {at}")
        href = attrs.get("href", "")
        if not href.startswith(("http://", "https://", "tg://")):
            raise bad_request(f"can't parse entities: link without a valid href at byte offset {at}")
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise bad_request(f'can\'t parse entities: tag "span" must have class "tg-spoiler" at byte offset {at}')


def check_text(text: Any, parse_mode: str | None) -> tuple[str, list[dict]]:
    """Validate message text as sendMessage/editMessageText do; return (visible text, entities)."""
    if not isinstance(text, str):
        raise bad_request("message text is empty")
    if parse_mode in (None, ""):
        plain, entities = text, []
    elif parse_mode.upper() == "HTML":
        plain, entities = parse_html(text)
    else:
        raise bad_request(f"unsupported parse_mode {parse_mode!r} in this emulator")
    # Telegram strips surrounding whitespace and shifts entities; the bot never produces that case.
    stripped = plain.strip()
    if not stripped:
        raise bad_request("message text is empty")
    if utf16_len(stripped) > MAX_TEXT_LENGTH:
        raise bad_request("message is too long")
    return plain, entities


def check_reply_markup(raw: Any) -> dict | None:
    """Validate an InlineKeyboardMarkup like Telegram does."""
    if raw in (None, ""):
        return None
    markup = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        raise bad_request("only inline keyboards are supported by this emulator")
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays')
    count = 0
    for row in rows:
        for button in row:
            count += 1
            if not isinstance(button, dict):
                raise bad_request("can't parse inline keyboard button: InlineKeyboardButton should be an Object")
            text = button.get("text")
            if not isinstance(text, str) or not text.strip():
                raise bad_request("BUTTON_TEXT_INVALID")
            actions = [k for k in ("callback_data", "url", "switch_inline_query", "pay") if k in button]
            if not actions:
                raise bad_request(
                    "can't parse inline keyboard button: text buttons are unallowed in the inline keyboard"
                )
            if len(actions) > 1:
                raise bad_request("can't parse inline keyboard button: more than one action in a button")
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                    raise bad_request("BUTTON_DATA_INVALID")
            if "url" in button and not str(button["url"]).startswith(("http://", "https://", "tg://")):
                raise bad_request("BUTTON_URL_INVALID")
    if count > MAX_BUTTONS:
        raise bad_request("reply markup is too long")
    return {"inline_keyboard": rows} if rows else None


@dataclass
class Sent:
    """A message the bot sent (and its later edits)."""

    message_id: int
    chat_id: int
    text: str  # visible text after entity parsing
    html: str  # what the bot sent
    entities: list[dict]
    reply_markup: dict | None
    edits: int = 0

    def callback_data(self) -> list[str]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [b["callback_data"] for row in rows for b in row if "callback_data" in b]

    def button(self, label_part: str) -> str:
        """callback_data of the first button whose label contains `label_part`."""
        for row in (self.reply_markup or {}).get("inline_keyboard", []):
            for b in row:
                if label_part.lower() in b["text"].lower() and "callback_data" in b:
                    return b["callback_data"]
        raise AssertionError(f"no button with {label_part!r} in {self.reply_markup}")

    def labels(self) -> list[str]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [b["text"] for row in rows for b in row]


@dataclass
class Call:
    method: str
    params: dict
    error: str | None = None


@dataclass
class _State:
    updates: list[dict] = field(default_factory=list)
    chats: dict[int, dict] = field(default_factory=dict)
    sent: dict[tuple[int, int], Sent] = field(default_factory=dict)
    callbacks: dict[str, bool] = field(default_factory=dict)  # id → answered
    commands: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    webhook: dict | None = None


class BotApiEmulator:
    """Loopback Bot API server plus helpers to play the users' side.

    Use as `async with BotApiEmulator() as api:` and point the bot at `api.base_url`.
    """

    def __init__(
        self,
        token: str = "123456:TEST-token",
        bot_username: str = "kap12_test_bot",
        max_poll_timeout: float = 0.5,
        lifetime: float = 120.0,
    ):
        self.token = token
        self.bot_user = {"id": 123456, "is_bot": True, "first_name": "kap12", "username": bot_username,
                         "can_join_groups": True, "can_read_all_group_messages": False,
                         "supports_inline_queries": False}
        self.max_poll_timeout = max_poll_timeout
        self.lifetime = lifetime
        self.state = _State()
        self.calls: list[Call] = []
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._poll_generation = 0
        self._server: tornado.httpserver.HTTPServer | None = None
        self._killer: asyncio.TimerHandle | None = None
        self.port = 0
        self._failures: dict[str, list[int]] = {}  # method (lower case) → HTTP codes to answer next

    # --- server life ----------------------------------------------------------------------------
    async def start(self) -> BotApiEmulator:
        app = tornado.web.Application([(r"/bot([^/]+)/([A-Za-z]+)", _MethodHandler, {"api": self})],
                                      log_function=lambda handler: None)  # calls are in self.calls
        sockets = tornado.netutil.bind_sockets(0, address="127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._server = tornado.httpserver.HTTPServer(app)
        self._server.add_sockets(sockets)
        self._killer = asyncio.get_running_loop().call_later(self.lifetime, lambda: asyncio.ensure_future(self.stop()))
        return self

    async def stop(self) -> None:
        if self._killer:
            self._killer.cancel()
        if self._server:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None
        async with self._changed:
            self._changed.notify_all()

    async def __aenter__(self) -> BotApiEmulator:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # --- the users' side ------------------------------------------------------------------------
    def user(self, user_id: int, first_name: str = "Test", language_code: str = "nb") -> dict:
        return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code}

    def private_chat(self, user: dict) -> dict:
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        self.state.chats[chat["id"]] = chat
        return chat

    def group_chat(self, chat_id: int = -100123, title: str = "Foreldre 5B") -> dict:
        chat = {"id": chat_id, "type": "supergroup", "title": title}
        self.state.chats[chat_id] = chat
        return chat

    def _entities_for(self, text: str) -> list[dict]:
        """Entities Telegram's servers would add to a user's text: a leading command and @mentions."""
        entities = []
        command = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
        if command:
            entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(command.group(0))})
        for mention in re.finditer(r"(?<![\w/])@[A-Za-z0-9_]{5,32}", text):
            entities.append({"type": "mention", "offset": utf16_len(text[: mention.start()]),
                             "length": utf16_len(mention.group(0))})
        return entities

    def _message(self, user: dict, chat: dict | None, **content) -> dict:
        chat = chat or self.private_chat(user)
        self.state.chats[chat["id"]] = chat
        return {"message_id": next(self._ids), "date": int(time.time()), "chat": chat, "from": user, **content}

    def _push(self, update: dict) -> int:
        update_id = next(self._update_ids)
        self.state.updates.append({"update_id": update_id, **update})
        asyncio.ensure_future(self._notify())
        return update_id

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def send_text(self, user: dict, text: str, chat: dict | None = None) -> tuple[int, dict]:
        """A user writes `text`; returns (update id, the message)."""
        message = self._message(user, chat, text=text)
        entities = self._entities_for(text)
        if entities:
            message["entities"] = entities
        return self._push({"message": message}), message

    def send_sticker(self, user: dict, chat: dict | None = None) -> int:
        sticker = {"file_id": "CAACAgIAAx", "file_unique_id": "AgADs", "type": "regular", "width": 512,
                   "height": 512, "is_animated": False, "is_video": False, "emoji": "😀"}
        return self._push({"message": self._message(user, chat, sticker=sticker)})

    def send_photo(self, user: dict, chat: dict | None = None, caption: str | None = None) -> int:
        photo = [{"file_id": "AgACAgIAAx", "file_unique_id": "AQADs", "width": 90, "height": 90}]
        extra = {"caption": caption} if caption else {}
        return self._push({"message": self._message(user, chat, photo=photo, **extra)})

    def send_voice(self, user: dict, chat: dict | None = None) -> int:
        voice = {"file_id": "AwACAgIAAx", "file_unique_id": "AgADv", "duration": 3}
        return self._push({"message": self._message(user, chat, voice=voice)})

    def push_raw(self, update: dict) -> int:
        """Any update as raw JSON (e.g. one a library version cannot read); returns its update id."""
        return self._push(update)

    def fail(self, method: str, *codes: int) -> None:
        """The next calls of `method` answer with these HTTP codes, one per call (fault injection)."""
        self._failures.setdefault(method.lower(), []).extend(codes)

    def edit_text(self, message: dict, new_text: str) -> int:
        edited = {**message, "text": new_text, "edit_date": int(time.time())}
        return self._push({"edited_message": edited})

    def press(self, user: dict, sent: Sent, data: str) -> tuple[int, str]:
        """A user presses a button with `data` under `sent` (data may be forged); returns (update id, query id)."""
        query_id = str(next(self._ids))
        self.state.callbacks[query_id] = False
        query = {"id": query_id, "from": user, "chat_instance": f"ci{sent.chat_id}", "data": data,
                 "message": self._message_json(sent)}
        return self._push({"callback_query": query}), query_id

    # --- what the bot did -------------------------------------------------------------------------
    def sent_to(self, chat_id: int) -> list[Sent]:
        return [m for (c, _), m in sorted(self.state.sent.items(), key=lambda kv: kv[0][1]) if c == chat_id]

    def answered(self, query_id: str) -> bool:
        return self.state.callbacks.get(query_id, False)

    def errors(self) -> list[Call]:
        return [c for c in self.calls if c.error]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until predicate() is true; fail the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the bot")
            await asyncio.sleep(0.01)

    # --- methods ----------------------------------------------------------------------------------
    def _message_json(self, sent: Sent) -> dict:
        message = {"message_id": sent.message_id, "date": int(time.time()), "chat": self.state.chats[sent.chat_id],
                   "from": self.bot_user, "text": sent.text}
        if sent.entities:
            message["entities"] = sent.entities
        if sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        if sent.edits:
            message["edit_date"] = int(time.time())
        return message

    async def call(self, method: str, params: dict) -> Any:
        failures = self._failures.get(method.lower())
        if failures:
            code = failures.pop(0)
            raise ApiError(code, "Unauthorized" if code == 401 else f"Internal Server Error (injected {code})")
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            raise ApiError(404, "Not Found")
        return await handler(params)

    async def _m_getme(self, params: dict) -> dict:
        return self.bot_user

    async def _m_deletewebhook(self, params: dict) -> bool:
        self.state.webhook = None
        return True

    async def _m_setwebhook(self, params: dict) -> bool:
        if not str(params.get("url", "")).startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise bad_request("bad webhook: secret token contains unallowed characters")
        self.state.webhook = dict(params)
        return True

    async def _m_setmycommands(self, params: dict) -> bool:
        commands = _json(params.get("commands"))
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("commands must be an array of at most 100 BotCommand")
        for command in commands:
            if not _COMMAND_RE.match(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = (json.dumps(_json(params.get("scope")) or {"type": "default"}, sort_keys=True),
               params.get("language_code", ""))
        self.state.commands[key] = commands
        return True

    async def _m_getmycommands(self, params: dict) -> list:
        key = (json.dumps(_json(params.get("scope")) or {"type": "default"}, sort_keys=True),
               params.get("language_code", ""))
        return self.state.commands.get(key, [])

    def _chat(self, params: dict) -> dict:
        try:
            chat_id = int(params.get("chat_id"))
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None
        if chat_id not in self.state.chats:
            raise bad_request("chat not found")
        return self.state.chats[chat_id]

    async def _m_sendmessage(self, params: dict) -> dict:
        chat = self._chat(params)
        text, entities = check_text(params.get("text"), params.get("parse_mode"))
        markup = check_reply_markup(params.get("reply_markup"))
        sent = Sent(next(self._ids), chat["id"], text, params["text"], entities, markup)
        self.state.sent[(chat["id"], sent.message_id)] = sent
        return self._message_json(sent)

    def _sent(self, params: dict) -> Sent:
        if "inline_message_id" in params:
            raise bad_request("inline messages are not supported by this emulator")
        chat = self._chat(params)
        sent = self.state.sent.get((chat["id"], int(params.get("message_id", 0))))
        if sent is None:
            raise bad_request("message to edit not found")
        return sent

    async def _m_editmessagetext(self, params: dict) -> dict:
        sent = self._sent(params)
        text, entities = check_text(params.get("text"), params.get("parse_mode"))
        markup = check_reply_markup(params.get("reply_markup"))
        if (text, entities, markup) == (sent.text, sent.entities, sent.reply_markup):
            raise bad_request("message is not modified: specified new message content and reply markup are "
                              "exactly the same as a current content and reply markup of the message")
        sent.text, sent.html, sent.entities, sent.reply_markup = text, params["text"], entities, markup
        sent.edits += 1
        return self._message_json(sent)

    async def _m_editmessagereplymarkup(self, params: dict) -> dict:
        sent = self._sent(params)
        markup = check_reply_markup(params.get("reply_markup"))
        if markup == sent.reply_markup:
            raise bad_request("message is not modified: specified new message content and reply markup are "
                              "exactly the same as a current content and reply markup of the message")
        sent.reply_markup = markup
        sent.edits += 1
        return self._message_json(sent)

    async def _m_answercallbackquery(self, params: dict) -> bool:
        query_id = str(params.get("callback_query_id"))
        if self.state.callbacks.get(query_id, True):
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        if len(str(params.get("text", ""))) > MAX_CALLBACK_ANSWER:
            raise bad_request("MESSAGE_TOO_LONG")
        self.state.callbacks[query_id] = True
        return True

    async def _m_getupdates(self, params: dict) -> list:
        offset = int(params.get("offset", 0) or 0)
        limit = min(max(int(params.get("limit", 100) or 100), 1), 100)
        timeout = min(float(params.get("timeout", 0) or 0), self.max_poll_timeout)
        allowed = _json(params.get("allowed_updates"))
        if offset:
            # Asking from `offset` confirms every earlier update, as with Telegram.
            self.state.updates = [u for u in self.state.updates if u["update_id"] >= offset]
        self._poll_generation += 1
        generation = self._poll_generation

        def ready() -> list:
            return [u for u in self.state.updates if not allowed or any(k in u for k in allowed)][:limit]

        deadline = time.monotonic() + timeout
        async with self._changed:
            self._changed.notify_all()  # wakes an older poll so it can answer 409 Conflict
            while not ready() and self._server is not None:
                if generation != self._poll_generation:
                    raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure that "
                                        "only one bot instance is running")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except asyncio.TimeoutError:
                    break
        return ready()


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request("can't parse JSON") from None
    return value


class _MethodHandler(tornado.web.RequestHandler):
    """POST/GET /bot<token>/<method> with form, query or JSON parameters."""

    def initialize(self, api: BotApiEmulator) -> None:
        self.api = api

    async def get(self, token: str, method: str) -> None:
        await self.post(token, method)

    async def post(self, token: str, method: str) -> None:
        params: dict[str, Any] = {k: v.decode() if isinstance(v, bytes) else v
                                  for k, v in parse_qsl(self.request.query)}
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.startswith("application/json") and self.request.body:
            params.update(json.loads(self.request.body))
        else:
            params.update({k: v[-1].decode() for k, v in self.request.body_arguments.items()})
        call = Call(method, params)
        self.api.calls.append(call)
        try:
            if token != self.api.token:
                raise ApiError(401, "Unauthorized")
            result = await self.api.call(method, params)
            body = {"ok": True, "result": result}
            self.set_status(200)
        except ApiError as exc:
            call.error = exc.description
            body = {"ok": False, "error_code": exc.code, "description": exc.description}
            self.set_status(exc.code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))
