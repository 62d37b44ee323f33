"""Split documents into passages sized for a chat message, each with full provenance."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass

from bot.ingest import Document
from bot.refs import find_refs

SECTION_SEP = " › "
# A passage should read well in a chat: a few sentences up to a short paragraph.
MAX_CHARS = 750
MIN_CHARS = 220

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?»])\s+(?=[A-ZÆØÅ0-9«(§\-])|\n")
# Abbreviations that never end a sentence (Norwegian and English legal and plain text).
_ABBREVIATION = re.compile(
    r"(?:^|[\s(])(?:jf|jfr|f\.eks|bl\.a|dvs|ca|nr|pkt|kap|evt|mv|ref|prop|prp|e\.g|i\.e|vs)\.$", re.I)
LIST_ITEM = re.compile(r"^(?:[-•]|\d+\.\s)")  # a bullet or a numbered item


@dataclass(frozen=True)
class Passage:
    """One citable piece of a document."""

    id: str
    doc_id: str
    doc_title: str
    kind: str
    section: str  # "Title › Heading › Subheading"
    headings: tuple[str, ...]
    text: str
    page: int | None
    position: int  # order of the passage within its document
    audience: str
    language: str
    url: str | None
    updated: str | None
    refs: tuple[str, ...]
    content_hash: str
    readers: tuple[str, ...] = ()  # roles the document is written for; () = everyone its audience allows

    def embed_text(self) -> str:
        """What the embedder and lexical index see: the heading path gives a short passage its context."""
        return f"{self.section}\n{self.text}"

    def to_json(self) -> dict:
        data = asdict(self)
        data["headings"] = list(self.headings)
        data["refs"] = list(self.refs)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Passage":
        return cls(**{**data, "headings": tuple(data["headings"]), "refs": tuple(data["refs"]),
                      "readers": tuple(data.get("readers", ()))})


def split_sentences(text: str) -> list[str]:
    """Sentences and lines; a list number ("2.") stays with the item it numbers, and an abbreviation ("jf. § 10-1",
    "f.eks. SFO") does not end a sentence."""
    units: list[str] = []
    for unit in (s.strip() for s in _SENTENCE_SPLIT.split(text) if s and s.strip()):
        if units and (re.fullmatch(r"\d+\.", units[-1]) or _ABBREVIATION.search(units[-1])):
            units[-1] = f"{units[-1]} {unit}"
        else:
            units.append(unit)
    return units


def _pieces(section_text: str) -> list[str]:
    """Paragraphs, with long ones cut at sentence boundaries and short ones joined to their neighbour."""
    pieces: list[str] = []
    for para in section_text.split("\n\n"):
        if len(para) <= MAX_CHARS:
            pieces.append(para)
            continue
        current = ""
        for sentence in split_sentences(para):
            sep = "\n" if LIST_ITEM.match(sentence) or current.endswith(":") else " "
            if current and len(current) + len(sentence) + 1 > MAX_CHARS:
                pieces.append(current)
                current = sentence
            else:
                current = f"{current}{sep}{sentence}" if current else sentence
        if current:
            pieces.append(current)
    merged: list[str] = []
    for piece in pieces:
        # A short lead-in ("Planen skal vise:") belongs with what follows it.
        if (
            merged
            and (len(merged[-1]) < MIN_CHARS or len(piece) < MIN_CHARS or merged[-1].endswith(":"))
            and len(merged[-1]) + len(piece) + 2 <= MAX_CHARS
        ):
            merged[-1] = f"{merged[-1]}\n\n{piece}"
        else:
            merged.append(piece)
    return _with_lead_in(merged)


def _with_lead_in(pieces: list[str]) -> list[str]:
    """A list too long for one passage: every piece of it starts with the sentence that introduces it
    ("Så må skolen gjøre dette:"), so a passage never opens with a bare "4. Lage en skriftlig plan …"."""
    out: list[str] = []
    lead = None
    for piece in pieces:
        if out and lead and LIST_ITEM.match(piece):
            if out[-1].endswith(lead) and len(out[-1]) > len(lead):
                out[-1] = out[-1][: -len(lead)].rstrip()  # the lead-in moves to its list
            piece = f"{lead}\n{piece}"
        out.append(piece)
        for line in filter(None, (line.strip() for line in piece.split("\n"))):
            last_sentence = (split_sentences(line) or [""])[-1]
            if last_sentence.endswith(":"):
                lead = last_sentence
            elif not LIST_ITEM.match(line):
                lead = None
    return out


def chunk_document(doc: Document) -> list[Passage]:
    """All passages of a document, in reading order, with stable ids."""
    passages: list[Passage] = []
    seen_ids: set[str] = set()
    for section in doc.sections:
        section_path = SECTION_SEP.join((doc.title,) + section.headings)
        # A passage stands for its section: the rules named anywhere in the section (or its answer block)
        # are the rules it rests on, even when this piece of it does not repeat the number.
        old = doc.pre_2017_numbers
        heading_refs = (find_refs(" ".join(section.headings), pre_2017=old) + list(section.refs)
                        + find_refs(section.text, pre_2017=old))
        for text in _pieces(section.text):
            refs = tuple(dict.fromkeys(find_refs(text, pre_2017=old) + heading_refs))
            digest = hashlib.sha1(f"{doc.id}\n{section_path}\n{text}".encode()).hexdigest()
            pid = f"{doc.id}#{digest[:10]}"
            while pid in seen_ids:  # identical text twice in one section: keep ids unique and stable
                pid += "x"
            seen_ids.add(pid)
            passages.append(
                Passage(
                    id=pid,
                    doc_id=doc.id,
                    doc_title=doc.title,
                    kind=doc.kind,
                    section=section_path,
                    headings=section.headings,
                    text=text,
                    page=section.page,
                    position=len(passages),
                    audience=doc.audience,
                    language=doc.language,
                    url=doc.url if section.sources is None else next(iter(section.sources), None),
                    updated=doc.updated,
                    refs=refs,
                    readers=doc.readers,
                    content_hash=hashlib.sha1(f"{section_path}\n{text}".encode()).hexdigest(),
                )
            )
    return passages
