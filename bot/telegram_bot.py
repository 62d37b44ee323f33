"""The Telegram channel: a thin python-telegram-bot adapter over the conversation core (`bot.dialog`).

Handlers turn updates into `Dialog` calls with the user id "tg:<telegram id>" and send back the rendered
replies; the rules (roles, flows, answers, stale buttons) all live in the core. What belongs to Telegram
stays here: group-chat manners, non-text messages, edited messages, a per-user rate limit, staff proof by
an allow-list of Telegram ids, the command menu, polling or webhook, and one central error handler.

Privacy: message text is never logged (unless KAP12_LOG_MESSAGE_TEXT is set for debugging); logs carry
update ids and chat types only.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import re
import secrets
import signal
import time
from collections import deque
from urllib.parse import urlparse

import tornado.httpserver
import tornado.web
from telegram import BotCommand, LinkPreviewOptions, Message, MessageEntity, Update
from telegram.constants import BotCommandLimit, ChatType, ParseMode
from telegram.error import BadRequest
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from bot.dialog import COMMAND_ALIASES, Dialog, build_dialog
from bot.errors import ConfigError
from bot.replies import Reply
from bot.telegram_render import Labels, parse_feedback, render_reply, without_feedback_row

log = logging.getLogger(__name__)

# Shown in Telegram's command menu, in this order (Telegram commands are ASCII, so /språk is /sprak).
MENU_COMMANDS = ("start", "hjelp", "meld", "rolle", "sprak", "kilder", "personvern", "slett")
# Commands that start or steer a walkthrough; in a group they only point to a private chat.
PRIVATE_ONLY_COMMANDS = frozenset({"start", "meld", "rolle", "sprak", "meny"})
ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]
_DEEP_LINK_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class UserRateLimit:
    """A sliding window per user: at most `per_minute` updates in any 60 seconds.

    The first update over the limit gets one polite warning; later ones in the same window are dropped
    silently, so a flood never makes the bot flood back.
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
    dialog = dialog or build_dialog(settings, require_staff_proof=True)
    builder = (
        Application.builder()
        .token(settings.telegram_token.get_secret_value().strip())
        .base_url(settings.telegram_api_url)
        .rate_limiter(AIORateLimiter(max_retries=2))
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)))
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    application = builder.build()
    application.bot_data.update(
        dialog=dialog, settings=settings, limiter=UserRateLimit(settings.rate_limit_per_minute)
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


def _lang(context: ContextTypes.DEFAULT_TYPE, user_id: str) -> str:
    """The user's language as the core stored it (bokmål for a new user, like the core)."""
    state = context.bot_data["dialog"].store.get_user(user_id)
    return state.language if state else "nb"


def _t(context: ContextTypes.DEFAULT_TYPE, key: str, lang: str, **fmt) -> str:
    return context.bot_data["dialog"].catalog.get(f"telegram.{key}", lang, **fmt)


def _labels(context: ContextTypes.DEFAULT_TYPE, lang: str) -> Labels:
    return Labels.from_catalog(context.bot_data["dialog"].catalog, lang)


def _is_private(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type == ChatType.PRIVATE


async def _call(function, *args):
    """Run a (synchronous) Dialog call off the event loop. Updates are processed one at a time, so the
    core never runs in two threads at once."""
    return await asyncio.to_thread(function, *args)


async def _send(update: Update, context: ContextTypes.DEFAULT_TYPE, replies: list[Reply], user_id: str) -> None:
    """Render and send the core's replies; in groups the core's buttons are left out."""
    if update.effective_chat is None:  # a press under an inline-mode message; this bot sends none
        return
    lang = _lang(context, user_id)
    labels = _labels(context, lang)
    private = _is_private(update)
    for reply in replies:
        for message in render_reply(reply, labels, with_buttons=private):
            await context.bot.send_message(update.effective_chat.id, message.html, reply_markup=message.keyboard)


async def _say(update: Update, context: ContextTypes.DEFAULT_TYPE, key: str, **fmt) -> None:
    """Send one of the adapter's own catalogue texts."""
    user_id = _uid(update)
    text = _t(context, key, _lang(context, user_id), **fmt)
    await _send(update, context, [Reply(text)], user_id)


async def _admit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Rate limit and staff proof before the core sees an update; False = stop here."""
    user = update.effective_user
    if user is None or user.is_bot:
        return False
    verdict = context.bot_data["limiter"].check(user.id)
    if verdict != "ok":
        log.info("rate limit for update %s (%s)", update.update_id, verdict)
        if verdict == "warn":
            if update.callback_query:
                lang = _lang(context, _uid(update))
                await update.callback_query.answer(_t(context, "slow_down", lang), show_alert=True)
            else:
                await _say(update, context, "slow_down")
        elif update.callback_query:
            await update.callback_query.answer()
        return False
    if user.id in context.bot_data["settings"].staff_user_ids:
        await _call(context.bot_data["dialog"].prove_staff, _uid(update))
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
    replies = await _call(context.bot_data["dialog"].handle_command, _uid(update), "start", payload)
    await _send(update, context, replies, _uid(update))


async def command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any other command: the core answers it, unknown ones with its help menu."""
    first = ((update.effective_message.text or "").split(maxsplit=1) or [""])[0]
    name, _, target = first.lstrip("/").partition("@")
    if target and target.casefold() != (context.bot.username or "").casefold():
        return  # /command@another_bot in a group
    if not await _admit(update, context):
        return
    name = name.casefold()
    if not _is_private(update) and COMMAND_ALIASES.get(name, name) in PRIVATE_ONLY_COMMANDS:
        await _point_to_private(update, context)
        return
    arg = " ".join(context.args or []) if context.args is not None else ""
    replies = await _call(context.bot_data["dialog"].handle_command, _uid(update), name, arg)
    await _send(update, context, replies, _uid(update))


async def text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A typed message: a question, a button label or a staff code; in groups only when addressed."""
    message = update.effective_message
    content = message.text or ""
    if not _is_private(update):
        content = _addressed_text(message, context.bot.username, context.bot.id)
        if content is None:
            return
    if not await _admit(update, context):
        return
    _log_text(context, update, content)
    handle = functools.partial(context.bot_data["dialog"].handle_text, question_only=not _is_private(update))
    replies = await _call(handle, _uid(update), content)
    await _send(update, context, replies, _uid(update))


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
        await query.answer(_t(context, "group_button", _lang(context, user_id)))
        return
    await query.answer()
    if feedback is not None:
        replies = await _call(dialog.vote, user_id, *feedback)
        markup = query.message.reply_markup if isinstance(query.message, Message) else None
        remaining = without_feedback_row(markup)
        if markup is not None and remaining != markup:
            try:
                await query.edit_message_reply_markup(reply_markup=remaining)
            except BadRequest as exc:  # e.g. a message too old to edit; the vote itself is stored
                log.info("could not remove the feedback buttons in update %s: %s", update.update_id, exc)
    else:
        replies = await _call(dialog.handle_button, user_id, data)
    await _send(update, context, replies, user_id)


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
            lang = _lang(context, _uid(update))
        except Exception:  # the store itself may be what failed
            lang = "nb"
        text = dialog.catalog.get("telegram.error", lang)
        [message] = render_reply(Reply(text), Labels.from_catalog(dialog.catalog, lang))
        await context.bot.send_message(chat.id, message.html)
    except Exception:
        log.exception("could not tell the user about the error in update %s", update.update_id)


# -- running ------------------------------------------------------------------------------------------------
class _WebhookHandler(tornado.web.RequestHandler):
    """POST from Telegram: check the secret token, queue the update, answer 200 at once."""

    def initialize(self, bot_app: Application, secret: str) -> None:
        self.bot_app = bot_app  # not "application": tornado's own RequestHandler argument has that name
        self.secret = secret

    async def post(self) -> None:
        given = self.request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            raise tornado.web.HTTPError(403)
        try:
            update = Update.de_json(json.loads(self.request.body), self.bot_app.bot)
        except (ValueError, TypeError, KeyError):
            log.warning("webhook: a request body that is not an update (content not logged)")
            raise tornado.web.HTTPError(400) from None
        await self.bot_app.update_queue.put(update)
        self.set_status(200)


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


async def serve(application: Application, stop: asyncio.Event) -> None:
    """Run the bot until `stop` is set: long polling by default, webhook + /healthz when webhook_url is set."""
    settings = application.bot_data["settings"]
    server = None
    async with application:  # initialize() … shutdown()
        await register_commands(application)
        if settings.webhook_url:
            secret = (settings.webhook_secret.get_secret_value() if settings.webhook_secret
                      else secrets.token_urlsafe(32))  # a fresh secret per start is fine: we set the webhook
            path = urlparse(settings.webhook_url).path or "/"
            await application.bot.set_webhook(settings.webhook_url, secret_token=secret,
                                              allowed_updates=ALLOWED_UPDATES)
            server = tornado.httpserver.HTTPServer(webhook_app(application, path, secret))
            server.listen(settings.webhook_port, address=settings.webhook_listen)
            log.info("webhook mode: listening on %s:%s", settings.webhook_listen, settings.webhook_port)
        else:
            await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
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


def run_telegram(settings) -> None:
    """Run the Telegram bot until SIGINT or SIGTERM (what `kap12 run` calls when a token is configured)."""
    # httpx logs every request URL at INFO, and the URL holds the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(logging.WARNING)
    application = build_application(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(application, stop)

    asyncio.run(main())
