"""Render the core's replies as Telegram messages: HTML text, message splitting and inline keyboards.

Nothing here decides what to say; it only turns `Reply` objects into what the Bot API accepts. Every piece
of text that comes from the knowledge base or a user is escaped, and every part of a split reply is valid
HTML on its own, because blocks are escaped one by one and tags never span two blocks.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import InlineKeyboardButtonLimit, MessageLimit

from bot.replies import Button, Citation, Reply
from bot.source_lines import compact_line, full_line

MAX_TEXT_LENGTH = MessageLimit.MAX_TEXT_LENGTH
MAX_CALLBACK_DATA = InlineKeyboardButtonLimit.MAX_CALLBACK_DATA

# Feedback buttons are the adapter's own; the core never sees this format, only `dialog.vote(...)`.
FEEDBACK_PREFIX = "fb"
_FEEDBACK_RE = re.compile(r"^fb\|([+-])\|([A-Za-z0-9_.:-]{1,56})$")

# A citation title longer than this is cut: a heading is never that long unless something is broken,
# and one citation must never be able to fill a whole message.
_MAX_TITLE_CHARS = 300
_SENTENCE_END = re.compile(r"(?<=[.!?…:;])\s+")


@dataclass(frozen=True)
class Labels:
    """Adapter words that appear inside rendered replies, taken from the UI catalogue."""

    sources: str
    updated: str  # with a {date} placeholder
    vote_up: str
    vote_down: str
    choose: str

    @classmethod
    def from_catalog(cls, catalog, lang: str) -> "Labels":
        def t(key: str, **fmt) -> str:
            return catalog.get(f"telegram.{key}", lang, **fmt)

        return cls(sources=t("sources"), updated=t("updated", date="{date}"), vote_up=t("vote_up"),
                   vote_down=t("vote_down"), choose=t("choose"))


@dataclass(frozen=True)
class OutgoingMessage:
    """One Telegram message ready to send with parse_mode HTML."""

    html: str
    keyboard: InlineKeyboardMarkup | None = None


def tg_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units), so emoji outside the BMP count as two."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    """Escape text for Telegram HTML (&, <, > and quotes)."""
    return html.escape(text, quote=True)


def feedback_data(feedback_id: str, up: bool) -> str:
    """Callback data for a 👍/👎 button; raises ValueError if the id cannot be carried safely."""
    data = f"{FEEDBACK_PREFIX}|{'+' if up else '-'}|{feedback_id}"
    if not _FEEDBACK_RE.match(data) or len(data.encode()) > MAX_CALLBACK_DATA:
        raise ValueError(f"feedback id {feedback_id!r} does not fit in callback data")
    return data


def parse_feedback(data: str) -> tuple[str, bool] | None:
    """Return (feedback_id, up) for our own feedback callback data, or None for anything else."""
    match = _FEEDBACK_RE.match(data)
    if not match:
        return None
    return match.group(2), match.group(1) == "+"


def is_feedback_like(data: str) -> bool:
    """True for data that claims to be feedback (starts with our prefix), valid or not."""
    return data.startswith(FEEDBACK_PREFIX + "|")


def build_keyboard(
    rows: list[list[Button]], feedback_id: str | None = None, labels: Labels | None = None
) -> InlineKeyboardMarkup | None:
    """Inline keyboard from the core's button rows, plus a 👍/👎 row when the reply asks for feedback.

    Raises:
        ValueError: a button's data is longer than Telegram allows (a bug in the core, not user input).
    """
    keyboard: list[list[InlineKeyboardButton]] = []
    for row in rows:
        buttons = []
        for button in row:
            if not button.data or len(button.data.encode()) > MAX_CALLBACK_DATA:
                raise ValueError(f"callback data must be 1-{MAX_CALLBACK_DATA} bytes: {button.data!r}")
            buttons.append(InlineKeyboardButton(button.label, callback_data=button.data))
        if buttons:
            keyboard.append(buttons)
    if feedback_id:
        if labels is None:
            raise ValueError("feedback buttons need their labels")
        keyboard.append(
            [
                InlineKeyboardButton(labels.vote_up, callback_data=feedback_data(feedback_id, True)),
                InlineKeyboardButton(labels.vote_down, callback_data=feedback_data(feedback_id, False)),
            ]
        )
    return InlineKeyboardMarkup(keyboard) if keyboard else None


def without_feedback_row(markup: InlineKeyboardMarkup | None) -> InlineKeyboardMarkup | None:
    """The same keyboard with our 👍/👎 row removed (after a vote), or None if nothing is left."""
    if markup is None:
        return None
    rows = [
        row
        for row in markup.inline_keyboard
        if not any(isinstance(b.callback_data, str) and is_feedback_like(b.callback_data) for b in row)
    ]
    return InlineKeyboardMarkup(rows) if rows else None


def render_citation(citation: Citation, labels: Labels, *, compact: bool = False, link: bool = True) -> str:
    """One source line, linked when it has a safe URL and `link` is set.

    Full: "n. Document › Section (§ refs; updated date)". Compact (a walkthrough step): "• Short document ›
    Section, § refs". Both come from `bot.source_lines`, so the terminal chat reads the same.
    """
    if compact:
        title = compact_line(citation)
    else:
        title = full_line(citation, labels.updated)
    if len(title) > _MAX_TITLE_CHARS:
        title = title[: _MAX_TITLE_CHARS - 1] + "…"
    title_html = escape(title)
    if link and citation.url and citation.url.startswith(("https://", "http://")):
        title_html = f'<a href="{escape(citation.url)}">{title_html}</a>'
    return f"• {title_html}" if compact else f"{citation.n}. {title_html}"


def split_plain(text: str, limit: int = MAX_TEXT_LENGTH) -> list[str]:
    """Split one over-long paragraph into plain pieces whose escaped form fits in `limit`.

    Tries sentence boundaries first, then spaces, and cuts a single endless word as a last resort.
    """
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if tg_len(escape(sentence)) <= limit:
            pieces.append(sentence)
            continue
        for word in sentence.split():
            while tg_len(escape(word)) > limit:
                cut = _longest_prefix(word, limit)
                pieces.append(word[:cut])
                word = word[cut:]
            pieces.append(word)
    return _pack([(" ", p) for p in pieces if p], limit, measure=lambda s: tg_len(escape(s)))


def _longest_prefix(word: str, limit: int) -> int:
    """Largest n such that escape(word[:n]) fits (binary search; escaping makes length non-linear)."""
    low, high = 1, len(word)
    while low < high:
        mid = (low + high + 1) // 2
        if tg_len(escape(word[:mid])) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def _pack(pieces: list[tuple[str, str]], limit: int, measure=tg_len) -> list[str]:
    """Greedily join (separator, piece) pairs into parts whose measured length stays within `limit`.

    Every piece must fit on its own; callers split over-long pieces first.
    """
    parts: list[str] = []
    current = ""
    for sep, piece in pieces:
        candidate = f"{current}{sep}{piece}" if current else piece
        if measure(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        current = piece
    if current:
        parts.append(current)
    return parts


def render_reply(
    reply: Reply, labels: Labels, *, with_buttons: bool = True, limit: int = MAX_TEXT_LENGTH
) -> list[OutgoingMessage]:
    """Turn one Reply into one or more messages; the keyboard rides on the last one.

    Args:
        reply: the core's reply (plain text, citations, buttons, feedback id).
        labels: adapter words from the catalogue.
        with_buttons: False in group chats, where the core's buttons (walkthroughs, menus) are not offered;
            the 👍/👎 row stays.
        limit: message length limit; only tests pass something smaller.
    """
    blocks: list[tuple[str, str]] = []
    for paragraph in (p.strip() for p in reply.text.split("\n\n")):
        if not paragraph:
            continue
        if tg_len(escape(paragraph)) <= limit:
            blocks.append(("\n\n", escape(paragraph)))
        else:
            blocks.extend(("\n\n", escape(piece)) for piece in split_plain(paragraph, limit))
    compact = reply.kind == "flow_step"  # a step shows one short line per source; "Kilder" has the full list
    linked: set[str] = set()
    for i, citation in enumerate(reply.citations):
        line = render_citation(citation, labels, compact=compact, link=citation.url not in linked)
        if citation.url:
            linked.add(citation.url)  # the same page is linked once per reply
        if i == 0:
            # The heading travels with the first source so it is never left alone at the end of a part.
            blocks.append(("\n\n", f"<b>{escape(labels.sources)}</b>\n{line}"))
        else:
            blocks.append(("\n", line))

    keyboard = build_keyboard(reply.buttons if with_buttons else [], reply.feedback_id, labels)
    parts = _pack(blocks, limit)
    if not parts:
        if keyboard is None:
            return []
        parts = [escape(labels.choose)]
    messages = [OutgoingMessage(part) for part in parts[:-1]]
    messages.append(OutgoingMessage(parts[-1], keyboard))
    return messages
