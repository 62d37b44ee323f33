"""The shipped knowledge base: coverage, the unchanged municipal document, and content rules."""

import functools
import hashlib
import json
import re
from urllib.parse import urlparse

import pytest
import yaml

from bot.chunk import chunk_document
from bot.cli import main
from bot.ingest import _SOURCE_LINE, _URL, load_documents
from bot.ingest import LANGUAGES as DOC_LANGUAGES
from paths import KNOWLEDGE, REPO

MUNICIPAL_FILE = KNOWLEDGE / "vefsn-orientering-psykososialt-skolemiljo.txt"
# The real municipal document as the municipality published it: it is shipped byte for byte.
MUNICIPAL_SHA256 = "56fd7f1b3a2180ce34ef296aae01961382b7df5d07c6fcacbcf190cb312c60be"
# Public authorities only (issue 9): the law, the directorate, the ministry, Statsforvalteren, the children's
# ombud, municipalities and counties; for help lines the services' own sites.
ALLOWED_HOSTS = ("lovdata.no", "udir.no", "regjeringen.no", "statsforvalteren.no", "barneombudet.no",
                 "kommune.no", "fylkeskommune.no", "fylke.no", "116111.no", "korspahalsen.no", "rodekors.no",
                 "mentalhelse.no", "nkom.no", "politiet.no", "helsenorge.no", "bufdir.no", "ung.no", "dinutvei.no")
GENERIC_DOCUMENTS = [p for p in sorted(KNOWLEDGE.glob("*.md"))]


@functools.cache
def documents():
    return tuple(load_documents(KNOWLEDGE))


def all_passages():
    return [p for doc in documents() for p in chunk_document(doc)]


def test_sources_json_lists_every_document(capsys):
    assert main(["sources", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    for doc_id in (
        "kapittel-12-forklart",
        "gammel-og-ny-lov",
        "internkontroll",
        "nyutdannet-laerer",
        "rutiner-for-ansatte",
        "staff-routines-en",
        "new-teacher-en",
        "veiledning-for-foreldre",
        "guide-in-english",
        "elevguide",
        "elevguide-nynorsk",
        "pupil-guide-en",
        "vefsn-orientering-psykososialt-skolemiljo",
    ):
        assert doc_id in rows and rows[doc_id]["passages"] > 0
    assert "mal-plan-trygt-skolemiljo" not in rows  # a template is never served
    municipal = rows["vefsn-orientering-psykososialt-skolemiljo"]
    assert municipal["kind"] == "municipal-decision" and municipal["audience"] == "public"
    assert municipal["municipality"] == "Vefsn"
    assert rows["rutiner-for-ansatte"]["audience"] == "staff"
    assert {"title", "kind", "audience", "language", "updated", "passages"} <= set(municipal)


@pytest.mark.parametrize("norwegian,english", [("rutiner-for-ansatte", "staff-routines-en"),
                                               ("nyutdannet-laerer", "new-teacher-en")])
def test_the_english_staff_documents_are_twins_of_the_norwegian_ones(norwegian, english):
    """Twins share their short answers (that is how an answer swaps in the reader's language), situations and
    rules, section by section, and are for staff only."""
    docs = {d.id: d for d in documents()}
    nb, en = docs[norwegian], docs[english]
    assert (nb.language, en.language, nb.audience, en.audience) == ("nb", "en", "staff", "staff")
    assert len(nb.sections) == len(en.sections)
    for a, b in zip(nb.sections, en.sections, strict=True):
        assert (a.short, a.when, a.refs) == (b.short, b.when, b.refs), b.headings
        assert len(b.questions) >= 5 and all(q not in a.questions for q in b.questions), b.headings


def test_every_chapter_12_section_is_referenced():
    refs = {r for p in all_passages() for r in p.refs}
    for n in range(1, 11):
        assert f"§ 12-{n}" in refs
    assert {"§ 10-1", "§ 10-2", "§ 10-8", "kommuneloven § 25-1"} <= refs


def test_law_guide_has_a_section_per_paragraph():
    guide = next(d for d in documents() if d.id == "kapittel-12-forklart")
    top = {s.headings[0].split(" ")[1] for s in guide.sections if s.headings and s.headings[0].startswith("§ ")}
    assert {f"12-{n}" for n in range(1, 11)} | {"10-1", "10-2", "10-8"} <= top


def test_municipal_document_is_shipped_unchanged():
    assert hashlib.sha256(MUNICIPAL_FILE.read_bytes()).hexdigest() == MUNICIPAL_SHA256


def test_municipal_passages_keep_lettered_points_and_facts():
    passages = [p for p in all_passages() if p.doc_id == "vefsn-orientering-psykososialt-skolemiljo"]
    assert any(p.section.endswith("…") or "› d) At kommunen følger" in p.section for p in passages)
    text = " ".join(p.text for p in passages)
    for fact in ("mentor", "Spekter", "skolemiljøteam", "foreldremøte", "kommunalsjefen"):
        assert fact in text
    assert "  " not in text and "-\n" not in text


def test_written_plan_passage_lists_its_five_contents():
    plan = [p for p in all_passages() if p.doc_id == "kapittel-12-forklart" and "(e)" in p.text and "§ 12-4" in p.refs]
    assert plan
    text = plan[0].text.lower()
    for content in ("problem", "tiltak", "når", "hvem", "evaluer"):
        assert content in text


def test_no_fixed_day_limit_is_stated_as_law():
    day_limit = re.compile(r"\b(\d+|fem|fire|tre|ti)\s+(virke)?dager\b", re.IGNORECASE)
    for p in all_passages():
        for sentence in re.split(r"(?<=[.!?])\s+", p.text):
            if day_limit.search(sentence):
                assert re.search(
                    r"ikke lov|ikke et lovkrav|lokal|rutine|gamle loven|gammel|må sjekkes|ikke loven|ikke fast",
                    p.text,
                    re.IGNORECASE,
                ), sentence


def test_the_plan_template_lives_outside_the_knowledge_base():
    assert (REPO / "templates" / "mal-plan-trygt-skolemiljo.md").exists()
    assert not list(KNOWLEDGE.rglob("mal-plan*"))


YES_NO_OPENING = re.compile(r"(ja|nei|yes|no)\s*[,.:;!–-]", re.IGNORECASE)


@pytest.mark.parametrize("path", GENERIC_DOCUMENTS, ids=lambda p: p.stem)
def test_every_section_answers_a_question_in_three_languages(path):
    doc = next(d for d in documents() if d.path == path)
    for section in doc.sections:
        where = f"{path.name} › {' › '.join(section.headings) or '(intro)'}"
        assert section.short and set(section.short) == set(DOC_LANGUAGES), where
        assert all(len(text) <= 400 and text.strip() for text in section.short.values()), where
        assert len(section.questions) >= 5, where
        # A short answer leads for every question its section is found for: "Ja," after "hva gjør jeg?" answers
        # nothing, and after a yes/no question it was not written for ("Kan skolen avvise det?") it misleads.
        for text in section.short.values():
            assert not YES_NO_OPENING.match(text), f"{where}: {text[:40]}"


def test_no_question_is_written_for_two_sections():
    seen: dict[str, str] = {}
    for doc in documents():
        for section in doc.sections:
            for question in section.questions:
                key = " ".join(question.casefold().split())
                assert key not in seen, f"{question!r} in {doc.id} and {seen[key]}"
                seen[key] = doc.id


@pytest.mark.parametrize("path", GENERIC_DOCUMENTS, ids=lambda p: p.stem)
def test_every_source_is_a_public_authority(path):
    text = path.read_text(encoding="utf-8")
    front = yaml.safe_load(text.split("---", 2)[1]) or {}
    urls = list(front.get("sources") or []) + [u for line in _SOURCE_LINE.findall(text) for u in _URL.findall(line)]
    assert urls, path.name
    for url in urls:
        host = urlparse(url).hostname or ""
        assert url.startswith("https://") and host.endswith(ALLOWED_HOSTS), f"{path.name}: {url}"
        assert not host.startswith("cms") and ".." not in host and not host.endswith("."), f"{path.name}: {url}"


def user_facing_texts():
    """Every text a user can read: documents, walkthroughs, the UI catalogue, drafts and help data."""
    for folder in ("", "flows", "ui", "drafts", "help"):
        for path in sorted((KNOWLEDGE / folder).glob("*")):
            if path.is_file() and path.suffix in (".md", ".yaml") and not path.name.endswith(".meta.yaml"):
                yield path, path.read_text(encoding="utf-8")


def test_no_user_facing_text_says_violence_is_outside_chapter_12_or_shows_a_placeholder():
    wrong = re.compile(r"hører ikke under kapittel 12|høyrer ikkje under kapittel 12|outside chapter 12", re.I)
    placeholder = re.compile(r"\[kommunenavn\]|\[skolenavn\]|^Malen:", re.I | re.M)
    for path, text in user_facing_texts():
        assert not wrong.search(text), path.name
        assert not placeholder.search(text), path.name


def test_english_never_says_violate_for_krenke():
    for path, text in user_facing_texts():
        assert not re.search(r"\bviolat(e|es|ed|ing|ion|ions)\b", text, re.I), path.name


@pytest.mark.parametrize("path", GENERIC_DOCUMENTS, ids=lambda p: p.stem)
def test_generic_documents_name_no_particular_municipality(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\bVefsn\b|Mosjøen|ligger i Nordland", text), path.name


def test_never_lovdata_advice_to_parents_or_pupils():
    for doc in documents():
        for section in doc.sections:
            for text in (section.short or {}).values():
                assert "lovdata" not in text.casefold(), f"{doc.id} › {section.headings}"
