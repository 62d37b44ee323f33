"""Test doubles for the conversation core: a small, honest Answerer (state isolation is in conftest.py).

FakeAnswerer has the real Answerer's methods (ask, citations_for_keys, sources) and returns real
`bot.replies.Citation` objects, built from the real knowledge documents without any index: each Markdown
heading makes a section, and a section's § references are those in its heading path and text. It is honest
in the ways the core relies on: it answers only questions that contain a word it knows (and refuses
everything else), it resolves passage keys the way the real one does (document id + heading prefix), and it
never gives a parent a staff-only passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.roles import ROLES
from bot.refs import find_refs
from bot.answer import Answer, Router
from bot.replies import Citation

REPO = Path(__file__).resolve().parent.parent
KNOWLEDGE = REPO / "knowledge"

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")

# word in the question → (passage key it answers from, suggested flow)
TOPICS = {
    "aktivitetsplan": ("kapittel-12-forklart#Skriftlig plan", None),
    "statsforvalter": ("veiledning-for-foreldre#Melde saken til Statsforvalteren", "statsforvalteren"),
    "kollega": ("rutiner-for-ansatte#Når en kollega krenker en elev", "kollega-krenker"),
    "mobbing": ("kapittel-12-forklart#§ 12-2", "forelder-utrygg"),
}



@dataclass(frozen=True)
class FakePassage:
    id: str
    doc_id: str
    title: str
    audience: str
    headings: tuple[str, ...]
    text: str
    refs: tuple[str, ...]
    url: str | None
    updated: str | None


def _front_matter(text: str) -> tuple[dict, str]:
    if text.startswith("---\n"):
        head, _, body = text[4:].partition("\n---\n")
        return yaml.safe_load(head) or {}, body
    return {}, text


def load_documents(knowledge: Path = KNOWLEDGE) -> tuple[dict[str, dict], list[FakePassage]]:
    """Document metadata by id, and one passage per section of every document."""
    documents: dict[str, dict] = {}
    passages: list[FakePassage] = []
    for path in sorted(knowledge.iterdir()):
        if path.suffix == ".md":
            meta, body = _front_matter(path.read_text(encoding="utf-8"))
        elif path.suffix in (".txt", ".html", ".pdf", ".docx") and path.with_name(path.name + ".meta.yaml").exists():
            meta = yaml.safe_load(path.with_name(path.name + ".meta.yaml").read_text(encoding="utf-8"))
            body = path.read_text(encoding="utf-8", errors="replace") if path.suffix == ".txt" else ""
        else:
            continue
        doc_id = path.name.split(".")[0]
        sources = meta.get("sources") or []
        doc = {
            "id": doc_id, "title": str(meta.get("title") or doc_id), "kind": meta.get("kind"),
            "audience": meta.get("audience", "public"), "language": meta.get("language", "nb"),
            "updated": str(meta["updated"]) if meta.get("updated") else None, "url": sources[0] if sources else None,
        }
        sections: list[tuple[tuple[str, ...], list[str]]] = [((), [])]
        stack: list[tuple[int, str]] = []
        for line in body.splitlines():
            match = _HEADING.match(line)
            if match:
                level = len(match.group(1))
                stack = [(lvl, h) for lvl, h in stack if lvl < level] + [(level, match.group(2))]
                sections.append((tuple(h for lvl, h in stack if lvl > 1), []))
            else:
                sections[-1][1].append(line)
        for number, (headings, lines) in enumerate(sections):
            text = " ".join(" ".join(lines).split())
            if not text and not headings:
                continue
            passages.append(FakePassage(
                id=f"{doc_id}#{number}", doc_id=doc_id, title=doc["title"], audience=doc["audience"],
                headings=headings, text=text, refs=tuple(find_refs(" ".join(headings) + " " + text)),
                url=doc["url"], updated=doc["updated"],
            ))
        documents[doc_id] = {**doc, "passages": sum(p.doc_id == doc_id for p in passages)}
    return documents, passages


@dataclass
class FakeAnswerer:
    """Deterministic stand-in for bot.answer.Answerer; records what the core asked it."""

    asked: list[tuple[str, str, str]] = field(default_factory=list)
    key_calls: list[tuple[tuple[str, ...], str]] = field(default_factory=list)

    def __post_init__(self):
        self.documents, self.passages = load_documents()
        self.router = Router.load(KNOWLEDGE)  # the real routing data: tool buttons, suggested walkthroughs

    @staticmethod
    def known_phrase(text: str) -> str | None:
        return None

    @staticmethod
    def role_stated(text: str) -> str | None:
        return None  # the fake has no chat classifier

    def resolve(self, key: str, role: str) -> FakePassage | None:
        """The first passage of the key's document whose title or a heading starts with the key's heading."""
        doc_id, _, heading = key.partition("#")
        heading = heading.strip().casefold()
        for passage in self.passages:
            if passage.doc_id != doc_id or (passage.audience == "staff" and role == "parent"):
                continue
            if any(h.casefold().startswith(heading) for h in (passage.title, *passage.headings)):
                return passage
        return None

    @staticmethod
    def citation(n: int, passage: FakePassage) -> Citation:
        return Citation(
            n=n, passage_id=passage.id, document=passage.title,
            section=" › ".join((passage.title, *passage.headings)), refs=passage.refs, url=passage.url,
            updated=passage.updated, text=passage.text,
        )

    def ask(self, question: str, role: str = "parent", lang: str = "nb", **options) -> Answer:
        """Like the real one, minus safety and the scope gate: known words answer, anything else is refused."""
        if role not in ROLES:
            raise ValueError(f"unknown role '{role}'")
        self.asked.append((question, role, lang))
        folded = question.casefold()
        for word, (key, flow) in TOPICS.items():
            passage = self.resolve(key, role) if word in folded else None
            if passage is not None:
                return Answer(question, True, f"{passage.text[:80]} [1]", [self.citation(1, passage)], flow, role,
                              lang=lang, section=key)
        return Answer(question, False, "Jeg fant ikke noe om dette i kildene.", [], None, role, kind="refusal",
                      lang=lang)

    def general_help(self, writer_role, lang: str):
        return None  # the fake has no safety check

    def short_answer(self, section_key, lang: str):
        return None

    def citations_for_keys(self, keys: list[str], role: str) -> list[Citation]:
        self.key_calls.append((tuple(keys), role))
        citations: list[Citation] = []
        for key in keys:
            passage = self.resolve(key, role)
            if passage is not None and all(c.passage_id != passage.id for c in citations):
                citations.append(self.citation(len(citations) + 1, passage))
        return citations

    def sources(self) -> list[dict]:
        return list(self.documents.values())
