"""How a citation reads as text, the same in every channel: a compact line and a full line.

A walkthrough step shows one compact line per source ("Kapittel 12 forklart › Skriftlig plan, § 12-4") so the
step fits a phone; the full list (document, section, § refs, date, link) sits behind the step's "Kilder"
button and under answers. Headings often carry their own tags ("Si fra til skolen (§ 12-4)",
"Skriv ned det som skjer (råd)"); those are taken out and the § refs are said once, and a link that several
sources share is shown once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.replies import Citation

_SECTION_SEP = " › "
# "(§ 12-4)", "(§§ 10-1 og 10-2)", "(forvaltningsloven § 13)", "(råd)", "(advice)": tags, not words.
_TAG = re.compile(r"\s*\((?:[^()]*§[^()]*|råd|advice|tips)\)", re.IGNORECASE)
_REF_NUMBERS = re.compile(r"\d+-\d+|\d+")


@dataclass(frozen=True)
class SourceLine:
    """One citation as text: `text` without the link; `url` only the first time a reply shows it."""

    n: int
    text: str
    url: str | None


def short_title(document: str) -> str:
    """A document's short name: the part before ": " ("Veiledning for foreldre: når …" → "Veiledning for foreldre")."""
    head, sep, _ = document.partition(": ")
    return head if sep and head else document


def heading(citation: Citation) -> str:
    """The section's own heading (the last part of its path), without tags; the document title if it has none."""
    parts = [part for part in (citation.section or "").split(_SECTION_SEP) if part]
    if parts and parts[0] == citation.document:
        parts = parts[1:]
    last = parts[-1] if parts else ""
    return " ".join(_TAG.sub("", last).split())


def _refs_not_in(text: str, refs) -> list[str]:
    """The refs the text does not already name ("§ 12-1" is not named by "§ 12-10")."""
    named = set(_REF_NUMBERS.findall(text)) if "§" in text else set()
    out = []
    for ref in dict.fromkeys(refs):
        number = ref.rsplit("§", 1)[-1].strip()
        if number not in named:
            out.append(ref)
    return out


def compact_line(citation: Citation) -> str:
    """"Short document › heading, § refs": one short line for a walkthrough step."""
    title, section = short_title(citation.document or citation.passage_id), heading(citation)
    text = f"{title}{_SECTION_SEP}{section}" if section and section != title else title
    refs = _refs_not_in(section, citation.refs)
    return f"{text}, {', '.join(refs)}" if refs else text


def full_line(citation: Citation, updated_label: str | None = None) -> str:
    """"Document › heading (§ refs; updated …)": the line of a full source list, without the link.

    Args:
        updated_label: e.g. "oppdatert {date}"; the date is left out when None.
    """
    title, section = citation.document or citation.passage_id, heading(citation)
    text = f"{title}{_SECTION_SEP}{section}" if section and section != title else title
    notes = []
    refs = _refs_not_in(section, citation.refs)
    if refs:
        notes.append(", ".join(refs))
    if citation.updated and updated_label:
        notes.append(updated_label.format(date=citation.updated))
    return f"{text} ({'; '.join(notes)})" if notes else text


def source_lines(citations, *, compact: bool, updated_label: str | None = None) -> list[SourceLine]:
    """Lines for a reply's citations; a URL is given only on the first line that has it."""
    seen: set[str] = set()
    lines = []
    for citation in citations:
        url = citation.url if citation.url and citation.url.startswith(("https://", "http://")) else None
        if url in seen:
            url = None
        elif url:
            seen.add(url)
        text = compact_line(citation) if compact else full_line(citation, updated_label)
        lines.append(SourceLine(citation.n, text, url))
    return lines
