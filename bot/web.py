"""The web channel: a chat page and its JSON API, a thin tornado adapter over the conversation core.

The page (`bot/web_static/`) is plain HTML, JavaScript and CSS; it renders every text with textContent, so
nothing a user or the knowledge base writes is ever markup. The API turns requests into `Dialog` calls and
`Reply` objects into JSON; the rules (roles, flows, answers, safety, staff proof) all live in the core.

    GET  /                 the page            GET /static/…  its script and style sheet
    GET  /healthz          {"ok": true}        GET /api/ui    the page's own labels in nb, nn and en
    POST /api/start        {"lang", "framed"} → greeting (or the menu for a returning user)
    POST /api/message      {"text"}           a question, a button label, a staff code or "/command arg"
    POST /api/button       {"data"}           a button press (data as the core built it)
    POST /api/command      {"name", "arg"}    e.g. personvern, meny, sprak
    POST /api/vote         {"id", "up"}       👍/👎 on an answer
    POST /api/language     {"lang"}           the page's language switch
    POST /api/delete       {}                 what /slett does, then a fresh session id

Every POST answers {"replies": [...], "lang": ...} (plus "forgotten": true after /slett), or
{"error", "message"} with a 4xx/5xx status.

Serving model: one process, one tornado event loop for all connections, and `CORE_THREADS` worker threads
for the core (one per core). The core keeps per-user memory in the process (feedback ids, staff-code
attempts, the last question for "go on"), so all sessions must reach the same process. Calls of different
users run side by side; one user's calls are serialised (`SerializedDialog`), also against Telegram when
both channels run in one process. A message is embedded with one thread (KAP12_QUERY_THREADS), in about
25 ms on the shipped model.
At most `MAX_PENDING` calls wait in the queue; beyond that the page is told calmly to try again.

Sessions: a random id (`secrets.token_urlsafe`) in an HttpOnly, SameSite=Strict cookie (Secure over
HTTPS). In an iframe on another site browsers do not send that cookie, so a framed page asks for the id in
the JSON answer, keeps it in a JavaScript variable (never in storage) and sends it in a header; a custom
header cannot be sent cross-site without CORS, which this server never allows. The core sees "web:" plus a
hash of the id, so the state file never holds the cookie and web ids never collide with Telegram's "tg:".

Privacy: message text is never logged or stored (KAP12_LOG_MESSAGE_TEXT is honoured for local debugging);
there are no access logs of successful requests, no third-party requests and no tracking.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import hashlib
import json
import logging
import re
import secrets
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

import tornado.httpserver
import tornado.web

from bot.commands import command_name
from bot.dialog import MAX_DATA_BYTES, MAX_QUESTION_CHARS, Dialog, build_dialog
from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES
from bot.replies import Citation, Reply
from bot.telegram_bot import UserRateLimit

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(resources.files("bot") / "web_static"))
COOKIE = "kap12_sid"
SESSION_HEADER = "X-Kap12-Session"
_SID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)

CORE_THREADS = max(2, os.cpu_count() or 2)  # one message embeds on one thread: one worker per core
MAX_PENDING = 200  # core calls waiting at once; more get 503 "busy"
# A JSON body: a question of MAX_QUESTION_CHARS characters, even fully \u-escaped (6 bytes each), fits.
MAX_BODY_BYTES = MAX_QUESTION_CHARS * 6 + 8 * 1024
# The HTTP server drops a connection whose body is larger than this without reading it; between the two
# limits the API answers 413 with a calm JSON message.
MAX_SERVER_BODY_BYTES = 64 * 1024
# Many people share one address (a school's or a municipality's NAT), so the per-address limit is this
# many times the per-session one (KAP12_RATE_LIMIT_PER_MINUTE).
ADDRESS_LIMIT_FACTOR = 15
MAX_NAME_CHARS = 32
MAX_ARG_CHARS = 200
MAX_FEEDBACK_ID_CHARS = 64

# Catalogue keys the page uses (knowledge/ui/web.<lang>.yaml, without the "web." prefix). A test checks them.
PAGE_KEYS = (
    "title", "subtitle", "log_label", "you", "bot", "input_label", "input_placeholder", "send", "menu",
    "privacy", "delete", "language", "language_name.nb", "language_name.nn", "language_name.en",
    "sources", "updated", "opens_new_tab", "help_numbers", "call", "vote_up", "vote_down", "thinking",
    "emergency", "emergency_number", "error_network", "skip_to_input",
)
# The API's own messages (errors), also from the catalogue.
API_KEYS = ("error", "bad_request", "too_large", "busy", "forbidden", "not_found")


class SerializedDialog:
    """The core with each user's calls one at a time: two users run side by side, one user's never interleave.

    The core's shared parts (store, feedback, staff proof) have their own locks, as Telegram's worker threads
    need too; what must not interleave is one user's own sequence (a state read, changed and saved).
    Attributes other than the public calls (catalog, store, …) are passed through unchanged.
    """

    _CALLS = ("handle_text", "handle_button", "handle_command", "vote", "prove_staff", "language",
              "role_for_retrieval")

    def __init__(self, dialog: Dialog):
        self._dialog = dialog
        self._guard = threading.Lock()
        self._locks: dict[str, list] = {}  # user id -> [RLock, holders and waiters]

    def __getattr__(self, name: str):
        value = getattr(self._dialog, name)
        if name in self._CALLS:
            @functools.wraps(value)
            def locked(user_id, *args, **kwargs):
                with self.locked(user_id):
                    return value(user_id, *args, **kwargs)
            return locked
        return value

    @contextlib.contextmanager
    def locked(self, user_id: str):
        """One user's lock, for a sequence of calls that must not interleave with that user's others."""
        with self._guard:
            entry = self._locks.setdefault(user_id, [threading.RLock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[user_id]  # no memory kept per user once nobody holds or waits


def user_id_for(session_id: str) -> str:
    """The core's user id for a web session: a hash, so the state file never holds the cookie value."""
    return "web:" + hashlib.sha256(session_id.encode("ascii")).hexdigest()[:32]


def citation_json(citation: Citation) -> dict:
    """A citation for the page; a link only for http(s) URLs (a knowledge file could hold anything)."""
    url = citation.url if citation.url and citation.url.startswith(("https://", "http://")) else None
    return {"n": citation.n, "document": citation.document, "section": citation.section,
            "refs": list(citation.refs), "url": url, "updated": citation.updated}


def help_json(item: dict) -> dict:
    """A help line: its number reduced to what a tel: link may hold, and the name as text."""
    number = str(item.get("number", ""))
    return {"number": number, "tel": re.sub(r"[^0-9+]", "", number), "name": str(item.get("name", ""))}


def reply_json(reply: Reply) -> dict:
    """One `Reply` as the page gets it. Texts stay plain text; the page never parses them as markup."""
    return {
        "text": reply.text,
        "kind": reply.kind,
        "citations": [citation_json(c) for c in reply.citations],
        "buttons": [[{"label": b.label, "data": b.data} for b in row] for row in reply.buttons],
        "feedback_id": reply.feedback_id,
        "help": [help_json(item) for item in reply.help],
        "lang": reply.lang,
    }


class WebChat:
    """What every request handler shares: the core, its worker thread, the rate limits and the headers.

    Args:
        settings: `bot.config.Settings`; uses web_allowed_origins, rate_limit_per_minute, log_message_text.
        dialog: the conversation core (wrapped in `SerializedDialog` here unless it already is).
        per_session, per_address: requests per minute; defaults from rate_limit_per_minute.
    """

    def __init__(self, settings, dialog, *, per_session: int | None = None, per_address: int | None = None,
                 max_pending: int = MAX_PENDING):
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.settings = settings
        self.dialog = dialog if isinstance(dialog, SerializedDialog) else SerializedDialog(dialog)
        self.catalog = self.dialog.catalog
        missing = [f"web.{key}" for key in PAGE_KEYS + API_KEYS if f"web.{key}" not in self.catalog]
        if missing:
            raise ValueError(f"the UI catalogue lacks {', '.join(missing)}; add them to knowledge/ui/web.<lang>.yaml")
        per_session = per_session or settings.rate_limit_per_minute
        self.session_limit = UserRateLimit(per_session)
        self.address_limit = UserRateLimit(per_address or per_session * ADDRESS_LIMIT_FACTOR)
        self.executor = ThreadPoolExecutor(max_workers=CORE_THREADS, thread_name_prefix="kap12-core")
        self.max_pending = max_pending
        self.pending = 0
        self.headers = security_headers(settings.web_allowed_origins)
        self.page = (STATIC_DIR / "index.html").read_bytes()

    def t(self, key: str, lang: str, **fmt) -> str:
        return self.catalog.get(key, lang if lang in LANGUAGES else DEFAULT_LANGUAGE, **fmt)

    def page_labels(self) -> dict:
        return {lang: {key: self.catalog.get(f"web.{key}", lang) for key in PAGE_KEYS} for lang in LANGUAGES}

    async def call(self, function, *args):
        """Run a core call on the worker thread; None when too many are waiting already."""
        if self.pending >= self.max_pending:
            return None
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)
        finally:
            self.pending -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def security_headers(allowed_origins: list[str]) -> dict[str, str]:
    """Headers on every response: a strict CSP (no inline script or style), framing only by allowed sites."""
    ancestors = " ".join(allowed_origins) if allowed_origins else "'none'"
    csp = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
           "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
           f"frame-ancestors {ancestors}")
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if not allowed_origins:
        headers["X-Frame-Options"] = "DENY"  # for browsers that predate frame-ancestors
    return headers


# -- handlers -----------------------------------------------------------------------------------------------
def _security(handler: tornado.web.RequestHandler) -> None:
    """Set the security headers (called before initialize(), so they come from the application settings)."""
    for name, value in handler.application.settings["security_headers"].items():
        handler.set_header(name, value)


class _Base(tornado.web.RequestHandler):
    def initialize(self, chat: WebChat) -> None:
        self.chat = chat

    def set_default_headers(self) -> None:
        _security(self)

    def write_error(self, status_code: int, **kwargs) -> None:
        """The central error handler: log bugs with their traceback (never a body), answer calm JSON."""
        key = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "bad_request",
               413: "too_large"}.get(status_code, "error")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish({"error": key, "message": self.chat.t(f"web.{key}", getattr(self, "lang", DEFAULT_LANGUAGE))})

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, tornado.web.HTTPError):
            return  # expected client errors; nothing to log
        log.error("%s %s failed (body not logged)", self.request.method, self.request.path, exc_info=(typ, value, tb))


class PageHandler(_Base):
    """GET /: the chat page."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(self.chat.page)


class StaticHandler(tornado.web.StaticFileHandler):
    """The page's script and style sheet, with the same security headers as everything else."""

    def initialize(self, path: str, chat: WebChat) -> None:
        super().initialize(path)
        self.chat = chat

    def set_default_headers(self) -> None:
        _security(self)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")


class HealthHandler(_Base):
    """GET /healthz for containers and load balancers."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish({"ok": True})


class LabelsHandler(_Base):
    """GET /api/ui: the page's own labels in every language, from the catalogue."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.finish({"languages": list(LANGUAGES), "labels": self.chat.page_labels()})


class NoIconHandler(_Base):
    """GET /favicon.ico: no icon (204), so browsers do not log a 404 on every visit."""

    def get(self) -> None:
        self.set_status(204)
        self.finish()


class NotFoundHandler(_Base):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)


class ApiHandler(_Base):
    """POST /api/<action>: checks (CSRF, size, JSON, rate limits), the session, then one core call."""

    ACTIONS = ("start", "message", "button", "command", "vote", "language", "delete")

    def prepare(self) -> None:
        self.lang = DEFAULT_LANGUAGE
        self.set_header("Cache-Control", "no-store")
        if self.request.method != "POST":
            raise tornado.web.HTTPError(405)
        if not self._same_origin():
            raise tornado.web.HTTPError(403)
        # Only JSON: a cross-site HTML form cannot send this content type without a CORS preflight.
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise tornado.web.HTTPError(400)
        if len(self.request.body) > MAX_BODY_BYTES:
            raise tornado.web.HTTPError(413)
        try:
            body = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError):
            raise tornado.web.HTTPError(400) from None
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400)
        self.body = body
        lang = body.get("lang")
        self.lang = lang if isinstance(lang, str) and lang in LANGUAGES else DEFAULT_LANGUAGE

    def _same_origin(self) -> bool:
        """Browsers send Origin with every POST; it must name this host. Clients without it (curl) pass."""
        origin = self.request.headers.get("Origin")
        if origin is None:
            return self.request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
        return urlparse(origin).netloc.lower() == self.request.host.lower()

    def _session(self) -> tuple[str, bool]:
        """(session id, new?) from the cookie, else from the header of a framed page, else a fresh one."""
        for sid in (self.get_cookie(COOKIE), self.request.headers.get(SESSION_HEADER)):
            if sid and _SID_RE.match(sid):
                return sid, False
        return secrets.token_urlsafe(32), True

    def _set_session_cookie(self, sid: str) -> None:
        self.set_cookie(COOKIE, sid, path="/", httponly=True, samesite="Strict",
                        secure=self.request.protocol == "https")

    def _admitted(self, sid: str) -> bool:
        address = self.request.remote_ip or "?"
        verdicts = (self.chat.address_limit.check(address), self.chat.session_limit.check(sid))
        return all(verdict == "ok" for verdict in verdicts)

    def _field(self, name: str, max_chars: int) -> str:
        value = self.body.get(name, "")
        if not isinstance(value, str) or len(value) > max_chars:
            raise tornado.web.HTTPError(400)
        return value

    async def post(self, action: str) -> None:
        call = self._core_call(action)  # validates the body before anything else happens
        sid, new = self._session()
        if not self._admitted(sid):
            log.info("web rate limit (%s)", action)
            self.set_status(429)
            self.finish({"error": "slow_down", "message": self.chat.t("telegram.slow_down", self.lang)})
            return
        if new:
            self._set_session_cookie(sid)
        if self.chat.settings.log_message_text and action == "message":
            log.info("web message text: %r", self.body.get("text"))
        result = await self.chat.call(call, user_id_for(sid))
        if result is None:
            self.set_status(503)
            self.finish({"error": "busy", "message": self.chat.t("web.busy", self.lang)})
            return
        replies, lang = result
        answer = {"replies": [reply_json(r) for r in replies], "lang": lang}
        if self.forgets:  # nothing links the next conversation to the deleted one
            sid = secrets.token_urlsafe(32)
            self._set_session_cookie(sid)
            answer["forgotten"] = True  # the page clears what it shows
        if self.body.get("framed") is True or self.request.headers.get(SESSION_HEADER):
            answer["session"] = sid  # only for a page in a cross-site iframe, where the cookie is not sent
        self.finish(answer)

    def _core_call(self, action: str):
        """The work for one action as a function of the user id, run on the core's thread."""
        dialog, page_lang = self.chat.dialog, self.lang
        # Deleting the conversation (the button, or /slett typed or sent as a command) also rotates the id.
        self.forgets = action == "delete"
        if action == "start":
            def run(uid):
                state = dialog.store.get_user(uid)
                if state is not None and state.role is not None:
                    return dialog.handle_command(uid, "meny")
                return dialog.handle_command(uid, "start")
        elif action == "message":
            text = self._field("text", MAX_BODY_BYTES)
            if text.startswith("/") and len(text) > 1 and "\n" not in text[:MAX_NAME_CHARS + 1]:
                name, _, arg = text[1:].partition(" ")
                self.forgets = command_name(name) == "slett"
                def run(uid):  # "/brev", "/slett" … typed like in Telegram
                    return dialog.handle_command(uid, name[:MAX_NAME_CHARS], arg.strip()[:MAX_ARG_CHARS])
            else:
                def run(uid):
                    return dialog.handle_text(uid, text)
        elif action == "button":
            data = self._field("data", MAX_DATA_BYTES * 4)
            def run(uid):
                return dialog.handle_button(uid, data)
        elif action == "command":
            name, arg = self._field("name", MAX_NAME_CHARS), self._field("arg", MAX_ARG_CHARS)
            self.forgets = command_name(name) == "slett"
            def run(uid):
                return dialog.handle_command(uid, name, arg)
        elif action == "vote":
            feedback_id, up = self._field("id", MAX_FEEDBACK_ID_CHARS), self.body.get("up")
            if not isinstance(up, bool):
                raise tornado.web.HTTPError(400)
            def run(uid):
                return dialog.vote(uid, feedback_id, up)
        elif action == "language":
            if self.body.get("lang") not in LANGUAGES:
                raise tornado.web.HTTPError(400)
            def run(uid):
                return dialog.handle_button(uid, f"l|{page_lang}")
        elif action == "delete":
            def run(uid):
                return dialog.handle_command(uid, "slett")
        else:
            raise tornado.web.HTTPError(404)

        def with_language(uid):
            with dialog.locked(uid):
                # A new visitor gets the page's language (the browser's, or what they picked) from the start.
                if action != "language" and not self.forgets and page_lang != DEFAULT_LANGUAGE \
                        and dialog.store.get_user(uid) is None:
                    dialog.handle_button(uid, f"l|{page_lang}")
                replies = run(uid)
                lang = page_lang if self.forgets else dialog.language(uid)
                return replies, lang

        return with_language


class _QuietApp(tornado.web.Application):
    def log_request(self, handler) -> None:
        """No access log (addresses and paths of people asking for help are nobody's business); errors only."""
        if handler.get_status() >= 500:
            log.warning("%s %s -> %d", handler.request.method, handler.request.path, handler.get_status())


def make_app(chat: WebChat) -> tornado.web.Application:
    """The tornado application: page, static files, /healthz and the API."""
    args = {"chat": chat}
    return _QuietApp(
        [
            (r"/", PageHandler, args),
            (r"/static/(app\.js|style\.css)", StaticHandler, {"path": str(STATIC_DIR), **args}),
            (r"/healthz", HealthHandler, args),
            (r"/favicon\.ico", NoIconHandler, args),
            (r"/api/ui", LabelsHandler, args),
            (r"/api/(" + "|".join(ApiHandler.ACTIONS) + ")", ApiHandler, args),
        ],
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        security_headers=chat.headers,
    )


def start_server(chat: WebChat, host: str, port: int, *, trust_proxy: bool = False) -> tornado.httpserver.HTTPServer:
    """Listen on host:port. `trust_proxy` takes the client address and scheme from X-Forwarded-For /
    X-Real-Ip and X-Forwarded-Proto: only behind a reverse proxy that sets them, or anyone can forge them."""
    server = tornado.httpserver.HTTPServer(
        make_app(chat), xheaders=trust_proxy, max_body_size=MAX_SERVER_BODY_BYTES,
        max_buffer_size=MAX_SERVER_BODY_BYTES * 2, idle_connection_timeout=60, body_timeout=15,
    )
    server.listen(port, address=host)
    return server


def run_web(settings, host: str | None = None, port: int | None = None, *, with_telegram: bool = False,
            trust_proxy: bool | None = None) -> int:
    """Serve the web chat (and Telegram beside it when `with_telegram`) until SIGINT or SIGTERM."""
    host = host or settings.web_host
    port = port or settings.web_port or 8000
    if trust_proxy is None:
        trust_proxy = settings.web_trust_proxy
    dialog = SerializedDialog(build_dialog(settings, require_staff_proof=True))
    chat = WebChat(settings, dialog)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = start_server(chat, host, port, trust_proxy=trust_proxy)
        print(f"Web chat on http://{host}:{port}/", file=sys.stderr)
        try:
            if with_telegram:
                from bot.telegram_bot import build_application, serve

                logging.getLogger("httpx").setLevel(logging.WARNING)  # its URLs hold the bot token
                await serve(build_application(settings, dialog), stop)
            else:
                await stop.wait()
        finally:
            server.stop()
            await server.close_all_connections()
            chat.close()

    asyncio.run(main())
    return 0
