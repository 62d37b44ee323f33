"""Read knowledge files (Markdown, text, PDF, DOCX, HTML) into documents made of headed sections.

Markdown carries its metadata in front matter; other formats in a sidecar `<file name>.meta.yaml`.
Each reader only extracts text and headings; chunking into passages happens in `bot.chunk`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.errors import DocumentError, EmptyKnowledgeError
from bot.refs import find_refs
from bot.roles import ROLES

log = logging.getLogger(__name__)

KINDS = ("law-guide", "plan", "routine", "guidance", "municipal-decision")
AUDIENCES = ("public", "staff")
LANGUAGES = ("nb", "nn", "en")
FORMATS = (".md", ".txt", ".pdf", ".docx", ".html", ".htm")
SIDECAR = ".meta.yaml"
# Folders under knowledge/ that hold other content than documents.
SKIP_DIRS = ("flows", "ui")


@dataclass
class Section:
    """A run of text under one heading path. Paragraphs are separated by blank lines."""

    headings: tuple[str, ...]
    text: str
    page: int | None = None
    sources: tuple[str, ...] | None = None  # the section's own source URLs; None = the document's; () = none
    short: dict[str, str] | None = None  # the section's short answer per language (```answer block)
    questions: tuple[str, ...] = ()  # questions people ask that this section answers (indexed, never shown)
    refs: tuple[str, ...] = ()  # the rules a plain-language section rests on (```answer block `refs`)
    when: tuple[str, ...] = ()  # words naming the narrower situation the section is for (```answer block `when`)


@dataclass
class Document:
    id: str
    title: str
    kind: str
    audience: str
    language: str
    updated: str | None
    sources: list[str]
    path: Path
    sections: list[Section] = field(default_factory=list)
    municipality: str | None = None  # local content: served only where KAP12_MUNICIPALITY names it
    readers: tuple[str, ...] = ()  # roles a document is written for (e.g. pupil); () = everyone its audience allows
    # A small-letter "§ 9a-n" in it is the numbering before August 2017, not the 9 A-n most people mean by it
    # (a text that tells the two apart: gammel-og-ny-lov.md).
    pre_2017_numbers: bool = False

    @property
    def url(self) -> str | None:
        return self.sources[0] if self.sources else None


# ---------------------------------------------------------------- text normalisation

_SOFT_HYPHEN = "\u00ad"
_LINE_END_HYPHEN = re.compile(r"(\w)-\n[ \t]*(?=[a-zæøå])")
_BULLET = re.compile(r"^\s*(?:[-*•–]\s+|\d{1,2}[.)]\s+|[a-zæøå]\)\s+)", re.IGNORECASE)
_LETTERED_POINT = re.compile(r"^\s*([a-zæøå])\)\s+(.*)$", re.IGNORECASE | re.DOTALL)
_CONJUNCTIONS = ("og ", "eller ", "and ", "or ")
_SENTENCE_END = (".", "!", "?", ":", "»", '"', ")")


def normalise_text(text: str) -> str:
    """Undo hard wrapping, line-end hyphenation and repeated spaces without changing any word.

    Paragraphs (blank-line separated) are kept; lines inside a paragraph are joined, except that bullet
    and lettered list items start a new line.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ").replace(_SOFT_HYPHEN, "")
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())

    def dehyphen(match: re.Match) -> str:
        # "barne-\nog ungdom" is a real hyphen before a conjunction, not a split word.
        if match.string.startswith(_CONJUNCTIONS, match.end()):
            return match.group(1) + "- "
        return match.group(1)

    text = _LINE_END_HYPHEN.sub(dehyphen, text)
    paragraphs = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [re.sub(r"[ \t]+", " ", line).strip() for line in block.split("\n")]
        lines = [line for line in lines if line]
        if not lines:
            continue
        joined: list[str] = []
        for line in lines:
            if joined and not _BULLET.match(line):
                joined[-1] += " " + line
            else:
                joined.append(line)
        paragraph = "\n".join(joined)
        # A blank line in the middle of a sentence (common in exported documents) is not a paragraph break.
        if (
            paragraphs
            and paragraph[0].islower()
            and not _BULLET.match(paragraph)
            and not paragraphs[-1].endswith(_SENTENCE_END)
        ):
            paragraphs[-1] += " " + paragraph
        else:
            paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def split_lettered_points(text: str, headings: tuple[str, ...], page: int | None = None) -> list[Section]:
    """Plain text without headings: treat lettered points ("a) Å sikre …") as section headings.

    Municipal decisions are often structured as lettered points; the point itself is the best heading a
    citation can show, and the paragraphs after it belong to it.
    """
    sections: list[Section] = []
    current_heads, current = headings, []
    for para in text.split("\n\n"):
        point = _LETTERED_POINT.match(para)
        if point:
            if current:
                sections.append(Section(current_heads, "\n\n".join(current), page))
            current_heads, current = headings + (f"{point.group(1)}) {_heading_from(point.group(2))}",), [para]
        else:
            current.append(para)
    if current:
        sections.append(Section(current_heads, "\n\n".join(current), page))
    return sections


def _heading_from(text: str, limit: int = 90) -> str:
    text = " ".join(text.split()).rstrip(".:")
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


# ---------------------------------------------------------------- metadata


def _validate_meta(path: Path, meta: dict, defaults: dict) -> dict:
    if not isinstance(meta, dict):
        raise DocumentError(path, "metadata must be a YAML mapping (key: value)")
    merged = {**defaults, **{k: v for k, v in meta.items() if v is not None}}
    if "updated" in meta:  # an explicit empty date means "unknown", not "use the file's date"
        merged["updated"] = meta["updated"]
    for key in ("title", "kind", "audience", "language"):
        if not merged.get(key):
            raise DocumentError(path, f"metadata is missing '{key}'")
    if merged["kind"] not in KINDS:
        raise DocumentError(path, f"unknown kind '{merged['kind']}'; use one of: {', '.join(KINDS)}")
    if merged["audience"] not in AUDIENCES:
        raise DocumentError(path, f"unknown audience '{merged['audience']}'; use one of: {', '.join(AUDIENCES)}")
    if merged["language"] not in LANGUAGES:
        raise DocumentError(path, f"unknown language '{merged['language']}'; use one of: {', '.join(LANGUAGES)}")
    updated = merged.get("updated")
    if isinstance(updated, (dt.date, dt.datetime)):
        updated = updated.isoformat()[:10]
    elif updated is not None:
        try:
            updated = dt.date.fromisoformat(str(updated)).isoformat()
        except ValueError:
            raise DocumentError(path, f"'updated' must be a date YYYY-MM-DD, got {updated!r}") from None
    sources = merged.get("sources") or []
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise DocumentError(path, "'sources' must be a list of URLs")
    municipality = merged.get("municipality")
    if municipality is not None and (not isinstance(municipality, str) or not municipality.strip()):
        raise DocumentError(path, "'municipality' must be the municipality's name, e.g. 'Vefsn'")
    readers = merged.get("readers") or []
    if not isinstance(readers, list) or not all(r in ROLES for r in readers):
        raise DocumentError(path, f"'readers' must be a list of roles: {', '.join(ROLES)}")
    pre_2017 = merged.get("pre_2017_numbers", False)
    if not isinstance(pre_2017, bool):
        raise DocumentError(path, "'pre_2017_numbers' must be true or false")
    return {
        "pre_2017_numbers": pre_2017,
        "municipality": municipality.strip() if municipality else None,
        "readers": tuple(readers),
        "title": str(merged["title"]).strip(),
        "kind": merged["kind"],
        "audience": merged["audience"],
        "language": merged["language"],
        "updated": updated,
        "sources": sources,
    }


def _sidecar_meta(path: Path, fallback_title: str | None) -> dict:
    sidecar = path.with_name(path.name + SIDECAR)
    # Without a sidecar, a document is treated as staff-only: a file of unknown standing must never reach
    # parents by accident. `kap12 index` warns so the owner can add metadata.
    defaults = {
        "title": fallback_title or path.stem.replace("-", " ").replace("_", " "),
        "kind": "guidance",
        "audience": "staff",
        "language": "nb",
        "updated": dt.date.fromtimestamp(path.stat().st_mtime).isoformat(),
    }
    if not sidecar.exists():
        log.warning("%s has no %s sidecar: indexed as staff-only guidance", path, SIDECAR)
        return _validate_meta(path, {}, defaults)
    try:
        meta = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DocumentError(sidecar, f"sidecar metadata is not valid YAML: {exc}") from None
    return _validate_meta(sidecar, meta, defaults)


# ---------------------------------------------------------------- readers

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _read_text_file(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise DocumentError(path, "looks like binary data, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DocumentError(path, "is not valid UTF-8 text; save it as UTF-8") from None


def _sections_from_headed_blocks(blocks: list[tuple[int, str] | str], page: int | None = None) -> list[Section]:
    """Turn a stream of (level, heading) markers and text paragraphs into sections with heading paths."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    buf: list[str] = []

    def flush() -> None:
        text = normalise_text("\n\n".join(buf))
        if text:
            sections.append(Section(tuple(h for _, h in stack), text, page))
        buf.clear()

    for block in blocks:
        if isinstance(block, tuple):
            flush()
            level, heading = block
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, " ".join(heading.split())))
        else:
            buf.append(block)
    flush()
    return sections


def read_markdown(path: Path) -> Document:
    text = _read_text_file(path)
    match = _FRONT_MATTER.match(text)
    if not match:
        raise DocumentError(path, "has no front matter; start the file with '---', the metadata, and '---'")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise DocumentError(path, f"front matter is not valid YAML: {exc}") from None
    meta = _validate_meta(path, meta, {})
    blocks: list[tuple[int, str] | str] = []
    para: list[str] = []
    answers: dict[tuple[str, ...], tuple[int, dict]] = {}  # heading path → (line, parsed answer block)
    stack: list[tuple[int, str]] = []
    lines = text[match.end() :].splitlines()
    first_line = text[: match.end()].count("\n") + 1
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = _MD_HEADING.match(line)
        if heading:
            if para:
                blocks.append("\n".join(para))
                para = []
            level, title = len(heading.group(1)), heading.group(2).strip()
            blocks.append((level, title))
            if not (level == 1 and title == meta["title"]):
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, " ".join(title.split())))
        elif _ANSWER_FENCE.match(line):
            start = i
            i += 1
            body = []
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            line_no = first_line + start
            if i == len(lines):
                raise DocumentError(path, f"line {line_no}: the ```answer block is never closed with ```")
            key = tuple(h for _, h in stack)
            if key in answers:
                raise DocumentError(path, f"line {line_no}: a second ```answer block under the same heading")
            answers[key] = (line_no, parse_answer_block(path, line_no, "\n".join(body)))
        else:
            para.append(line)
        i += 1
    if para:
        blocks.append("\n".join(para))
    # The document title is the top of every section path; a leading "# Title" repeating it is dropped.
    blocks = [b for b in blocks if not (isinstance(b, tuple) and b[0] == 1 and b[1] == meta["title"])]
    sections = _with_section_sources(_sections_from_headed_blocks(blocks))
    out = []
    for sec in sections:
        if not sec.text:
            continue
        short, questions, refs, when = None, (), (), ()
        if sec.headings in answers:
            _, block = answers.pop(sec.headings)
            short, questions, refs = block["short"], tuple(block["questions"]), tuple(block["refs"])
            when = tuple(block["when"])
        out.append(Section(sec.headings, _strip_markdown(sec.text), sec.page, sec.sources, short, questions, refs,
                           when))
    for line_no, _ in answers.values():
        raise DocumentError(path, f"line {line_no}: an ```answer block under a heading with no text of its own")
    return Document(id=path.stem, path=path, sections=out, **meta)


_ANSWER_FENCE = re.compile(r"^\s*```\s*answer\s*$")
SHORT_ANSWER_MAX = 400
MIN_QUESTIONS, MAX_QUESTIONS = 5, 12


def parse_answer_block(path: Path, line_no: int, body: str) -> dict:
    """Validate one ```answer block: `short` in nb, nn and en, and 5–12 `questions` (knowledge-format)."""
    where = f"line {line_no}: ```answer block"
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise DocumentError(path, f"{where} is not valid YAML ({exc})") from None
    if not isinstance(data, dict) or set(data) - {"short", "questions", "refs", "when"}:
        raise DocumentError(path, f"{where} must be a mapping with the keys 'short', 'questions' and (optional) "
                                  "'refs' and 'when'")
    short = data.get("short")
    if not isinstance(short, dict) or set(short) != set(LANGUAGES):
        raise DocumentError(path, f"{where}: 'short' needs exactly nb, nn and en")
    for lang, value in short.items():
        if not isinstance(value, str) or not value.strip():
            raise DocumentError(path, f"{where}: short.{lang} must be a non-empty text")
        if len(value) > SHORT_ANSWER_MAX:
            raise DocumentError(path, f"{where}: short.{lang} is {len(value)} characters; keep it under "
                                      f"{SHORT_ANSWER_MAX} (one or two sentences)")
    questions = data.get("questions")
    if not isinstance(questions, list) or not all(isinstance(q, str) and q.strip() for q in questions):
        raise DocumentError(path, f"{where}: 'questions' must be a list of texts")
    if not MIN_QUESTIONS <= len(questions) <= MAX_QUESTIONS:
        raise DocumentError(path, f"{where}: {len(questions)} questions; write {MIN_QUESTIONS}–{MAX_QUESTIONS}")
    refs = data.get("refs") or []
    if not isinstance(refs, list) or not all(isinstance(r, str) and find_refs(r) for r in refs):
        raise DocumentError(path, f"{where}: 'refs' must be a list of legal references such as \"§ 12-4\"")
    when = data.get("when") or []
    if not isinstance(when, list) or not all(isinstance(w, str) and w.strip() for w in when):
        raise DocumentError(path, f"{where}: 'when' must be a list of words naming the situation")
    return {"short": {k: " ".join(v.split()) for k, v in short.items()},
            "questions": [" ".join(q.split()) for q in questions],
            "refs": [ref for r in refs for ref in find_refs(r)],
            "when": [" ".join(w.lower().split()) for w in when]}


_SOURCE_LINE = re.compile(r"^(?:kilder?|sources?)\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_URL = re.compile(r"https?://[^\s<>()\[\]]+[^\s<>()\[\].,;:]")


def _with_section_sources(sections: list[Section]) -> list[Section]:
    """Move "Kilde: URL" lines out of the text into the section's sources ("Kilde: ingen" = no link).

    A subsection without its own source line takes the nearest heading above that has one, so a citation
    links to the page that backs that very section rather than the document's first source.
    """
    found: dict[tuple[str, ...], tuple[str, ...]] = {}
    out = []
    for section in sections:
        lines = _SOURCE_LINE.findall(section.text)
        urls: tuple[str, ...] | None = None
        if lines:  # "Kilde: ingen" says on purpose that no page backs this section
            urls = tuple(u for line in lines for u in _URL.findall(line))
            found[section.headings] = urls
            text = normalise_text(_SOURCE_LINE.sub("", section.text))
        else:
            text = section.text
            for depth in range(len(section.headings) - 1, 0, -1):
                if section.headings[:depth] in found:
                    urls = found[section.headings[:depth]]
                    break
        out.append(Section(section.headings, text, section.page, urls))
    return out


def _strip_markdown(text: str) -> str:
    """Drop emphasis and link markup so passages read as plain text in any channel."""
    text = re.sub(r"\[([^\]]+)\]\((https?://[^)]+)\)", r"\1", text)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", text)
    text = re.sub(r"`([^`]+)`", r"\1", text)
    text = re.sub(r"^\s*>\s?", "", text, flags=re.MULTILINE)
    return text


def read_text(path: Path) -> Document:
    text = _read_text_file(path)
    meta = _sidecar_meta(path, None)
    body = normalise_text(text)
    if not body:
        raise DocumentError(path, "contains no text")
    return Document(id=path.stem, path=path, sections=split_lettered_points(body, ()), **meta)


def read_pdf(path: Path) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or None
    except (PdfReadError, ValueError, OSError, KeyError, TypeError) as exc:
        raise DocumentError(path, f"cannot be read as PDF ({exc.__class__.__name__}: {exc})") from None
    meta = _sidecar_meta(path, title)
    sections: list[Section] = []
    for number, page_text in enumerate(pages, start=1):
        body = normalise_text(page_text)
        if body:
            sections.extend(split_lettered_points(body, (), page=number))
    if not sections:
        raise DocumentError(path, "contains no extractable text (a scanned PDF needs OCR first)")
    return Document(id=path.stem, path=path, sections=sections, **meta)


def read_docx(path: Path) -> Document:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        doc = docx.Document(str(path))
    except (PackageNotFoundError, ValueError, KeyError, OSError) as exc:
        raise DocumentError(path, f"cannot be read as DOCX ({exc.__class__.__name__}: {exc})") from None
    except Exception as exc:  # zipfile.BadZipFile and lxml errors vary by version
        raise DocumentError(path, f"cannot be read as DOCX ({exc.__class__.__name__}: {exc})") from None
    meta = _sidecar_meta(path, doc.core_properties.title or None)
    blocks: list[tuple[int, str] | str] = []
    for para in doc.paragraphs:
        style = (para.style.name if para.style is not None else "") or ""
        level = re.match(r"Heading (\d)", style)
        if level and para.text.strip():
            blocks.append((int(level.group(1)), para.text.strip()))
        elif style == "Title" and para.text.strip():
            continue
        elif para.text.strip():
            prefix = "- " if "List" in style else ""
            blocks.append(prefix + para.text)
    sections = _sections_from_headed_blocks(blocks)
    if not sections:
        raise DocumentError(path, "contains no text")
    return Document(id=path.stem, path=path, sections=sections, **meta)


def read_html(path: Path) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_read_text_file(path), "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "noscript"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    meta = _sidecar_meta(path, title)
    blocks: list[tuple[int, str] | str] = []
    for el in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "td", "pre"]):
        text = el.get_text(" ", strip=True)
        if not text or (el.name in ("p", "td") and el.find_parent("li")):
            continue
        if el.name.startswith("h"):
            if not (el.name == "h1" and text == meta["title"]):
                blocks.append((int(el.name[1]), text))
        else:
            blocks.append(("- " if el.name == "li" else "") + text)
    sections = _sections_from_headed_blocks(blocks)
    if not sections:
        raise DocumentError(path, "contains no text")
    return Document(id=path.stem, path=path, sections=sections, **meta)


READERS = {
    ".md": read_markdown,
    ".txt": read_text,
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".html": read_html,
    ".htm": read_html,
}


# A knowledge document is a guide, a plan or a routine: a few hundred kilobytes at most. A far larger file
# (a whole report, a dump) would take hours to embed and hold up start-up, so it is refused with a message.
MAX_FILE_BYTES = 5 * 1024 * 1024


def read_document(path: Path) -> Document:
    """Read one knowledge file; raises DocumentError naming the file and the problem."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DocumentError(path, f"unsupported format; use one of {', '.join(FORMATS)}")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DocumentError(path, f"is {size / 1024 / 1024:.0f} MB; a knowledge file may be at most "
                                      f"{MAX_FILE_BYTES // 1024 // 1024} MB (split it, or keep only the relevant part)")
        return reader(path)
    except OSError as exc:  # no permission, a file that vanished, an I/O error
        raise DocumentError(path, f"cannot be read ({exc.strerror or exc.__class__.__name__})") from None


def find_documents(knowledge_dir: Path) -> list[Path]:
    """Document files under knowledge_dir (not flows/ or ui/), sorted for a stable order."""
    if not knowledge_dir.is_dir():
        raise EmptyKnowledgeError(
            f"The knowledge folder {knowledge_dir.resolve()} does not exist (KAP12_KNOWLEDGE_DIR)."
        )
    paths = sorted(
        p
        for p in knowledge_dir.rglob("*")
        if p.is_file()
        and p.suffix.lower() in FORMATS
        and not any(part in SKIP_DIRS or part.startswith(".") for part in p.relative_to(knowledge_dir).parts[:-1])
        and not p.name.startswith(".")
    )
    if not paths:
        raise EmptyKnowledgeError(
            f"No documents found in {knowledge_dir.resolve()} (looked for {', '.join(FORMATS)}). "
            "Add knowledge files or set KAP12_KNOWLEDGE_DIR."
        )
    return paths


def load_documents(knowledge_dir: Path) -> list[Document]:
    """Read every document; the first unreadable file stops with a DocumentError."""
    docs = [read_document(p) for p in find_documents(knowledge_dir)]
    seen: dict[str, Path] = {}
    for doc in docs:
        if doc.id in seen:
            raise DocumentError(doc.path, f"has the same id '{doc.id}' as {seen[doc.id]}; rename one of them")
        seen[doc.id] = doc.path
    return docs
