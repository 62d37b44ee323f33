"""The web channel's HTTP API (bot/web.py), driven over a real socket with tornado's HTTP client.

The core is the real one over the shipped knowledge base with the hash embedder; the server runs in the
test's event loop on a free loopback port.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from http.cookies import SimpleCookie

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.testing

from bot.dialog import build_dialog
from bot.i18n import LANGUAGES, Catalog
from bot.web import (
    SerializedDialog,
    COOKIE,
    MAX_BODY_BYTES,
    PAGE_KEYS,
    STATIC_DIR,
    WebChat,
    make_app,
    user_id_for,
)

INVITE_CODE = "skole-kode-2024"


@pytest.fixture
def settings(hash_settings):
    # The hash embedder scores low; only a low floor applies here (as in the Telegram end-to-end test).
    return hash_settings.model_copy(update={
        "answer_threshold": 0.05, "scope_margin": -1.0, "scope_margin_unfamiliar": -1.0,
        "rate_limit_per_minute": 1000,
    })


class Client:
    """A browser-less session: keeps the cookie, sends JSON like the page does."""

    def __init__(self, base: str, origin: str | None = None):
        self.base = base
        self.origin = origin
        self.cookies: dict[str, str] = {}
        self.http = tornado.httpclient.AsyncHTTPClient()

    async def raw(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        all_headers = dict(headers or {})
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = await self.http.fetch(self.base + path, method=method, body=body, headers=all_headers,
                                         raise_error=False, follow_redirects=False,
                                         connect_timeout=60, request_timeout=60)  # generous: CI boxes are busy
        for header in response.headers.get_list("Set-Cookie"):
            cookie = SimpleCookie(header)
            for name, morsel in cookie.items():
                self.cookies[name] = morsel.value
        return response

    async def post(self, action: str, payload: dict | None = None, headers: dict | None = None):
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if self.origin:
            all_headers.setdefault("Origin", self.origin)
        response = await self.raw("POST", f"/api/{action}", json.dumps(payload or {}).encode(), all_headers)
        return response, json.loads(response.body)


class Server:
    def __init__(self, chat: WebChat):
        self.chat = chat
        self.socket, self.port = tornado.testing.bind_unused_port()
        self.server = tornado.httpserver.HTTPServer(make_app(chat), max_body_size=1024 * 1024)
        self.server.add_sockets([self.socket])
        self.base = f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs) -> Client:
        return Client(self.base, **kwargs)

    async def close(self) -> None:
        self.server.stop()
        await self.server.close_all_connections()
        self.chat.close()



@pytest.fixture
async def server(settings):
    running = Server(WebChat(settings, build_dialog(settings, require_staff_proof=True)))
    yield running
    await running.close()


async def start_as_parent(client: Client) -> None:
    response, data = await client.post("start", {"lang": "nb"})
    assert response.code == 200
    assert any(b["data"] == "r|parent" for r in data["replies"] for row in r["buttons"] for b in row)
    response, data = await client.post("button", {"data": "r|parent"})
    assert response.code == 200


# -- conversation -------------------------------------------------------------------------------------------
async def test_health(server):
    response = await server.client().raw("GET", "/healthz")
    assert response.code == 200 and json.loads(response.body) == {"ok": True}


async def test_page_and_static_files_are_served_with_security_headers(server):
    client = server.client()
    page = await client.raw("GET", "/")
    assert page.code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.body.decode()
    assert '<script src="static/app.js" defer></script>' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "no inline script"
    assert "<style" not in html and " style=" not in html, "no inline style"
    assert not re.search(r"https?://", html.replace("http://www.w3.org", "")), "no external resources"
    for path, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        response = await client.raw("GET", path)
        assert response.code == 200 and kind in response.headers["Content-Type"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert (await client.raw("GET", "/static/index.html")).code == 404
    assert (await client.raw("GET", "/static/../web.py")).code in (400, 403, 404)


async def test_a_question_gets_an_answer_with_citations(server):
    client = server.client()
    await start_as_parent(client)
    response, data = await client.post("message", {"text": "Hva er aktivitetsplikten i § 12-4?", "lang": "nb"})
    assert response.code == 200
    answers = [r for r in data["replies"] if r["kind"] == "answer"]
    assert answers, data
    answer = answers[0]
    assert answer["citations"] and answer["feedback_id"]
    assert all(c["url"] is None or c["url"].startswith(("https://", "http://")) for c in answer["citations"])
    assert any(c["url"] for c in answer["citations"])
    assert set(answer["citations"][0]) == {"n", "document", "section", "refs", "url", "updated"}
    assert data["lang"] == "nb" and answer["lang"] == "nb"
    # 👍 on that answer is taken once
    response, voted = await client.post("vote", {"id": answer["feedback_id"], "up": True})
    assert response.code == 200 and voted["replies"][0]["text"]


async def test_button_press_starts_and_walks_a_flow(server, settings):
    client = server.client()
    await start_as_parent(client)
    response, data = await client.post("button", {"data": "f|forelder-utrygg"})
    assert response.code == 200
    step = data["replies"][-1]
    assert step["kind"] == "flow_step" and step["buttons"]
    next_press = next(b["data"] for row in step["buttons"] for b in row if b["data"].startswith("s|"))
    response, moved = await client.post("button", {"data": next_press})
    assert response.code == 200 and moved["replies"][-1]["text"] != step["text"]
    # a forged press gets the calm "expired" menu, not an error
    response, forged = await client.post("button", {"data": "s|forelder-utrygg|nope|9"})
    assert response.code == 200 and forged["replies"][0]["kind"] == "menu"


async def test_typed_commands_work_like_in_telegram(server):
    client = server.client()
    response, data = await client.post("message", {"text": "/personvern"})
    assert response.code == 200
    catalog = server.chat.catalog
    assert catalog.get("dialog.privacy_nothing", "nb") in data["replies"][0]["text"]
    response, data = await client.post("command", {"name": "brev", "arg": ""})
    assert response.code == 200 and data["replies"][-1]["buttons"]


async def test_new_visitor_gets_the_page_language(server):
    client = server.client()
    response, data = await client.post("start", {"lang": "en"})
    assert response.code == 200 and data["lang"] == "en"
    assert "Who are you" in data["replies"][0]["text"] or data["replies"][0]["text"].startswith("Hi")
    response, data = await client.post("language", {"lang": "nn"})
    assert response.code == 200 and data["lang"] == "nn"
    response, data = await client.post("language", {"lang": "de"})
    assert response.code == 400


async def test_delete_forgets_the_user_and_rotates_the_session(server):
    client = server.client()
    await start_as_parent(client)
    old_sid = client.cookies[COOKIE]
    store = server.chat.dialog.store
    assert store.get_user(user_id_for(old_sid)).role == "parent"
    response, data = await client.post("delete", {"lang": "nb"})
    assert response.code == 200
    assert data["replies"][0]["text"] == server.chat.catalog.get("dialog.forgotten", "nb")
    assert store.get_user(user_id_for(old_sid)) is None
    assert client.cookies[COOKIE] != old_sid
    assert data["forgotten"] is True
    # the next request is a stranger: nothing links it to the deleted conversation
    response, data = await client.post("command", {"name": "personvern", "arg": ""})
    assert server.chat.catalog.get("dialog.privacy_nothing", "nb") in data["replies"][0]["text"]
    assert "forgotten" not in data


@pytest.mark.parametrize("action, payload", [("message", {"text": "/slett"}),
                                             ("command", {"name": "slett", "arg": ""}),
                                             ("message", {"text": "/delete"})])
async def test_typed_slett_also_starts_a_fresh_session(server, action, payload):
    client = server.client()
    await start_as_parent(client)
    old_sid = client.cookies[COOKIE]
    response, data = await client.post(action, payload)
    assert response.code == 200 and data["forgotten"] is True
    assert server.chat.dialog.store.get_user(user_id_for(old_sid)) is None
    assert client.cookies[COOKIE] != old_sid


async def test_web_user_ids_are_namespaced_and_never_the_cookie(server):
    client = server.client()
    await start_as_parent(client)
    sid = client.cookies[COOKIE]
    uid = user_id_for(sid)
    assert uid.startswith("web:") and sid not in uid
    assert server.chat.dialog.store.get_user(uid) is not None
    assert server.chat.dialog.store.get_user(sid) is None


async def test_staff_proof_asks_for_the_invite_code(hash_settings):
    settings = hash_settings.model_copy(update={"staff_invite_code": type(hash_settings).model_validate(
        {"staff_invite_code": INVITE_CODE}).staff_invite_code})
    server = Server(WebChat(settings, build_dialog(settings, require_staff_proof=True)))
    try:
        client = server.client()
        await client.post("start", {})
        response, data = await client.post("button", {"data": "r|staff"})
        catalog = server.chat.catalog
        assert catalog.get("dialog.staff_code_prompt", "nb") in data["replies"][0]["text"]
        response, data = await client.post("message", {"text": "feil kode"})
        assert data["replies"][0]["text"] == catalog.get("dialog.staff_code_wrong", "nb")
        response, data = await client.post("message", {"text": INVITE_CODE})
        assert catalog.get("dialog.staff_verified", "nb") in data["replies"][0]["text"]
        assert server.chat.dialog.role_for_retrieval(user_id_for(client.cookies[COOKIE])) == "staff"
    finally:
        await server.close()


async def test_framed_page_gets_its_session_in_json_and_header(server):
    client = server.client()
    response, data = await client.post("start", {"framed": True})
    sid = data["session"]
    assert sid == client.cookies[COOKIE]
    framed = server.client()  # no cookie, as in a cross-site iframe; the id travels in a header
    response, data = await framed.post("button", {"data": "r|pupil"}, headers={"X-Kap12-Session": sid})
    assert response.code == 200
    assert server.chat.dialog.store.get_user(user_id_for(sid)).role == "pupil"
    # a top-level page never sees its id in JSON
    response, data = await server.client().post("start", {})
    assert "session" not in data


# -- bad input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, content_type, status", [
    (b"{not json", "application/json", 400),
    (b"[1, 2]", "application/json", 400),
    (b"\xff\xfe", "application/json", 400),
    (b'{"text": "hei"}', "text/plain", 400),
    (b'{"text": "hei"}', "application/x-www-form-urlencoded", 400),
    (b'{"text": 42}', "application/json", 400),
    (b'{"text": ["a"]}', "application/json", 400),
    (b'{"text": "a"}' + b" " * (MAX_BODY_BYTES + 10), "application/json", 413),
])
async def test_bad_requests_get_calm_json(server, body, content_type, status):
    response = await server.client().raw("POST", "/api/message", body, {"Content-Type": content_type})
    assert response.code == status
    data = json.loads(response.body)
    assert data["error"] and data["message"]
    assert "Traceback" not in response.body.decode()
    assert response.headers["Content-Type"].startswith("application/json")


async def test_other_bad_requests(server):
    client = server.client()
    for payload in ({"data": 1}, {"data": "x" * 1000}):
        response, data = await client.post("button", payload)
        assert response.code == 400 and data["message"]
    response, data = await client.post("vote", {"id": "abc", "up": "yes"})
    assert response.code == 400
    response = await client.raw("GET", "/api/message")
    assert response.code == 405 and json.loads(response.body)["message"]
    response = await client.raw("GET", "/nowhere")
    assert response.code == 404 and json.loads(response.body)["message"]
    response, data = await client.post("nowhere", {})
    assert response.code == 404


async def test_markup_typed_by_a_user_stays_text(server):
    client = server.client()
    await start_as_parent(client)
    text = "<img src=x onerror=alert(1)> <script>alert(2)</script>"
    response, data = await client.post("message", {"text": text})
    assert response.code == 200 and response.headers["Content-Type"].startswith("application/json")
    assert all(isinstance(r["text"], str) for r in data["replies"])
    # The page renders with textContent only: no API that parses HTML appears in the script.
    script = re.sub(r"^\s*//.*$", "", (STATIC_DIR / "app.js").read_text(encoding="utf-8"), flags=re.M)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script


async def test_cross_site_posts_are_refused(server):
    client = server.client(origin="https://evil.example")
    response, data = await client.post("start", {})
    assert response.code == 403 and data["message"]
    assert COOKIE not in client.cookies
    same = server.client(origin=server.base)
    response, data = await same.post("start", {})
    assert response.code == 200
    response = await server.client().raw("POST", "/api/start", b"{}", {
        "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"})
    assert response.code == 403


async def test_rate_limit_per_session_and_per_address(settings):
    catalog = Catalog.load(settings.knowledge_dir / "ui")
    chat = WebChat(settings, build_dialog(settings, require_staff_proof=True), per_session=3, per_address=5)
    server = Server(chat)
    try:
        client = server.client()
        codes = [(await client.post("command", {"name": "meny", "arg": "", "lang": "en"}))[0].code
                 for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response, data = await client.post("command", {"name": "meny", "arg": "", "lang": "en"})
        assert response.code == 429 and data["message"] == catalog.get("telegram.slow_down", "en")
        # A new session from the same address is still held back by the per-address limit.
        response, data = await server.client().post("command", {"name": "meny", "arg": ""})
        assert response.code == 429 and data["message"] == catalog.get("telegram.slow_down", "nb")
    finally:
        await server.close()


async def test_busy_core_answers_503(server):
    server.chat.pending = server.chat.max_pending
    try:
        response, data = await server.client().post("start", {})
    finally:
        server.chat.pending = 0
    assert response.code == 503 and data["message"] == server.chat.catalog.get("web.busy", "nb")


# -- headers and cookies ------------------------------------------------------------------------------------
async def test_security_headers(server):
    response = await server.client().raw("GET", "/")
    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    api, _ = await server.client().post("start", {})
    assert api.headers["Cache-Control"] == "no-store" and "frame-ancestors 'none'" in api.headers[
        "Content-Security-Policy"]


async def test_allowed_origins_may_frame_the_page(settings):
    settings = settings.model_copy(update={"web_allowed_origins": ["https://www.vefsn.kommune.no",
                                                                   "https://skole.example.no"]})
    server = Server(WebChat(settings, build_dialog(settings, require_staff_proof=True)))
    try:
        response = await server.client().raw("GET", "/")
        assert response.headers["Content-Security-Policy"].endswith(
            "frame-ancestors https://www.vefsn.kommune.no https://skole.example.no")
        assert "X-Frame-Options" not in response.headers
    finally:
        await server.close()


async def test_session_cookie_flags(server):
    client = server.client()
    response, _ = await client.post("start", {})
    [header] = response.headers.get_list("Set-Cookie")
    morsel = SimpleCookie(header)[COOKIE]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", morsel.value)
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert not morsel["expires"] and not morsel["max-age"], "a session cookie, gone with the browser session"
    assert not morsel["secure"]  # plain http on loopback; behind HTTPS (see next test) it is Secure
    again, _ = await client.post("start", {})
    assert not again.headers.get_list("Set-Cookie"), "a known session keeps its cookie"
    other = server.client()
    await other.post("start", {})
    assert other.cookies[COOKIE] != client.cookies[COOKIE]


async def test_cookie_is_secure_over_https_behind_a_trusted_proxy(settings):
    chat = WebChat(settings, build_dialog(settings, require_staff_proof=True))
    socket, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(make_app(chat), xheaders=True)
    server.add_sockets([socket])
    try:
        client = Client(f"http://127.0.0.1:{port}")
        response, _ = await client.post("start", {}, headers={"X-Forwarded-Proto": "https",
                                                              "X-Forwarded-For": "203.0.113.7"})
        [header] = response.headers.get_list("Set-Cookie")
        assert SimpleCookie(header)[COOKIE]["secure"]
    finally:
        server.stop()
        await server.close_all_connections()
        chat.close()


# -- catalogue ----------------------------------------------------------------------------------------------
def test_page_labels_exist_in_every_language(settings):
    catalog = Catalog.load(settings.knowledge_dir / "ui")
    for key in PAGE_KEYS:
        for lang in LANGUAGES:
            assert catalog.get(f"web.{key}", lang).strip()
        assert catalog.placeholders(f"web.{key}", "nb") == catalog.placeholders(f"web.{key}", "en") \
            == catalog.placeholders(f"web.{key}", "nn")


def test_missing_catalogue_keys_stop_start_up(settings):
    dialog = build_dialog(settings)
    strings = {lang: {k: v for k, v in dialog.catalog._strings[lang].items() if k != "web.send"}
               for lang in LANGUAGES}
    dialog.catalog = Catalog(strings)
    with pytest.raises(ValueError, match="web.send"):
        WebChat(settings, dialog)


# -- kap12 run / kap12 web ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _wait_healthy(base: str, process, timeout: float = 180) -> None:
    http = tornado.httpclient.AsyncHTTPClient()
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if process.returncode is not None:
            raise AssertionError(f"the server stopped: {(await process.stderr.read()).decode()[-2000:]}")
        try:
            response = await http.fetch(base + "/healthz", request_timeout=1, raise_error=False)
            if response.code == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("the web chat did not come up")


async def _stop(process) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    return stderr.decode()


@pytest.mark.parametrize("with_telegram", [False, True], ids=["web-alone", "beside-telegram"])
async def test_kap12_run_serves_the_web_chat_when_a_port_is_set(hash_settings, tmp_path, with_telegram):
    """KAP12_WEB_PORT makes `kap12 run` serve the page (alone, or beside Telegram on one core) until SIGTERM."""
    from botapi_emulator import BotApiEmulator

    port = _free_port()
    secret = "Hva skal stå i aktivitetsplanen til Ola i 5B?"
    env = {**os.environ, "KAP12_WEB_PORT": str(port), "KAP12_INDEX_DIR": str(hash_settings.index_dir),
           "KAP12_DATA_DIR": str(tmp_path / "run-data")}
    token = "123456:TEST-web-and-telegram"
    async with BotApiEmulator(token=token, lifetime=60) as api:
        if with_telegram:
            env.update(KAP12_TELEGRAM_TOKEN=token, KAP12_TELEGRAM_API_URL=api.base_url)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--verbose", "run", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            await _wait_healthy(base, process)
            client = Client(base)
            response, data = await client.post("start", {})
            assert response.code == 200 and any(b["data"] == "r|parent" for row in data["replies"][0]["buttons"]
                                                for b in row)
            response, _ = await client.post("message", {"text": secret})
            assert response.code == 200
            if with_telegram:
                user = api.user(7001)
                api.send_text(user, "/start")
                try:
                    await api.wait_for(lambda: bool(api.sent_to(7001)), timeout=60)
                except AssertionError:
                    raise AssertionError("Telegram did not answer: " + (await _stop(process))[-3000:]) from None
                assert "r|parent" in api.sent_to(7001)[-1].callback_data()
            log = await _stop(process)
            assert process.returncode == 0, log[-2000:]
            assert "Web chat on" in log and ("polling mode" in log) == with_telegram
            assert "Ola" not in log and token not in log
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


def test_kap12_web_rejects_a_bad_port(capsys):
    from bot.cli import main

    assert main(["web", "--port", "70000"]) == 1
    assert "--port 70000" in capsys.readouterr().err


def test_users_run_side_by_side_and_one_users_calls_never_interleave():
    import threading
    import time

    class SlowCore:
        def __init__(self):
            self.running: dict[str, int] = {}
            self.most_at_once, self.most_per_user = 0, 0
            self.guard = threading.Lock()

        def handle_text(self, user_id, text):
            with self.guard:
                self.running[user_id] = self.running.get(user_id, 0) + 1
                self.most_at_once = max(self.most_at_once, sum(self.running.values()))
                self.most_per_user = max(self.most_per_user, self.running[user_id])
            time.sleep(0.05)
            with self.guard:
                self.running[user_id] -= 1
            return [text]

    core = SlowCore()
    dialog = SerializedDialog(core)
    calls = [threading.Thread(target=dialog.handle_text, args=(user, "hei")) for user in ("a", "a", "b", "b")]
    for call in calls:
        call.start()
    for call in calls:
        call.join()
    assert core.most_at_once == 2  # a and b at the same time
    assert core.most_per_user == 1  # never two of a's (or b's) calls at once
    assert dialog._locks == {}  # nothing kept per user afterwards


async def test_an_english_answer_in_a_bokmal_session_says_it_is_english(server):
    client = server.client()
    await start_as_parent(client)
    response, data = await client.post("message", {"text": "What is an aktivitetsplan?", "lang": "nb"})
    assert response.code == 200 and data["replies"][0]["kind"] in ("answer", "vague", "refusal", "urgent")
    assert data["replies"][0]["lang"] == "en"  # the page labels it and marks it English for screen readers
    assert data["lang"] == "nb"  # the session stays bokmål until the user takes the offer to switch
