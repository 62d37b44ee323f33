"""Sections as answer units: each knowledge section with its short answers, the questions it answers and
the passages it was cut into. Question-first retrieval finds a section by its closest question."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bot.chunk import SECTION_SEP, Passage
from bot.ingest import Document


@dataclass
class SectionRecord:
    key: str  # "<document id>#<heading path>"
    doc_id: str
    path: str  # "Title › Heading › Subheading", as passages show it
    audience: str
    language: str
    short: dict[str, str] | None
    questions: list[str]
    passages: list[int] = field(default_factory=list)  # positions in the index's passage list
    readers: list[str] = field(default_factory=list)  # roles the document is written for; [] = all

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SectionRecord":
        return cls(**data)


def section_records(docs: list[Document], passages: list[Passage]) -> list[SectionRecord]:
    """One record per (document, heading path), in reading order, linked to its passages."""
    records: dict[tuple[str, tuple[str, ...]], SectionRecord] = {}
    for doc in docs:
        for section in doc.sections:
            key = (doc.id, section.headings)
            if key in records:  # the same heading path twice: merge, keep the first short answer
                records[key].questions += list(section.questions)
                continue
            records[key] = SectionRecord(
                key=f"{doc.id}#{SECTION_SEP.join(section.headings)}",
                doc_id=doc.id,
                path=SECTION_SEP.join((doc.title,) + section.headings),
                audience=doc.audience,
                language=doc.language,
                short=dict(section.short) if section.short else None,
                questions=list(section.questions),
                readers=list(doc.readers),
            )
    for i, passage in enumerate(passages):
        record = records.get((passage.doc_id, passage.headings))
        if record is not None:
            record.passages.append(i)
    return list(records.values())
