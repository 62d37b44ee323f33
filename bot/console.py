"""`kap12 chat`: the conversation core in a terminal.

A thin adapter like the Telegram one: it turns lines into `Dialog` calls and `Reply` objects into plain
text. Buttons become numbered options (type the number to press one); commands start with a slash. It
reads stdin line by line, so `printf '1\\nhva er en aktivitetsplan?\\n' | kap12 chat` works, and it exits
with 0 at the end of input.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from bot.dialog import Dialog, build_dialog, clean_text
from bot.errors import Kap12Error
from bot.i18n import Catalog
from bot.replies import Citation, Reply
from bot.source_lines import full_line, source_lines

USER_ID = "console"  # one local operator; no staff proof needed

log = logging.getLogger(__name__)


def format_citation(citation: Citation, *, with_url: bool = True) -> str:
    """`[n] Document › Section (§ refs) url`: one line of a full source list."""
    line = f"[{citation.n}] {full_line(citation)}"
    url = citation.url if with_url and citation.url else None
    return f"{line} {url}" if url else line


class ConsoleChat:
    """Keeps the numbered options of the last replies and turns typed lines into core calls.

    Options are numbered in the order the buttons come (a walkthrough step's own buttons first, then its
    back/sources, ask and menu), and 👍/👎 of an answer come after them, so "1" means the same kind of
    thing wherever it appears. A reply without buttons (thanks for a vote, a wrong number) shows the
    options that are still valid again.
    """

    def __init__(self, dialog: Dialog, stdout: TextIO, user_id: str = USER_ID):
        self.dialog = dialog
        self.stdout = stdout
        self.user_id = user_id
        # number → (label, ("button", data) or ("vote", feedback_id, up))
        self.options: dict[int, tuple[str, tuple]] = {}

    def _t(self, key: str, lang: str | None = None, **fmt) -> str:
        return self.dialog.catalog.get(f"dialog.{key}", lang or self.dialog.language(self.user_id), **fmt)

    def _print(self, text: str = "") -> None:
        print(text, file=self.stdout)

    def show(self, replies: list[Reply]) -> None:
        """Print replies; their buttons (then 👍/👎 for answers) become the options 1, 2, 3 …"""
        options: dict[int, tuple[str, tuple]] = {}
        for reply in replies:
            self._print(reply.text)
            if reply.citations:
                self._print()
                self._print(self._t("console.sources", reply.lang))
                compact = reply.kind == "flow_step"  # a step: one short line per source; "Kilder" has the rest
                for line in source_lines(reply.citations, compact=compact):
                    if compact:
                        self._print(f"  · {line.text}")
                    else:
                        self._print(f"[{line.n}] {line.text}" + (f" {line.url}" if line.url else ""))
            buttons = [(button.label, ("button", button.data)) for row in reply.buttons for button in row]
            votes = [(self._t("button.vote_up", reply.lang), ("vote", reply.feedback_id, True)),
                     (self._t("button.vote_down", reply.lang), ("vote", reply.feedback_id, False))
                     ] if reply.feedback_id else []
            # "Var svaret nyttig?" heads the votes only: "Se også …" above it is not feedback
            for group, prompt in ((buttons, None), (votes, "console.vote_prompt")):
                if not group:
                    continue
                self._print()
                if prompt:
                    self._print(self._t(prompt, reply.lang))
                for label, action in group:
                    number = len(options) + 1
                    options[number] = (label, action)
                    self._print(f"  {number}) {label}")
            self._print()
        if options:
            self.options = options
        elif self.options:  # nothing new to press: the earlier options still work, so show them again
            for number, (label, _) in self.options.items():
                self._print(f"  {number}) {label}")
            self._print()
        if self.options:
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
            action = option[1]
            if action[0] == "vote":
                return self.dialog.vote(self.user_id, action[1], action[2])
            return self.dialog.handle_button(self.user_id, action[1])
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
