"""`kap12 chat`: the conversation core in a terminal.

A thin adapter like the Telegram one: it turns lines into `Dialog` calls and `Reply` objects into plain
text. Buttons become numbered options (type the number to press one); commands start with a slash. It
reads stdin line by line, so `printf '1\\nhva er en aktivitetsplan?\\n' | kap12 chat` works, and it exits
with 0 at the end of input.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

from bot.dialog import Dialog, build_dialog, clean_text
from bot.errors import Kap12Error
from bot.i18n import Catalog
from bot.replies import Citation, Reply

USER_ID = "console"  # one local operator; no staff proof needed

log = logging.getLogger(__name__)


def format_citation(citation: Citation) -> str:
    """`[n] Document › Section (§ refs) url`; the section path often starts with the title already."""
    where = citation.section or ""
    if not where.startswith(citation.document):
        where = f"{citation.document} › {where}" if where else citation.document
    line = f"[{citation.n}] {where}"
    # Headings often name their § already; "§ 12-1" is not named by "§ 12-10".
    refs = [ref for ref in citation.refs if not re.search(re.escape(ref) + r"(?![\d-])", where)]
    if refs:
        line += f" ({', '.join(refs)})"
    if citation.url:
        line += f" {citation.url}"
    return line


class ConsoleChat:
    """Keeps the numbered options of the last replies and turns typed lines into core calls."""

    def __init__(self, dialog: Dialog, stdout: TextIO, user_id: str = USER_ID):
        self.dialog = dialog
        self.stdout = stdout
        self.user_id = user_id
        # number → ("button", data) or ("vote", feedback_id, up)
        self.options: dict[int, tuple] = {}

    def _t(self, key: str, **fmt) -> str:
        return self.dialog.catalog.get(f"dialog.{key}", self.dialog.language(self.user_id), **fmt)

    def _print(self, text: str = "") -> None:
        print(text, file=self.stdout)

    def show(self, replies: list[Reply]) -> None:
        """Print replies; their buttons (and 👍/👎 for answers) become the options 1, 2, 3 …"""
        options: dict[int, tuple] = {}
        for reply in replies:
            self._print(reply.text)
            if reply.citations:
                self._print()
                self._print(self._t("console.sources"))
                for citation in reply.citations:
                    self._print(format_citation(citation))
            rows = [button for row in reply.buttons for button in row]
            if reply.feedback_id:
                self._print()
                self._print(self._t("console.vote_prompt"))
                for up in (True, False):
                    number = len(options) + 1
                    options[number] = ("vote", reply.feedback_id, up)
                    self._print(f"  {number}) {self._t('button.vote_up' if up else 'button.vote_down')}")
            if rows:
                self._print()
                for button in rows:
                    number = len(options) + 1
                    options[number] = ("button", button.data)
                    self._print(f"  {number}) {button.label}")
            self._print()
        if options:  # a reply without buttons (e.g. "thanks") keeps the earlier options usable
            self.options = options
            self._print(self._t("console.choose"))
            self._print()

    def handle_line(self, line: str) -> list[Reply]:
        """One typed line: /command [arg], an option number, or text for the core."""
        text = clean_text(line)
        if text.startswith("/") and len(text) > 1:
            command, _, arg = text[1:].partition(" ")
            return self.dialog.handle_command(self.user_id, command, arg.strip())
        if text.isascii() and text.isdigit():
            option = self.options.get(int(text))
            if option is None:
                return [Reply(self._t("console.no_option", number=text))]
            if option[0] == "vote":
                return self.dialog.vote(self.user_id, option[1], option[2])
            return self.dialog.handle_button(self.user_id, option[1])
        return self.dialog.handle_text(self.user_id, text)


def run_chat(settings, dialog: Dialog | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Chat in the terminal until end of input. Returns the exit code (0, or 1 if the chat cannot start).

    stdin and stdout default to the process's streams as they are when the chat starts.
    """
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    if dialog is None:
        catalog = None
        try:
            catalog = Catalog.load(settings.knowledge_dir / "ui")
            dialog = build_dialog(settings, catalog=catalog)
        except Kap12Error as exc:
            message = str(exc)
            if catalog is not None and "dialog.console.startup_error" in catalog:
                message = catalog.get("dialog.console.startup_error", "nb", error=exc)
            print(message, file=stdout)
            return 1
    chat = ConsoleChat(dialog, stdout)
    interactive = hasattr(stdin, "isatty") and stdin.isatty()
    chat.show(dialog.handle_command(USER_ID, "start"))
    while True:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        try:
            line = stdin.readline()
        except KeyboardInterrupt:
            line = ""
        if not line:
            if interactive:
                stdout.write("\n")
            return 0
        if not clean_text(line):
            continue  # a blank line is no message; the prompt just comes back
        if not interactive:
            print(f"> {line.rstrip()}", file=stdout)  # a scripted transcript shows what was typed
        try:
            replies = chat.handle_line(line)
        except KeyboardInterrupt:
            return 0
        except Exception:
            # The console's central error handler: traceback to the log, a calm line to the user.
            log.exception("the chat failed on an input line (text not logged)")
            replies = [Reply(chat._t("error"))]
        chat.show(replies)
