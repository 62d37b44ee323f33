"""Local contacts (/kontakt): the data file, county choice, preselection, honesty about what is unconfirmed."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from fakes import KNOWLEDGE, FakeAnswerer

from bot import contacts as contacts_module
from bot.config import load_settings
from bot.contacts import Contacts, fold_name
from bot.dialog import MAX_DATA_BYTES, Dialog
from bot.errors import ConfigError, DocumentError
from bot.i18n import LANGUAGES, Catalog
from bot.store import SqliteStore, UserState

CONTACTS = Contacts.load(KNOWLEDGE)
CATALOG = Catalog.load(KNOWLEDGE / "ui")
OFFICES = {
    "Statsforvalteren i Østfold, Buskerud, Oslo og Akershus", "Statsforvalteren i Innlandet",
    "Statsforvalteren i Vestfold og Telemark", "Statsforvalteren i Agder", "Statsforvalteren i Rogaland",
    "Statsforvalteren i Vestland", "Statsforvalteren i Møre og Romsdal", "Statsforvalteren i Trøndelag",
    "Statsforvalteren i Nordland", "Statsforvalteren i Troms og Finnmark",
}
COUNTIES = {"Østfold", "Akershus", "Oslo", "Buskerud", "Innlandet", "Vestfold", "Telemark", "Agder", "Rogaland",
            "Vestland", "Møre og Romsdal", "Trøndelag", "Nordland", "Troms", "Finnmark"}
# Conventions: Statsforvalteren, kommuner and fylkeskommuner only.
ALLOWED_HOST_ENDS = ("statsforvalteren.no", ".kommune.no", "fylke.no", "fylkeskommune.no")


def state(lang: str = "nb", role: str | None = "parent") -> UserState:
    return UserState(user_id="tg:1", role=role, language=lang)


def datas(reply) -> list[str]:
    return [button.data for row in reply.buttons for button in row]


# -- the data -------------------------------------------------------------------------------------------------
def test_all_ten_offices_and_fifteen_counties_with_source_and_checked_date():
    assert {office.name for office in CONTACTS.offices.values()} == OFFICES
    assert {county.name for county in CONTACTS.counties.values()} == COUNTIES
    assert {county.office.id for county in CONTACTS.counties.values()} == set(CONTACTS.offices)
    entries = [o.provenance for o in CONTACTS.offices.values()]
    entries += [c.provenance for c in CONTACTS.counties.values()]
    entries += [c.mobbeombud.provenance for c in CONTACTS.counties.values()]
    for provenance in entries:
        assert isinstance(provenance.checked, dt.date) and provenance.checked <= dt.date.today()
        assert isinstance(provenance.confirmed, bool)
    for county in CONTACTS.counties.values():
        assert county.provenance.source and county.office.provenance.source
        if county.mobbeombud.found:
            assert county.mobbeombud.name and county.mobbeombud.provenance.source
        else:
            assert county.mobbeombud.name is None and county.mobbeombud.url is None  # "none found", nothing made up


def test_links_use_allowed_hosts_and_phones_only_where_a_source_gives_one():
    urls = []
    for office in CONTACTS.offices.values():
        urls += [office.url, *office.provenance.source]
    for county in CONTACTS.counties.values():
        urls += [*county.provenance.source, *county.mobbeombud.provenance.source]
        urls += [county.mobbeombud.url] if county.mobbeombud.url else []
    for url in urls:
        host = urlparse(url).hostname or ""
        assert url.startswith("https://") and host.removeprefix("www.").endswith(ALLOWED_HOST_ENDS), url
    phones = {office.id: office.phone for office in CONTACTS.offices.values() if office.phone}
    assert phones == {"vestland": "90 91 50 45"}


def test_unconfirmed_offices_say_why():
    for office in CONTACTS.offices.values():
        if not office.provenance.confirmed:
            assert office.provenance.note  # says why, for the people who maintain the file


# -- choosing a county ------------------------------------------------------------------------------------------
def test_no_default_county_the_user_picks_one():
    picker = CONTACTS.command(state(), CATALOG)[0]
    assert picker.text == CATALOG.get("contacts.choose", "nb")
    counties = [d for d in datas(picker) if d.startswith("o|")]
    assert len(counties) == 15 and "k|meny" in datas(picker)
    assert all(len(d.encode("utf-8")) <= MAX_DATA_BYTES for d in datas(picker))
    assert all(len(row) <= 2 for row in picker.buttons)  # fits a phone screen


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_county_shows_its_office_and_mobbeombud(lang):
    for county in CONTACTS.counties.values():
        reply = CONTACTS.on_button(state(lang), [county.id], CATALOG)[0]
        assert reply.text.startswith(CATALOG.get("contacts.header", lang, county=county.name))
        assert county.office.name in reply.text and county.office.url in reply.text
        assert CATALOG.get("contacts.office_role", lang) in reply.text
        if county.mobbeombud.found:
            assert county.mobbeombud.name in reply.text
        else:
            assert CATALOG.get("contacts.mobbeombud_none", lang) in reply.text
        assert (CATALOG.get("contacts.unconfirmed_link", lang) in reply.text) != county.office.provenance.confirmed
        assert {"o", "k|meny", "d"} <= set(datas(reply))
        assert reply.text.count(county.office.url) == 1  # no URL repeated


def test_unconfirmed_mobbeombud_is_said_to_be_unconfirmed():
    nordland = CONTACTS.on_button(state(), ["nordland"], CATALOG)[0].text
    vestland = CONTACTS.on_button(state(), ["vestland"], CATALOG)[0].text
    assert CATALOG.get("contacts.mobbeombud_unconfirmed", "nb") in nordland
    assert CATALOG.get("contacts.mobbeombud_unconfirmed", "nb") not in vestland
    assert "Telefon: 90 91 50 45" in vestland and "https://www.vestlandfylke.no/mobbeombodet" in vestland
    assert "Sist sjekket: 02.12.2026" in vestland


@pytest.mark.parametrize("setting, county", [
    ("Vestland", "vestland"), ("møre og romsdal", "more-og-romsdal"), ("TRØNDELAG", "trondelag"),
    ("ostfold", "ostfold"), (" Troms ", "troms"),
])
def test_setting_preselects_the_county(setting, county):
    contacts = Contacts.load(KNOWLEDGE, load_settings(county=setting))
    reply = contacts.command(state(), CATALOG)[0]
    expected = CONTACTS.counties[county]
    assert reply.text.startswith(CATALOG.get("contacts.header", "nb", county=expected.name))
    # The user can still choose another county.
    assert len([d for d in datas(contacts.on_button(state(), [], CATALOG)[0]) if d.startswith("o|")]) == 15


@pytest.mark.parametrize("setting", ["Viken", "Troms og Finnmark", "Narnia"])
def test_unknown_county_setting_stops_start_up_with_the_fix(setting):
    with pytest.raises(ConfigError, match="KAP12_COUNTY"):
        Contacts.load(KNOWLEDGE, load_settings(county=setting))


def test_fold_name():
    assert fold_name("Møre og Romsdal") == "more-og-romsdal" == fold_name(" more-og-romsdal ")
    assert fold_name("Østfold") == "ostfold"


@pytest.mark.parametrize("forged", [["narnia"], ["vestland", "x"], [""], ["VESTLAND"], ["x" * 100], None])
def test_forged_county_gets_the_picker_again(forged):
    reply = CONTACTS.on_button(state("nn"), forged, CATALOG)[0]
    assert reply.text.startswith(CATALOG.get("contacts.invalid", "nn"))
    assert len([d for d in datas(reply) if d.startswith("o|")]) == 15


# -- municipality ------------------------------------------------------------------------------------------------
def with_data(tmp_path: Path, change) -> Path:
    (tmp_path / "help").mkdir()
    path = tmp_path / "help" / "contacts.yaml"
    shutil.copy(KNOWLEDGE / "help" / "contacts.yaml", path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return tmp_path


def add_vefsn(data):
    data["municipalities"] = [{"name": "Vefsn", "county": "nordland", "url": "https://www.vefsn.kommune.no/skole",
                               "source": ["https://www.vefsn.kommune.no/skole"], "checked": "2026-12-01"}]


def test_municipality_page_when_the_setting_names_it(tmp_path):
    knowledge = with_data(tmp_path, add_vefsn)
    contacts = Contacts.load(knowledge, load_settings(municipality="vefsn", county="Nordland"))
    text = contacts.command(state(), CATALOG)[0].text
    assert "Kommunen: Vefsn\nhttps://www.vefsn.kommune.no/skole" in text
    assert "Sist sjekket: 01.12.2026" in text  # the oldest check on the screen
    other = contacts.on_button(state(), ["rogaland"], CATALOG)[0].text
    assert "vefsn" not in other.casefold()
    unset = Contacts.load(knowledge, load_settings(county="Nordland")).command(state(), CATALOG)[0].text
    assert "vefsn" not in unset.casefold()


# -- broken data ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda d: d["offices"]["agder"].pop("source"), "offices.agder.source"),
    (lambda d: d["offices"]["agder"].__setitem__("checked", "last spring"), "offices.agder.checked"),
    (lambda d: d["offices"]["agder"].__setitem__("phone", "call us"), "offices.agder.phone"),
    (lambda d: d["offices"]["agder"].__setitem__("url", "http://example.org"), "offices.agder.url"),
    (lambda d: d["counties"]["oslo"].__setitem__("office", "viken"), "counties.oslo.office"),
    (lambda d: d["counties"]["oslo"]["mobbeombud"].pop("checked"), "counties.oslo.mobbeombud.checked"),
    (lambda d: d["counties"]["vestland"]["mobbeombud"].pop("name"), "counties.vestland.mobbeombud.name"),
    (lambda d: d["counties"]["vestland"]["mobbeombud"].pop("source"), "counties.vestland.mobbeombud.source"),
    (lambda d: d["counties"]["vestland"].__setitem__("confirmed", "yes"), "counties.vestland.confirmed"),
    (lambda d: d.pop("counties"), "'counties'"),
    (lambda d: d.__setitem__("municipalities", [{"name": "X", "county": "viken"}]), "municipalities[0].county"),
])
def test_broken_contacts_name_the_file_and_the_entry(tmp_path, change, message):
    knowledge = with_data(tmp_path, change)
    with pytest.raises(DocumentError) as caught:
        Contacts.load(knowledge)
    assert "contacts.yaml" in str(caught.value) and message in str(caught.value)


# -- through the conversation core ----------------------------------------------------------------------------
def test_kontakt_through_the_core(tmp_path):
    settings = load_settings(data_dir=tmp_path, county="Agder")
    core = Dialog(settings, FakeAnswerer(), {}, CATALOG, SqliteStore(tmp_path / "state.sqlite3"))
    contacts_module.register(core, KNOWLEDGE, settings)
    assert "Statsforvalteren i Agder" in core.handle_command("tg:5", "/kontakt")[0].text
    assert "Statsforvalteren i Nordland" in core.handle_button("tg:5", "o|nordland")[0].text
    assert core.handle_button("tg:5", "o|nowhere")[0].text.startswith(CATALOG.get("contacts.invalid", "nb"))
    assert "Statsforvalteren i Agder" in core.handle_button("tg:5", "k|kontakt")[0].text
    assert core.store.get_user("tg:5") is None  # the county choice is never stored


def test_catalogue_has_every_contacts_key_in_all_languages():
    keys = {key for key in CATALOG.keys() if key.startswith("contacts.")}
    assert set(contacts_module.KEYS) == keys
    for key in keys:
        for lang in LANGUAGES:
            assert key not in CATALOG.missing_keys()[lang]
            assert CATALOG.placeholders(key, lang) == CATALOG.placeholders(key, "nb")
    with pytest.raises(ValueError, match="contacts.header"):
        contacts_module.check_catalog(Catalog({"nb": {"contacts.choose": "Velg"}}))
