import pytest

from bot.refs import find_refs


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Se § 12-4 om aktivitetsplikten.", ["§ 12-4"]),
        ("§12-4 gjelder alle", ["§ 12-4"]),
        ("etter paragraf 12-4", ["§ 12-4"]),
        ("§§ 12-3 og 12-4", ["§ 12-3", "§ 12-4"]),
        ("§§ 10-1, 10-2 og 12-4", ["§ 10-1", "§ 10-2", "§ 12-4"]),
        ("§§ 12-1–12-3", ["§ 12-1", "§ 12-2", "§ 12-3"]),
        ("kommuneloven § 25-1 tredje ledd", ["kommuneloven § 25-1"]),
        ("forvaltningsloven § 13", ["forvaltningsloven § 13"]),
        ("fvl. § 13", ["forvaltningsloven § 13"]),
        ("opplæringslova § 12-6", ["§ 12-6"]),
    ],
)
def test_new_references(text, expected):
    assert find_refs(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("gamle § 9 A-4", ["§ 9 A-4", "§ 12-4"]),
        ("planen viser til 9a-4", ["§ 9 A-4", "§ 12-4"]),
        ("viser til 9A-4 og 9A-6", ["§ 9 A-4", "§ 12-4", "§ 9 A-6", "§ 12-6"]),
        ("§ 9 A-13 om tvangsmulkt", ["§ 9 A-13", "§ 12-8"]),
        ("§ 9 A-9 informasjon", ["§ 9 A-9", "§ 10-8"]),
    ],
)
def test_old_numbers_are_kept_and_mapped(text, expected):
    assert find_refs(text) == expected


def test_unconfirmed_old_numbers_are_not_mapped():
    # 9 A-10 (ordensreglement) has no confirmed new number in the reference material.
    assert find_refs("§ 9 A-10") == ["§ 9 A-10"]


@pytest.mark.parametrize("text", ["den 12-4 2024", "side 12-4", "§ 13 uten lov", "ingen paragraf her"])
def test_no_false_references(text):
    assert find_refs(text) == []


def test_duplicates_removed_in_order():
    assert find_refs("§ 12-5, så § 12-4 og igjen § 12-5") == ["§ 12-5", "§ 12-4"]


def test_a_lettered_rule_keeps_its_letter():
    # forvaltningsloven § 11 a (no undue delay) is another rule than § 11
    assert find_refs("Etter forvaltningsloven § 11 a skal saken") == ["forvaltningsloven § 11 a"]
    assert find_refs("forvaltningsloven §§ 11 a og 13") == ["forvaltningsloven § 11 a", "forvaltningsloven § 13"]
    assert find_refs("§ 13 a uten lov") == []


def test_the_numbering_before_2017_is_kept_apart_where_a_text_says_so():
    # «§ 9a-7» before August 2017 was the penalty rule, not 9 A-7 (the physical environment, now § 12-7)
    assert find_refs("etter den eldre § 9a-7 var strafferammen", pre_2017=True) == ["§ 9a-7"]
    assert find_refs("gamle 9a-3 og § 9 A-4", pre_2017=True) == ["§ 9 A-4", "§ 12-4", "§ 9a-3"]
    # elsewhere «9a-4» is the informal 9 A-4 most people mean
    assert find_refs("planen viser til 9a-4") == ["§ 9 A-4", "§ 12-4"]
