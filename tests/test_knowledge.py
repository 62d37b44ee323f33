"""The shipped knowledge base: coverage, the unchanged municipal document, and content rules."""

import json
import re

from bot.chunk import chunk_document
from bot.cli import main
from bot.ingest import load_documents
from paths import KNOWLEDGE, REPO

SHARED_DOCUMENT = REPO.parent / "shared" / "documents" / "vefsn-orientering-psykososialt-skolemiljo.txt"


def all_passages():
    return [p for doc in load_documents(KNOWLEDGE) for p in chunk_document(doc)]


def test_sources_json_lists_every_document(capsys):
    assert main(["sources", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    for doc_id in (
        "kapittel-12-forklart",
        "gammel-og-ny-lov",
        "internkontroll",
        "nyutdannet-laerer",
        "rutiner-for-ansatte",
        "veiledning-for-foreldre",
        "mal-plan-trygt-skolemiljo",
        "vefsn-orientering-psykososialt-skolemiljo",
    ):
        assert doc_id in rows and rows[doc_id]["passages"] > 0
    municipal = rows["vefsn-orientering-psykososialt-skolemiljo"]
    assert municipal["kind"] == "municipal-decision" and municipal["audience"] == "public"
    assert rows["rutiner-for-ansatte"]["audience"] == "staff"
    assert {"title", "kind", "audience", "language", "updated", "passages"} <= set(municipal)


def test_every_chapter_12_section_is_referenced():
    refs = {r for p in all_passages() for r in p.refs}
    for n in range(1, 11):
        assert f"§ 12-{n}" in refs
    assert {"§ 10-1", "§ 10-2", "§ 10-8", "kommuneloven § 25-1"} <= refs


def test_law_guide_has_a_section_per_paragraph():
    guide = next(d for d in load_documents(KNOWLEDGE) if d.id == "kapittel-12-forklart")
    top = {s.headings[0].split(" ")[1] for s in guide.sections if s.headings and s.headings[0].startswith("§ ")}
    assert {f"12-{n}" for n in range(1, 11)} | {"10-1", "10-2", "10-8"} <= top


def test_municipal_document_is_shipped_unchanged():
    if SHARED_DOCUMENT.exists():
        assert (KNOWLEDGE / SHARED_DOCUMENT.name).read_bytes() == SHARED_DOCUMENT.read_bytes()


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


def test_template_is_marked_as_a_template():
    plan = next(d for d in load_documents(KNOWLEDGE) if d.id == "mal-plan-trygt-skolemiljo")
    assert plan.kind == "plan" and "MAL" in plan.title and "erstattes" in plan.title
