"""Reading every supported format into sections with metadata, and refusing bad files clearly."""

from pathlib import Path

import docx
import pytest
from fpdf import FPDF

from bot.chunk import chunk_document, split_sentences
from bot.errors import DocumentError, EmptyKnowledgeError
from bot.ingest import find_documents, load_documents, normalise_text, read_document

META = "title: Testdokument\nkind: routine\naudience: staff\nlanguage: nb\nupdated: 2025-01-02\nsources: [https://example.org/a]\n"


def write_md(folder: Path, name: str, body: str, meta: str = META) -> Path:
    path = folder / name
    path.write_text(f"---\n{meta}---\n{body}", encoding="utf-8")
    return path


def test_markdown_sections_and_metadata(tmp_path):
    path = write_md(
        tmp_path,
        "rutine.md",
        "# Testdokument\n\nInnledning.\n\n## § 12-4 Aktivitetsplikt\n\n"
        "Alle som arbeider på skolen skal **følge med**.\n\n### Melde fra\n\nMeld fra til rektor.\n",
    )
    doc = read_document(path)
    assert (doc.id, doc.title, doc.kind, doc.audience, doc.language, doc.updated) == (
        "rutine",
        "Testdokument",
        "routine",
        "staff",
        "nb",
        "2025-01-02",
    )
    assert doc.url == "https://example.org/a"
    assert [s.headings for s in doc.sections] == [
        (),
        ("§ 12-4 Aktivitetsplikt",),
        ("§ 12-4 Aktivitetsplikt", "Melde fra"),
    ]
    assert "følge med" in doc.sections[1].text and "**" not in doc.sections[1].text


def test_text_with_sidecar_and_lettered_points(tmp_path):
    path = tmp_path / "vedtak.txt"
    path.write_text(
        "Orientering om  skole-\nmiljøet\n\na) Å sikre en felles\nforståelse av internkontroll.\n\n"
        "Det er gjort.\n\nb) Å vurdere ROS.\n\nSkolene vurderer\nkontinuerlig.\n",
        encoding="utf-8",
    )
    (tmp_path / "vedtak.txt.meta.yaml").write_text(META.replace("routine", "municipal-decision"), encoding="utf-8")
    doc = read_document(path)
    assert doc.kind == "municipal-decision"
    assert doc.sections[0].text == "Orientering om skolemiljøet"
    assert doc.sections[1].headings == ("a) Å sikre en felles forståelse av internkontroll",)
    assert "Det er gjort." in doc.sections[1].text
    assert doc.sections[2].headings[0].startswith("b) Å vurdere ROS")


def test_text_without_sidecar_is_staff_only(tmp_path):
    path = tmp_path / "notat.txt"
    path.write_text("Et notat om skolemiljø.", encoding="utf-8")
    doc = read_document(path)
    assert doc.audience == "staff" and doc.title == "notat"


def test_pdf_pages_and_headings(tmp_path):
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in ("Side en: skolen skal snarast undersoke saken.", "Side to: rektor skal melde fra."):
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    path = tmp_path / "plan.pdf"
    pdf.output(str(path))
    (tmp_path / "plan.pdf.meta.yaml").write_text(META, encoding="utf-8")
    doc = read_document(path)
    assert [s.page for s in doc.sections] == [1, 2]
    passages = chunk_document(doc)
    assert passages[1].page == 2 and "rektor skal melde fra" in passages[1].text


def test_docx_headings_and_lists(tmp_path):
    d = docx.Document()
    d.add_heading("Rutine for skolemiljø", level=1)
    d.add_paragraph("Alle ansatte skal følge med på elevene.")
    d.add_heading("Melde fra etter § 12-4", level=2)
    d.add_paragraph("Meld fra til rektor samme dag.", style="List Bullet")
    path = tmp_path / "rutine.docx"
    d.save(str(path))
    (tmp_path / "rutine.docx.meta.yaml").write_text(META, encoding="utf-8")
    doc = read_document(path)
    assert doc.sections[1].headings == ("Rutine for skolemiljø", "Melde fra etter § 12-4")
    passage = chunk_document(doc)[-1]
    assert passage.refs == ("§ 12-4",) and "Meld fra til rektor" in passage.text


def test_html_headings_without_scripts(tmp_path):
    path = tmp_path / "side.html"
    path.write_text(
        "<html><head><title>Skolemiljø</title><script>var x='hemmelig';</script></head><body>"
        "<h1>Skolemiljø</h1><p>Innledning om trivsel.</p><h2>Statsforvalteren (§ 12-6)</h2>"
        "<ul><li>Meld saken muntlig eller skriftlig.</li></ul></body></html>",
        encoding="utf-8",
    )
    doc = read_document(path)
    assert doc.title == "Skolemiljø"
    assert doc.sections[1].headings == ("Statsforvalteren (§ 12-6)",)
    assert "hemmelig" not in " ".join(s.text for s in doc.sections)


def test_normalise_keeps_words():
    messy = (
        "Skolen  skal\u00a0snarast under-\nsøke saken og barne-\nog ungdomsskolen\n\n\n- punkt en\nfortsatt\n- punkt to"
    )
    assert (
        normalise_text(messy)
        == "Skolen skal snarast undersøke saken og barne- og ungdomsskolen\n\n- punkt en fortsatt\n- punkt to"
    )


def test_blank_line_inside_a_sentence_is_joined():
    assert (
        normalise_text("gjennom fokus på læreren\n\nog stabilitet i personalet.")
        == "gjennom fokus på læreren og stabilitet i personalet."
    )


@pytest.mark.parametrize(
    "meta, problem",
    [
        (META.replace("audience: staff", "audience: alle"), "unknown audience 'alle'"),
        (META.replace("kind: routine", "kind: blogg"), "unknown kind 'blogg'"),
        (META.replace("updated: 2025-01-02", "updated: i går"), "'updated' must be a date"),
        (META.replace("title: Testdokument\n", ""), "missing 'title'"),
        ("title: [unclosed\n", "not valid YAML"),
        (META + "pre_2017_numbers: kanskje\n", "'pre_2017_numbers' must be true or false"),
    ],
)
def test_bad_front_matter_names_file_and_problem(tmp_path, meta, problem):
    path = write_md(tmp_path, "feil.md", "Tekst.", meta)
    with pytest.raises(DocumentError) as err:
        read_document(path)
    assert "feil.md" in str(err.value) and problem in str(err.value)


def test_missing_front_matter(tmp_path):
    path = tmp_path / "uten.md"
    path.write_text("# Bare tekst\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="uten.md: has no front matter"):
        read_document(path)


def test_broken_pdf(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage without xref")
    with pytest.raises(DocumentError, match="broken.pdf"):
        read_document(path)


def test_binary_junk_as_text(tmp_path):
    path = tmp_path / "junk.txt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DocumentError, match="junk.txt: looks like binary data"):
        read_document(path)


def test_broken_docx(tmp_path):
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DocumentError, match="broken.docx: cannot be read as DOCX"):
        read_document(path)


def test_empty_and_missing_folder(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "x.md").write_text("not a document", encoding="utf-8")
    with pytest.raises(EmptyKnowledgeError, match=str(tmp_path)):
        find_documents(tmp_path)
    with pytest.raises(EmptyKnowledgeError, match="does not exist"):
        find_documents(tmp_path / "nowhere")


def test_duplicate_ids_are_refused(tmp_path):
    write_md(tmp_path, "a.md", "Tekst.")
    (tmp_path / "a.txt").write_text("Tekst.", encoding="utf-8")
    with pytest.raises(DocumentError, match="same id 'a'"):
        load_documents(tmp_path)


def test_section_source_lines_become_the_citation_link(tmp_path):
    path = write_md(
        tmp_path,
        "lov.md",
        "## § 12-6 Statsforvaltaren\n\nEleven kan melde saken.\n\n"
        "Kilde: https://example.org/12-6.\n\n### Vilkår\n\nSaken må være tatt opp med rektor.\n\n"
        "## § 12-7 Det fysiske miljøet\n\nArbeidsplassen skal være tilpasset.\n\n"
        "## Lokalt\n\nKommunen har et team.\n\nKilde: ingen (kommunens orientering)\n",
    )
    passages = chunk_document(read_document(path))
    assert [p.url for p in passages] == [
        "https://example.org/12-6",
        "https://example.org/12-6",
        "https://example.org/a",
        None,
    ]
    assert all("Kilde" not in p.text for p in passages)


ANSWER_BLOCK = """```answer
short:
  nb: "Skolen må melde fra til rektor."
  nn: "Skulen må melde frå til rektor."
  en: "The school must tell the principal."
questions:
  - "må læreren si det til rektor?"
  - "Skal kontaktlæraren melde frå?"
  - "does the teacher have to report it"
  - "hvem får vite det jeg sier til læreren"
  - "sier læreren fra videre???"
```
"""


def test_answer_block_gives_the_section_its_short_answer_and_questions_and_leaves_the_text(tmp_path):
    path = write_md(tmp_path, "a.md", f"## Melde fra\n\n{ANSWER_BLOCK}\nMeld fra til rektor.\n\n## Annet\n\nTekst.\n")
    doc = read_document(path)
    first, second = doc.sections
    assert first.short["en"] == "The school must tell the principal."
    assert len(first.questions) == 5 and "does the teacher have to report it" in first.questions
    assert first.text == "Meld fra til rektor." and "```" not in first.text and "short" not in first.text
    assert second.short is None and second.questions == ()


@pytest.mark.parametrize(
    "block, problem",
    [
        (ANSWER_BLOCK.replace('  en: "The school must tell the principal."\n', ""), "nb, nn and en"),
        ("\n".join(line for line in ANSWER_BLOCK.split("\n") if "læreren" not in line), "2 questions"),
        (ANSWER_BLOCK.replace("short:", "short: [oops"), "not valid YAML"),
        (ANSWER_BLOCK.replace("Skolen må melde fra til rektor.", "x" * 500), "500 characters"),
        (ANSWER_BLOCK.rstrip("`\n"), "never closed"),
        (ANSWER_BLOCK.replace("```\n", 'when: "accused"\n```\n', 1),
         "'when' must be a list"),
    ],
)
def test_a_bad_answer_block_names_file_line_and_problem(tmp_path, block, problem):
    path = write_md(tmp_path, "feil.md", f"Intro.\n\n## Melde fra\n\n{block}\nMeld fra.\n")
    with pytest.raises(DocumentError) as err:
        read_document(path)
    message = str(err.value)
    assert "feil.md" in message and "line 13" in message and problem in message


def test_when_names_the_situations_a_section_is_written_for(tmp_path):
    block = ANSWER_BLOCK.replace("```\n", "when: [Accused]\n```\n", 1)
    doc = read_document(write_md(tmp_path, "a.md", f"## Melde fra\n\n{block}\nMeld fra til rektor.\n"))
    assert doc.sections[0].when == ("accused",)


def test_an_answer_block_needs_text_under_its_heading(tmp_path):
    path = write_md(tmp_path, "tom.md", f"## Overskrift\n\n{ANSWER_BLOCK}\n### Under\n\nTekst.\n")
    with pytest.raises(DocumentError, match="no text of its own"):
        read_document(path)


def test_municipality_in_front_matter_marks_a_local_document(tmp_path):
    path = write_md(tmp_path, "lokal.md", "Tekst.\n", META + "municipality: Vefsn\n")
    assert read_document(path).municipality == "Vefsn"
    assert read_document(write_md(tmp_path, "felles.md", "Tekst.\n")).municipality is None


def test_a_long_list_keeps_its_lead_in_and_its_numbers(tmp_path):
    item = "Dette er et langt punkt som forklarer hva skolen skal gjøre, med flere ord enn et kort punkt trenger. "
    body = ("## Hva skolen må gjøre\n\nNår rektor vet om det, skal skolen handle. Så må skolen gjøre dette:\n\n"
            + "\n".join(f"{n}. {item * 2}Slik er det." for n in range(1, 6)) + "\n")
    passages = chunk_document(read_document(write_md(tmp_path, "liste.md", body)))
    listing = [p for p in passages if "1." in p.text or "4." in p.text or "5." in p.text]
    assert len(listing) >= 2  # too long for one passage
    for passage in listing:  # every piece of the list says what the list is, before its first item
        lead, items = passage.text.split("Så må skolen gjøre dette:\n", 1)
        assert not any(line[:1].isdigit() for line in lead.split("\n")), passage.text[:60]
    numbered = [line for p in passages for line in p.text.split("\n") if line[:1].isdigit()]
    assert [line[:2] for line in numbered] == ["1.", "2.", "3.", "4.", "5."]  # one item a line, number kept


def test_an_abbreviation_does_not_end_a_sentence():
    # A quote cut at "jf." reads "… som saken berører direkte, jf. [2]": a fragment.
    assert split_sentences("Skolen skal høre eleven, jf. §§ 10-1 og 10-2. Det finnes ingen aldersgrense.") == [
        "Skolen skal høre eleven, jf. §§ 10-1 og 10-2.", "Det finnes ingen aldersgrense."]
    assert split_sentences("Alle, f.eks. SFO-ansatte, må melde. Se kap. 12.") == [
        "Alle, f.eks. SFO-ansatte, må melde.", "Se kap. 12."]
    assert split_sentences("Regelen drøftes i Prop. 57 L (2022–2023). Neste.") == [
        "Regelen drøftes i Prop. 57 L (2022–2023).", "Neste."]
    assert split_sentences("Det var slutt. Neste setning.") == ["Det var slutt.", "Neste setning."]
