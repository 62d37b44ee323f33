"""The conversation core's output: plain data that every channel renders its own way."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Citation:
    """A knowledge-base passage an answer or a flow step rests on."""

    n: int
    passage_id: str
    document: str
    section: str
    refs: tuple[str, ...]
    url: str | None
    updated: str | None
    text: str
    score: float = 0.0

    def to_json(self) -> dict:
        return {
            "n": self.n,
            "document": self.document,
            "section": self.section,
            "refs": list(self.refs),
            "url": self.url,
            "updated": self.updated,
            "text": self.text,
            "score": round(float(self.score), 4),
        }


@dataclass(frozen=True)
class Button:
    """A choice the user can press. `data` is opaque to channels and at most 64 bytes."""

    label: str
    data: str


@dataclass
class Reply:
    """One message to show. `text` is plain text (paragraphs split by blank lines), never markup."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    buttons: list[list[Button]] = field(default_factory=list)
    kind: str = "info"  # info | answer | vague | explain | urgent | decline | refusal | flow_step | menu | error
    feedback_id: str | None = None  # set on answers: channels offer 👍/👎 for it
    help: list[dict] = field(default_factory=list)  # urgent: the help numbers shown ({"number", "name"})
    # The language of this reply when it is not the conversation's (an English answer in a bokmål session):
    # channels label its sources and 👍/👎 in it, and the web page marks it for screen readers.
    lang: str | None = None
