"""Citation text shared by the terminal chat and Telegram: compact and full lines, tags said once, links once."""

from bot.replies import Citation
from bot.source_lines import compact_line, full_line, heading, short_title, source_lines


DOC = "Veiledning for foreldre: når barnet ikke har det trygt på skolen"


def cite(n=1, **overrides) -> Citation:
    fields = dict(n=n, passage_id="veiledning-for-foreldre#3", document=DOC,
                  section=f"{DOC} › Si fra til skolen (§ 12-4)",
                  refs=("§ 12-4",), url="https://www.udir.no/a", updated="2026-12-02", text="…")
    fields.update(overrides)
    return Citation(**fields)


def test_short_title_and_heading_without_tags():
    assert short_title("Veiledning for foreldre: når barnet ikke har det trygt") == "Veiledning for foreldre"
    assert short_title("Kapittel 12 forklart") == "Kapittel 12 forklart"
    assert heading(cite()) == "Si fra til skolen"
    assert heading(cite(section="X › Barnet skal bli hørt (§§ 10-1 og 10-2)")) == "Barnet skal bli hørt"
    assert heading(cite(section="X › Skriv ned (råd)")) == "Skriv ned"
    assert heading(cite(section="X › Skriftlig plan (aktivitetsplan)")) == "Skriftlig plan (aktivitetsplan)"
    assert heading(cite(section="", document="Vefsn")) == ""


def test_compact_and_full_lines_say_each_ref_once():
    assert compact_line(cite()) == "Veiledning for foreldre › Si fra til skolen, § 12-4"
    named = cite(section="Kapittel 12 forklart › § 12-4 Plikt", document="Kapittel 12 forklart",
                 refs=("§ 12-4", "§ 12-1"))
    assert compact_line(named) == "Kapittel 12 forklart › § 12-4 Plikt, § 12-1"  # 12-1 is not 12-10 or 12-4
    assert full_line(named, "oppdatert {date}") == "Kapittel 12 forklart › § 12-4 Plikt (§ 12-1; oppdatert 2026-12-02)"
    assert full_line(cite(section="", document="Vefsn", refs=(), updated=None)) == "Vefsn"


def test_a_shared_link_is_given_once_and_unsafe_links_never():
    lines = source_lines([cite(1), cite(2, section="X › Annet"), cite(3, url="javascript:x")], compact=False)
    assert [line.url for line in lines] == ["https://www.udir.no/a", None, None]
    assert [line.n for line in lines] == [1, 2, 3]
