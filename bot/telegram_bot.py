"""The Telegram channel: a thin python-telegram-bot adapter over the conversation core (`bot.dialog`).

Handlers turn updates into `Dialog` calls with the user id "tg:<telegram id>" and send back the rendered
replies; the rules (roles, flows, answers, stale buttons) all live in the core. What belongs to Telegram
stays here: group-chat manners (answers in groups are public, whoever asks), non-text messages, edited
messages, a per-user rate limit, staff proof by an allow-list of Telegram ids, the command menu, polling or
webhook, and one central error handler.

Many users at once: updates are handled concurrently, one chat's updates in order (`ChatOrderedProcessor`),
and the CPU-bound core runs in a small thread pool so the event loop stays free to fetch and send. A send
that fails is retried and then logged; it never turns work that was done into "something went wrong".

Privacy: message text is never logged (unless KAP12_LOG_MESSAGE_TEXT is set for debugging); logs carry
update ids and chat types only, and a filter keeps the libraries' log records free of update content.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime as dtm
import enum
import functools
import hmac
import json
import logging
import os
import re
import secrets
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlparse

import tornado.httpserver
import tornado.web
from telegram import BotCommand, LinkPreviewOptions, Message, MessageEntity, Update
from telegram.constants import BotCommandLimit, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    ExtBot,
    MessageHandler,
    filters,
)
from telegram._utils.defaultvalue import DEFAULT_NONE, DefaultValue
from telegram.request import BaseRequest, HTTPXRequest

from bot.dialog import COMMAND_ALIASES, Dialog, build_dialog
from bot.errors import ConfigError, Kap12Error
from bot.replies import Reply
from bot.staff_proof import public_only
from bot.telegram_render import Labels, parse_feedback, render_reply, without_feedback_row

log = logging.getLogger(__name__)

# Shown in Telegram's command menu, in this order (Telegram commands are ASCII, so /språk is /sprak).
MENU_COMMANDS = ("start", "hjelp", "meld", "brev", "kontakt", "notat", "fare", "rolle", "sprak", "kilder", "personvern",
                 "slett")
# Commands that start or steer a walkthrough, or show what is stored about someone; in a group they only
# point to a private chat.
PRIVATE_ONLY_COMMANDS = frozenset({"start", "meld", "rolle", "sprak", "meny", "personvern", "brev", "notat"})
NEVER_RATE_LIMITED = frozenset({"slett"})  # deleting one's data always works
ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]
_DEEP_LINK_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

MAX_CONCURRENT_UPDATES = 512  # updates in flight; one chat's wait in line for that chat only
CORE_THREADS = max(2, os.cpu_count() or 2)  # the core is CPU-bound; more threads than cores only queue
SEND_ATTEMPTS = 3  # tries per message before it is given up (and logged)
SEND_BACKOFF = 0.5  # seconds before the second try; doubled for each further one
MAX_RETRY_AFTER = 30.0  # seconds; a longer flood wait gives the message up
STARTUP_ATTEMPTS = 8  # tries per start-up call: waits 1, 2, 4, 8, 16, 30, 30 s between them
STARTUP_FIRST_WAIT = 1.0  # seconds before the second try of a start-up call
MAX_WEBHOOK_BODY = 1024 * 1024  # bytes; a Telegram update is a few kilobytes


# -- logging: no message text from the libraries either ------------------------------------------------------
_LIBRARY_LOGGERS = ("telegram", "httpx", "httpcore", "tornado", "apscheduler")
_SAFE_ARGS = (int, float, bool, type(None), enum.Enum, TelegramError, OSError, asyncio.TimeoutError)


class LibraryLogFilter(logging.Filter):
    """Withholds what the libraries' log records may carry about users (update dumps, message text).

    Only numbers and error objects stay; other values become "<withheld>" unless `log_message_text` is
    set. The bot token is cut out of every record in either case (httpx logs request URLs).
    """

    def __init__(self, token: str = "", log_message_text: bool = False):
        super().__init__()
        self.token = token
        self.log_message_text = log_message_text

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_LIBRARY_LOGGERS) and not self.log_message_text and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            try:
                record.msg = str(record.msg) % tuple(a if isinstance(a, _SAFE_ARGS) else "<withheld>" for a in args)
            except (TypeError, ValueError, KeyError):
                record.msg = f"{record.msg} <details withheld>"
            record.args = None
        if self.token:
            message = record.getMessage()
            if self.token in message:
                record.msg, record.args = message.replace(self.token, "<token>"), None
        return True


def install_log_filter(settings) -> LibraryLogFilter:
    """Put `LibraryLogFilter` on every library logger and on the root handlers (records that propagate)."""
    token = settings.telegram_token.get_secret_value().strip() if settings.telegram_token else ""
    log_filter = LibraryLogFilter(token, bool(settings.log_message_text))
    names = [name for name in list(logging.root.manager.loggerDict) if name.startswith(_LIBRARY_LOGGERS)]
    for name in (*_LIBRARY_LOGGERS, *names):
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, LibraryLogFilter)]:
            logger.removeFilter(old)
        logger.addFilter(log_filter)
    for handler in logging.root.handlers:
        for old in [f for f in handler.filters if isinstance(f, LibraryLogFilter)]:
            handler.removeFilter(old)
        handler.addFilter(log_filter)
    return log_filter


# -- the bot: updates the library cannot read are skipped, never retried forever ------------------------------
class SafeBot(ExtBot):
    """An ExtBot whose getUpdates parses each update on its own.

    python-telegram-bot parses a whole batch at once: one update it cannot read (e.g. a payload from a
    newer or older Bot API server) fails the batch, is logged with everyone's messages at CRITICAL, and
    the offset never moves, so the bot hears nobody again. Here such an update is logged by id and type
    only and confirmed (skipped); the others are handled. A 401 calls the `watch_token` callback.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._skip_to = 0
        self._on_invalid_token: Callable[[InvalidToken], None] | None = None

    async def get_updates(self, offset=None, limit=None, timeout=None, allowed_updates=None, *,
                          read_timeout=DEFAULT_NONE, write_timeout=DEFAULT_NONE, connect_timeout=DEFAULT_NONE,
                          pool_timeout=DEFAULT_NONE, api_kwargs=None) -> tuple[Update, ...]:
        if self._skip_to and (offset is None or offset < self._skip_to):
            offset = self._skip_to  # confirms the skipped updates, as Telegram does for lower ids
        data = {"timeout": timeout, "offset": offset, "limit": limit, "allowed_updates": allowed_updates}
        # As Bot.get_updates: the long-poll time is added to the read timeout.
        seconds = timeout.total_seconds() if isinstance(timeout, dtm.timedelta) else (timeout or 0)
        base = self._request[0].read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        wait = (base or 0) + seconds
        try:
            result = await self._post("getUpdates", data, read_timeout=wait,
                                      write_timeout=write_timeout, connect_timeout=connect_timeout,
                                      pool_timeout=pool_timeout, api_kwargs=api_kwargs)
        except InvalidToken as exc:
            if self._on_invalid_token is not None:
                self._on_invalid_token(exc)
            raise
        updates = []
        for raw in result or ():
            update = self._parse(raw)
            if update is not None:
                updates.append(update)
        return tuple(updates)

    def watch_token(self, callback: Callable[[InvalidToken], None]) -> None:
        """Call `callback` when getUpdates answers 401 (the token was revoked while running)."""
        self._on_invalid_token = callback

    def _parse(self, raw) -> Update | None:
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        try:
            update = Update.de_json(raw, self)
            if update is None:
                raise ValueError("empty update")
            self.insert_callback_data(update)
            return update
        except Exception as exc:  # whatever the library raises for a payload it does not know
            kind = next((key for key in raw if key != "update_id"), "?") if isinstance(raw, dict) else "?"
            log.warning("skipped update %s (%s): this version of python-telegram-bot cannot read it (%s)",
                        update_id if isinstance(update_id, int) else "?", str(kind)[:40], exc.__class__.__name__)
            if isinstance(update_id, int):
                self._skip_to = max(self._skip_to, update_id + 1)
            return None


# -- concurrency: all chats at once, each chat in order -------------------------------------------------------
class _Stopped(Exception):
    """The bot was asked to stop while it waited to retry a start-up call."""


class KeyedLocks:
    """One asyncio lock per key, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self):
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key):
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Updates from different chats run concurrently; updates from one chat run one after another, in order.

    A busy group (or one user's flood, or Telegram's per-group send limit) then only delays that chat.
    """

    def __init__(self, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES):
        super().__init__(max_concurrent_updates)
        self.chats = KeyedLocks()

    async def do_process_update(self, update: object, coroutine: Awaitable) -> None:
        async with self.chats.hold(_order_key(update)):
            await coroutine

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def _order_key(update: object):
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return ("chat", update.effective_chat.id)
        if update.effective_user is not None:
            return ("user", update.effective_user.id)
    return ("other", None)


class UserRateLimit:
    """A sliding window per user: at most `per_minute` updates in any 60 seconds.

    The first update over the limit gets one notice that messages are being skipped; later ones in the same
    window are dropped silently, so a flood never makes the bot flood back.
    """

    def __init__(self, per_minute: int, window: float = 60.0, clock=time.monotonic):
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1 (KAP12_RATE_LIMIT_PER_MINUTE)")
        self.per_minute = per_minute
        self.window = window
        self.clock = clock
        self._hits: dict[int, deque[float]] = {}
        self._warned: dict[int, float] = {}

    def check(self, user_id: int) -> str:
        """Record one update; returns "ok", "warn" (tell the user once) or "drop"."""
        now = self.clock()
        hits = self._hits.setdefault(user_id, deque())
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(self._hits) > 10_000:
            self._forget_idle(now)
        if len(hits) < self.per_minute:
            hits.append(now)
            self._warned.pop(user_id, None)
            return "ok"
        if user_id in self._warned and now - self._warned[user_id] < self.window:
            return "drop"
        self._warned[user_id] = now
        return "warn"

    def _forget_idle(self, now: float) -> None:
        for user_id in [u for u, h in self._hits.items() if not h or now - h[-1] >= self.window]:
            self._hits.pop(user_id, None)
            self._warned.pop(user_id, None)


# -- wiring -------------------------------------------------------------------------------------------------
def build_application(settings, dialog: Dialog | None = None, *, request: BaseRequest | None = None) -> Application:
    """The python-telegram-bot Application with every handler registered.

    Args:
        settings: `bot.config.Settings`; needs telegram_token, uses telegram_api_url (a self-hosted Bot API
            or a test emulator), staff_user_ids, rate_limit_per_minute, log_message_text.
        dialog: the conversation core; None builds the real one from settings.
        request: a custom request object for all Bot API calls (tests use one that never touches the network).

    Raises:
        ConfigError: no token configured.
    """
    if settings.telegram_token is None or not settings.telegram_token.get_secret_value().strip():
        raise ConfigError("KAP12_TELEGRAM_TOKEN is not set. Get a token from @BotFather and put it in the "
                          "environment or .env.")
    install_log_filter(settings)
    dialog = dialog or build_dialog(settings, require_staff_proof=True)
    bot = SafeBot(
        settings.telegram_token.get_secret_value().strip(),
        base_url=settings.telegram_api_url,
        request=request or HTTPXRequest(connection_pool_size=256),  # sends to many chats at once
        get_updates_request=request or HTTPXRequest(),
        defaults=Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)),
        rate_limiter=AIORateLimiter(max_retries=2),
    )
    application = (
        Application.builder().bot(bot).concurrent_updates(ChatOrderedProcessor()).build()
    )
    application.bot_data.update(
        dialog=dialog, settings=settings, limiter=UserRateLimit(settings.rate_limit_per_minute),
        users=KeyedLocks(),
        pool=concurrent.futures.ThreadPoolExecutor(CORE_THREADS, thread_name_prefix="kap12-core"),
    )
    # One handler per group wins, first match first: edited messages before anything that reads text.
    application.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, edited))
    application.add_handler(CommandHandler("start", start, filters=filters.UpdateType.MESSAGE))
    application.add_handler(CommandHandler(MENU_COMMANDS[1:], command, filters=filters.UpdateType.MESSAGE))
    application.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND, command))
    application.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.TEXT, text))
    application.add_handler(
        MessageHandler(filters.UpdateType.MESSAGE & ~filters.TEXT & ~filters.StatusUpdate.ALL, not_text)
    )
    application.add_handler(CallbackQueryHandler(button))
    application.add_error_handler(on_error)
    return application


def bot_commands(dialog: Dialog, lang: str) -> list[BotCommand]:
    """The command menu in `lang`, descriptions from the catalogue."""
    commands = []
    for name in MENU_COMMANDS:
        description = dialog.catalog.get(f"telegram.cmd.{name}", lang)
        if not 1 <= len(description) <= BotCommandLimit.MAX_DESCRIPTION:
            raise ValueError(f"telegram.cmd.{name} ({lang}) must be 1-{BotCommandLimit.MAX_DESCRIPTION} characters")
        commands.append(BotCommand(name, description))
    return commands


async def register_commands(application: Application) -> None:
    """Publish the command menu: bokmål by default, English for users whose Telegram is in English."""
    dialog: Dialog = application.bot_data["dialog"]
    await application.bot.set_my_commands(bot_commands(dialog, "nb"))
    await application.bot.set_my_commands(bot_commands(dialog, "en"), language_code="en")


# -- helpers ------------------------------------------------------------------------------------------------
def _uid(update: Update) -> str:
    return f"tg:{update.effective_user.id}"


def _t(context: ContextTypes.DEFAULT_TYPE, key: str, lang: str, **fmt) -> str:
    return context.bot_data["dialog"].catalog.get(f"telegram.{key}", lang, **fmt)


def _is_private(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type == ChatType.PRIVATE


def _language_of(dialog: Dialog, user_id: str) -> str:
    """The user's language as the core stored it (bokmål for a new user, like the core)."""
    state = dialog.store.get_user(user_id)
    return state.language if state else "nb"


async def _core(context: ContextTypes.DEFAULT_TYPE, user_id: str, function: Callable, *args,
                public: bool = False) -> tuple:
    """Run a synchronous core call in the thread pool: (its result, the user's language afterwards).

    One user's calls never overlap (a user may write in a group and privately at once); `public` makes
    every answer public (group chats), whoever asks.
    """
    dialog: Dialog = context.bot_data["dialog"]

    def work():
        if public:
            with public_only():
                result = function(*args)
        else:
            result = function(*args)
        return result, _language_of(dialog, user_id)

    loop = asyncio.get_running_loop()
    async with context.bot_data["users"].hold(user_id):
        return await loop.run_in_executor(context.bot_data["pool"], contextvars.copy_context().run, work)


async def _deliver(what: str, update_id, call: Callable[[], Awaitable]):
    """One Bot API call, retried on network trouble and flood waits; None (logged) when it cannot be done.

    The work behind a reply is already done and stored, so a failed send is logged, never reported to the
    user as "something went wrong".
    """
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            return await call()
        except RetryAfter as exc:
            delay = exc.retry_after.total_seconds() if isinstance(exc.retry_after, dtm.timedelta) else exc.retry_after
            if delay > MAX_RETRY_AFTER or attempt == SEND_ATTEMPTS:
                break
            await asyncio.sleep(delay)
        except Forbidden as exc:  # the user blocked the bot, or it left the group
            log.info("%s in update %s: %s", what, update_id, exc.__class__.__name__)
            return None
        except BadRequest:  # Telegram refused what we sent: a bug on our side
            log.error("%s in update %s was refused", what, update_id, exc_info=True)
            return None
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            if attempt == SEND_ATTEMPTS:
                log.warning("%s in update %s failed %d times (%s); given up", what, update_id, attempt,
                            exc.__class__.__name__)
                return None
            await asyncio.sleep(SEND_BACKOFF * 2 ** (attempt - 1))
    log.warning("%s in update %s: Telegram asked to wait too long; given up", what, update_id)
    return None


async def _send(update: Update, context: ContextTypes.DEFAULT_TYPE, replies: list[Reply], lang: str) -> None:
    """Render and send the core's replies; in groups the core's buttons are left out."""
    if update.effective_chat is None:  # a press under an inline-mode message; this bot sends none
        return
    catalog = context.bot_data["dialog"].catalog
    labels = {lang: Labels.from_catalog(catalog, lang)}
    private = _is_private(update)
    chat_id = update.effective_chat.id
    for reply in replies:
        reply_lang = reply.lang or lang  # an English answer in a bokmål chat: "Sources", "Helpful"
        if reply_lang not in labels:
            labels[reply_lang] = Labels.from_catalog(catalog, reply_lang)
        for message in render_reply(reply, labels[reply_lang], with_buttons=private):
            await _deliver("sendMessage", update.update_id, functools.partial(
                context.bot.send_message, chat_id, message.html, reply_markup=message.keyboard))


async def _say(update: Update, context: ContextTypes.DEFAULT_TYPE, key: str, **fmt) -> None:
    """Send one of the adapter's own catalogue texts."""
    user_id = _uid(update)
    _, lang = await _core(context, user_id, lambda: None)
    await _send(update, context, [Reply(_t(context, key, lang, **fmt))], lang)


async def _answer_query(update: Update, text: str | None = None, show_alert: bool = False) -> None:
    """Answer a button press (stops the spinner); a failure here never stops the press from being handled."""
    query = update.callback_query
    await _deliver("answerCallbackQuery", update.update_id,
                   functools.partial(query.answer, text, show_alert=show_alert))


async def _admit(update: Update, context: ContextTypes.DEFAULT_TYPE, *, limited: bool = True) -> bool:
    """Rate limit and staff proof before the core sees an update; False = stop here."""
    user = update.effective_user
    if user is None or user.is_bot:
        return False
    verdict = context.bot_data["limiter"].check(user.id) if limited else "ok"
    if verdict != "ok":
        log.info("rate limit for update %s (%s)", update.update_id, verdict)
        if verdict == "warn":
            if update.callback_query:
                _, lang = await _core(context, _uid(update), lambda: None)
                await _answer_query(update, _t(context, "rate_limited", lang), show_alert=True)
            else:
                await _say(update, context, "rate_limited")
        elif update.callback_query:
            await _answer_query(update)
        return False
    if user.id in context.bot_data["settings"].staff_user_ids:
        dialog: Dialog = context.bot_data["dialog"]
        await _core(context, _uid(update), dialog.staff.prove_by_allow_list, _uid(update))
    return True


def _addressed_text(message: Message, bot_username: str, bot_id: int) -> str | None:
    """In a group: the text without our @mention if the message mentions or replies to the bot, else None."""
    mention = f"@{bot_username}".casefold()
    mentioned = any(
        value.casefold() == mention for value in message.parse_entities([MessageEntity.MENTION]).values()
    )
    replied = bool(message.reply_to_message and message.reply_to_message.from_user
                   and message.reply_to_message.from_user.id == bot_id)
    if not (mentioned or replied):
        return None
    return re.sub(re.escape(f"@{bot_username}"), " ", message.text or "", flags=re.IGNORECASE).strip()


async def _point_to_private(update: Update, context: ContextTypes.DEFAULT_TYPE, payload: str = "") -> None:
    link = f"https://t.me/{context.bot.username}"
    if payload and _DEEP_LINK_RE.match(payload):
        link += f"?start={payload}"
    await _say(update, context, "group_private", link=link)


def _log_text(context: ContextTypes.DEFAULT_TYPE, update: Update, text: str) -> None:
    if context.bot_data["settings"].log_message_text:
        log.info("update %s text: %r", update.update_id, text)


# -- handlers -----------------------------------------------------------------------------------------------
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start [payload]: greet and ask for a role, or open the flow a deep link names."""
    payload = " ".join(context.args or [])
    if not await _admit(update, context):
        return
    if not _is_private(update):
        await _point_to_private(update, context, payload)
        return
    dialog: Dialog = context.bot_data["dialog"]
    replies, lang = await _core(context, _uid(update), dialog.handle_command, _uid(update), "start", payload)
    await _send(update, context, replies, lang)


async def command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any other command: the core answers it, unknown ones with its help menu."""
    first = ((update.effective_message.text or "").split(maxsplit=1) or [""])[0]
    name, _, target = first.lstrip("/").partition("@")
    if target and target.casefold() != (context.bot.username or "").casefold():
        return  # /command@another_bot in a group
    name = name.casefold()
    canonical = COMMAND_ALIASES.get(name, name)
    if not await _admit(update, context, limited=canonical not in NEVER_RATE_LIMITED):
        return
    if not _is_private(update) and canonical in PRIVATE_ONLY_COMMANDS:
        await _point_to_private(update, context)
        return
    arg = " ".join(context.args or []) if context.args is not None else ""
    dialog: Dialog = context.bot_data["dialog"]
    replies, lang = await _core(context, _uid(update), dialog.handle_command, _uid(update), name, arg,
                                public=not _is_private(update))
    await _send(update, context, replies, lang)


async def text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A typed message: a question, a button label or a staff code; in groups only when addressed."""
    message = update.effective_message
    content = message.text or ""
    private = _is_private(update)
    if not private:
        content = _addressed_text(message, context.bot.username, context.bot.id)
        if content is None:
            return
    if not await _admit(update, context):
        return
    _log_text(context, update, content)
    dialog: Dialog = context.bot_data["dialog"]
    # In a group the answer is posted to every member: public passages only, whoever asks.
    handle = functools.partial(dialog.handle_text, question_only=not private)
    replies, lang = await _core(context, _uid(update), handle, _uid(update), content, public=not private)
    await _send(update, context, replies, lang)


async def not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, voice and the like: say politely that only text works (private chats only)."""
    if not _is_private(update) or not await _admit(update, context):
        return
    await _say(update, context, "text_only")


async def edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An edited message: the original was already answered, so ask for a new message (private only)."""
    if not _is_private(update) or not await _admit(update, context):
        return
    await _say(update, context, "edited")


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button press: 👍/👎 go to dialog.vote, everything else to the core, which judges stale data."""
    query = update.callback_query
    if not await _admit(update, context):
        return
    dialog: Dialog = context.bot_data["dialog"]
    user_id = _uid(update)
    data = query.data if isinstance(query.data, str) else ""
    feedback = parse_feedback(data)
    if query.message is not None and query.message.chat.type != ChatType.PRIVATE and feedback is None:
        # The core's buttons are never shown in groups; a press here is old or forged.
        _, lang = await _core(context, user_id, lambda: None)
        await _answer_query(update, _t(context, "group_button", lang))
        return
    await _answer_query(update)
    if feedback is not None:
        replies, lang = await _core(context, user_id, dialog.vote, user_id, *feedback)
        markup = query.message.reply_markup if isinstance(query.message, Message) else None
        remaining = without_feedback_row(markup)
        if markup is not None and remaining != markup:
            # The vote is stored; if the buttons cannot be taken away (too old, Telegram down) that is all.
            await _deliver("editMessageReplyMarkup", update.update_id,
                           functools.partial(query.edit_message_reply_markup, reply_markup=remaining))
    else:
        replies, lang = await _core(context, user_id, dialog.handle_button, user_id, data,
                                    public=not _is_private(update))
    await _send(update, context, replies, lang)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the exception with its traceback (never the message text) and tell the user calmly."""
    if not isinstance(update, Update):
        log.error("error outside of an update", exc_info=context.error)
        return
    chat = update.effective_chat
    log.error("update %s (chat type %s) failed", update.update_id, chat.type if chat else None,
              exc_info=context.error)
    try:
        if update.callback_query:
            await update.callback_query.answer()
    except Exception:  # already answered, or too old: nothing more to do
        pass
    if chat is None or update.effective_user is None:
        return
    try:
        dialog: Dialog = context.bot_data["dialog"]
        try:
            lang = _language_of(dialog, _uid(update))
        except Exception:  # the store itself may be what failed
            lang = "nb"
        text = dialog.catalog.get("telegram.error", lang)
        [message] = render_reply(Reply(text), Labels.from_catalog(dialog.catalog, lang))
        await _deliver("sendMessage (error notice)", update.update_id,
                       functools.partial(context.bot.send_message, chat.id, message.html))
    except Exception:
        log.exception("could not tell the user about the error in update %s", update.update_id)


# -- running ------------------------------------------------------------------------------------------------
class _WebhookHandler(tornado.web.RequestHandler):
    """POST from Telegram: check the secret token, queue the update, answer 200 at once.

    A body that is not an update gets 400; an update this library version cannot read is skipped with 200
    (Telegram would otherwise send it again and again); a body over MAX_WEBHOOK_BODY is refused by tornado.
    """

    def initialize(self, bot_app: Application, secret: str) -> None:
        self.bot_app = bot_app  # not "application": tornado's own RequestHandler argument has that name
        self.secret = secret

    async def post(self) -> None:
        given = self.request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.secret.encode()):
            raise tornado.web.HTTPError(403)
        try:
            data = json.loads(self.request.body)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int) or isinstance(
                data.get("update_id"), bool):
            log.warning("webhook: a request body that is not an update (content not logged)")
            raise tornado.web.HTTPError(400)
        update = self.bot_app.bot._parse(data)
        if update is not None:
            await self.bot_app.update_queue.put(update)
        self.set_status(200)

    def write_error(self, status_code: int, **kwargs) -> None:  # no traceback, no page: just the status
        self.finish({"ok": False, "status": status_code})


class _HealthHandler(tornado.web.RequestHandler):
    """GET /healthz: 200 while the application runs, 503 otherwise."""

    def initialize(self, bot_app: Application) -> None:
        self.bot_app = bot_app

    def get(self) -> None:
        running = self.bot_app.running
        self.set_status(200 if running else 503)
        self.finish({"ok": running})


class _QuietApp(tornado.web.Application):
    def log_request(self, handler) -> None:  # access logs would only repeat what /healthz polls say
        pass


def webhook_app(application: Application, path: str, secret: str) -> tornado.web.Application:
    """Tornado routes for webhook mode: the update endpoint at `path` and /healthz."""
    return _QuietApp([
        (re.escape(path), _WebhookHandler, {"bot_app": application, "secret": secret}),
        (r"/healthz", _HealthHandler, {"bot_app": application}),
    ])


def webhook_server(application: Application, path: str, secret: str) -> tornado.httpserver.HTTPServer:
    """The webhook HTTP server, with the body size capped."""
    return tornado.httpserver.HTTPServer(webhook_app(application, path, secret), max_body_size=MAX_WEBHOOK_BODY)


def _token_rejected(settings) -> ConfigError:
    return ConfigError(f"Telegram rejected KAP12_TELEGRAM_TOKEN (401 Unauthorized) at "
                       f"{settings.telegram_api_url}: check the token with @BotFather.")


async def _with_retries(what: str, call: Callable[[], Awaitable], settings, stop: asyncio.Event | None = None,
                        attempts: int | None = None):
    """A start-up call, retried with back-off on network trouble; a 401 is a ConfigError at once."""
    attempts = attempts or STARTUP_ATTEMPTS
    delay = STARTUP_FIRST_WAIT
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except InvalidToken:
            raise _token_rejected(settings) from None
        except (NetworkError, RetryAfter) as exc:
            if attempt == attempts:
                raise Kap12Error(f"{what} failed {attempts} times; the Bot API at {settings.telegram_api_url} "
                                 f"cannot be used ({exc.__class__.__name__}: {exc}).") from None
            wait = exc.retry_after if isinstance(exc, RetryAfter) else delay
            wait = wait.total_seconds() if isinstance(wait, dtm.timedelta) else float(wait)
            log.warning("%s failed (%s); trying again in %.0f s", what, exc.__class__.__name__, wait)
            if stop is not None:
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                    raise _Stopped(what)
                except asyncio.TimeoutError:
                    pass
            else:
                await asyncio.sleep(wait)
            delay = min(delay * 2, 30.0)
    return None


async def _prepare(application: Application) -> None:
    """Before serving: re-check staff proofs and tell the operator if the state file has trouble."""
    settings = application.bot_data["settings"]
    dialog: Dialog = application.bot_data["dialog"]
    allow = {f"tg:{user_id}" for user_id in settings.staff_user_ids}
    staff = getattr(dialog, "staff", None)
    if staff is not None and hasattr(staff, "recheck"):
        await asyncio.to_thread(staff.recheck, allow)
    check = getattr(dialog.store, "check", None)
    if check is not None:
        problem = await asyncio.to_thread(check)
        if problem:
            log.error("%s The bot starts anyway and keeps state in memory until the file works.", problem)


async def serve(application: Application, stop: asyncio.Event) -> None:
    """Run the bot until `stop` is set: long polling by default, webhook + /healthz when webhook_url is set.

    Raises:
        ConfigError: Telegram rejected the token (at start or later), so a supervisor sees a failure.
        Kap12Error: the Bot API could not be reached at start after several tries.
    """
    settings = application.bot_data["settings"]
    rejected: list[InvalidToken] = []
    if isinstance(application.bot, SafeBot):
        def token_rejected(exc: InvalidToken) -> None:
            rejected.append(exc)
            stop.set()

        application.bot.watch_token(token_rejected)
    server = None
    try:
        await _with_retries("getMe", application.initialize, settings, stop)
    except _Stopped:
        await application.shutdown()
        return
    try:
        await _prepare(application)
        try:
            await _with_retries("setMyCommands", lambda: register_commands(application), settings, stop, attempts=3)
        except (Kap12Error, TelegramError) as exc:
            if isinstance(exc, ConfigError):
                raise
            log.warning("the command menu could not be set (%s); the bot works without it", exc)
        if stop.is_set():
            return
        if settings.webhook_url:
            secret = (settings.webhook_secret.get_secret_value() if settings.webhook_secret
                      else secrets.token_urlsafe(32))  # a fresh secret per start is fine: we set the webhook
            path = urlparse(settings.webhook_url).path or "/"
            await _with_retries("setWebhook", lambda: application.bot.set_webhook(
                settings.webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES), settings, stop)
            server = webhook_server(application, path, secret)
            server.listen(settings.webhook_port, address=settings.webhook_listen)
            log.info("webhook mode: listening on %s:%s", settings.webhook_listen, settings.webhook_port)
        else:
            await _with_retries("deleteWebhook", lambda: application.updater.start_polling(
                allowed_updates=ALLOWED_UPDATES), settings, stop)
            log.info("polling mode: the bot is running")
        await application.start()
        try:
            await stop.wait()
        finally:
            if server is not None:
                server.stop()
                await server.close_all_connections()
            if application.updater.running:
                await application.updater.stop()
            await application.stop()
    except _Stopped:
        log.info("stopped during start-up")
    finally:
        await application.shutdown()
        application.bot_data["pool"].shutdown(wait=False, cancel_futures=True)
    if rejected:
        raise _token_rejected(settings)


def run_telegram(settings) -> None:
    """Run the Telegram bot until SIGINT or SIGTERM (what `kap12 run` calls when a token is configured).

    Raises:
        ConfigError / Kap12Error: one line for the operator; `kap12` exits non-zero with it.
    """
    # httpx logs every request URL at INFO, and the URL holds the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(logging.WARNING)
    install_log_filter(settings)
    application = build_application(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(application, stop)

    asyncio.run(main())
