"""Sections as answer units: each knowledge section with its short answers, the questions it answers and
the passages it was cut into. Question-first retrieval finds a section by its closest question."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from bot.chunk import SECTION_SEP, Passage
from bot.datafiles import read_yaml_mapping
from bot.errors import DocumentError
from bot.ingest import Document

SITUATIONS_FILE = "situations.yaml"


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
    # Words naming the narrower situation the section is written for ("beskyld", "snap"; from its `when`
    # situations in knowledge/situations.yaml): it leads an answer only when the question uses one of them.
    when: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SectionRecord":
        return cls(**data)


def load_situations(knowledge_dir: Path) -> dict[str, list[str]]:
    """knowledge/situations.yaml: situation id -> the words that name it (none without the file)."""
    path = Path(knowledge_dir) / SITUATIONS_FILE
    situations = read_yaml_mapping(path, required=False).get("situations") or {}
    if not isinstance(situations, dict) or not all(
        isinstance(words, list) and words and all(isinstance(w, str) and w.strip() for w in words)
        for words in situations.values()
    ):
        raise DocumentError(path, "'situations' must map each situation id to a list of words")
    return {str(key): [" ".join(w.lower().split()) for w in words] for key, words in situations.items()}


def section_records(docs: list[Document], passages: list[Passage],
                    situations: dict[str, list[str]] | None = None) -> list[SectionRecord]:
    """One record per (document, heading path), in reading order, linked to its passages.

    Raises DocumentError naming the document when a section's `when` names a situation that does not exist.
    """
    situations = situations or {}
    records: dict[tuple[str, tuple[str, ...]], SectionRecord] = {}
    for doc in docs:
        for section in doc.sections:
            unknown = [s for s in section.when if s not in situations]
            if unknown:
                raise DocumentError(doc.path, f"section '{' › '.join(section.headings)}': unknown situation "
                                              f"{', '.join(unknown)} in 'when' (knowledge/{SITUATIONS_FILE} has: "
                                              f"{', '.join(situations) or 'none'})")
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
                when=[word for situation in section.when for word in situations[situation]],
            )
    for i, passage in enumerate(passages):
        record = records.get((passage.doc_id, passage.headings))
        if record is not None:
            record.passages.append(i)
    return list(records.values())
