"""Local contacts (/kontakt): a county's Statsforvalteren office, mobbeombud and, if configured, the kommune page.

All contacts are data in `knowledge/help/contacts.yaml`, each with its source URLs and the date it was checked;
what we could not confirm is marked `confirmed: false` and the reply says so. The user picks their county with
buttons (`o|<county>`); `KAP12_COUNTY` preselects one for a bot that serves a single county. There is no default
county: without the setting the bot asks.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.errors import ConfigError, DocumentError
from bot.replies import Button, Reply

log = logging.getLogger(__name__)

PREFIX = "o"  # button prefix registered with the core
BUTTONS_PER_ROW = 2  # fifteen counties fit a phone screen two by two
_ID_RE = re.compile(r"[a-z0-9-]{1,40}")
_PHONE_RE = re.compile(r"\+?[0-9 ]{8,16}")
_FOLD = str.maketrans({"æ": "ae", "ø": "o", "å": "a", " ": "-", "_": "-"})


def fold_name(text: str) -> str:
    """A county name or id in one comparable form: 'Møre og Romsdal' and 'more-og-romsdal' match."""
    return "-".join(str(text).strip().casefold().translate(_FOLD).split("-")).strip("-")


@dataclass(frozen=True)
class Sourced:
    """Provenance shared by every entry: where it comes from, when it was checked, and whether it is confirmed."""

    source: tuple[str, ...]
    checked: dt.date
    confirmed: bool = True
    note: str = ""


@dataclass(frozen=True)
class Office:
    id: str
    name: str
    url: str
    phone: str | None
    provenance: Sourced


@dataclass(frozen=True)
class Mobbeombud:
    found: bool
    name: str | None
    url: str | None
    provenance: Sourced


@dataclass(frozen=True)
class County:
    id: str
    name: str
    office: Office
    mobbeombud: Mobbeombud
    provenance: Sourced


@dataclass(frozen=True)
class Municipality:
    name: str
    county: str
    url: str
    provenance: Sourced


class Contacts:
    """The /kontakt tool. Build it with `Contacts.load(knowledge_dir, settings)`."""

    def __init__(self, offices: dict[str, Office], counties: dict[str, County],
                 municipalities: list[Municipality] | None = None, *, county: str = "", municipality: str = ""):
        self.offices = offices
        self.counties = counties
        self.municipalities = list(municipalities or [])
        self.preselected: County | None = None
        if county and county.strip():
            self.preselected = self.find_county(county)
            if self.preselected is None:
                choices = ", ".join(self.counties)
                raise ConfigError(f"KAP12_COUNTY={county!r} is not a county in knowledge/help/contacts.yaml. "
                                  f"Use one of: {choices} (or leave it empty to let users choose).")
        wanted = fold_name(municipality) if municipality and municipality.strip() else ""
        self.municipality = next((m for m in self.municipalities if fold_name(m.name) == wanted), None)
        if wanted and self.municipality is None:
            # Not an error: most municipalities have no entry; /kontakt then shows the county only.
            log.info("no contacts entry for municipality %r; /kontakt shows the county only", municipality)

    @classmethod
    def load(cls, knowledge_dir: Path, settings=None) -> Contacts:
        """Read and check `knowledge/help/contacts.yaml`; `settings` gives county and municipality.

        Raises:
            DocumentError: the file is missing or an entry lacks its name, link, source or checked date.
            ConfigError: `settings.county` names no county in the file.
        """
        path = Path(knowledge_dir) / "help" / "contacts.yaml"
        offices, counties, municipalities = _parse(path)
        county = getattr(settings, "county", "") or ""
        municipality = getattr(settings, "municipality", "") or ""
        return cls(offices, counties, municipalities, county=county, municipality=municipality)

    def find_county(self, text: str) -> County | None:
        """The county with this id or name (case, spaces and æøå do not matter)."""
        wanted = fold_name(text)
        return next((c for c in self.counties.values() if wanted in (c.id, fold_name(c.name))), None)

    # -- the tool's interface -----------------------------------------------------------------------------
    def command(self, state, catalog) -> list[Reply]:
        """/kontakt: the preselected county's contacts, or the county picker."""
        if self.preselected is not None:
            return [self._county_reply(state, catalog, self.preselected)]
        return [self._picker(state, catalog)]

    def on_button(self, state, args: list[str], catalog) -> list[Reply]:
        """An `o|…` press: `o` shows the picker, `o|<county>` that county; anything else the picker again."""
        if isinstance(args, (list, tuple)) and not args:
            return [self._picker(state, catalog)]
        valid = isinstance(args, (list, tuple)) and len(args) == 1 and isinstance(args[0], str)
        county = self.counties.get(args[0]) if valid else None
        if county is None:
            return [self._picker(state, catalog, lead=catalog.get("contacts.invalid", state.language))]
        return [self._county_reply(state, catalog, county)]

    # -- screens ------------------------------------------------------------------------------------------
    def _picker(self, state, catalog, *, lead: str | None = None) -> Reply:
        lang = state.language
        buttons = [Button(c.name, f"{PREFIX}|{c.id}") for c in self.counties.values()]
        rows = [buttons[i:i + BUTTONS_PER_ROW] for i in range(0, len(buttons), BUTTONS_PER_ROW)]
        rows.append([_menu_button(catalog, lang)])
        text = catalog.get("contacts.choose", lang)
        return Reply(f"{lead}\n\n{text}" if lead else text, buttons=rows, kind="menu")

    def _county_reply(self, state, catalog, county: County) -> Reply:
        lang = state.language
        office, ombud = county.office, county.mobbeombud
        sections = [catalog.get("contacts.header", lang, county=county.name)]

        lines = [office.name, office.url]
        if office.phone:
            lines.append(catalog.get("contacts.phone", lang, phone=office.phone))
        lines.append(catalog.get("contacts.office_role", lang))
        if not office.provenance.confirmed:
            lines.append(catalog.get("contacts.unconfirmed_link", lang))
        sections.append("\n".join(lines))

        if ombud.found:
            lines = [catalog.get("contacts.mobbeombud", lang, name=ombud.name)]
            if ombud.url:
                lines.append(ombud.url)
            lines.append(catalog.get("contacts.mobbeombud_about", lang))
            if not ombud.provenance.confirmed:
                lines.append(catalog.get("contacts.mobbeombud_unconfirmed", lang))
            sections.append("\n".join(lines))
        else:
            sections.append(catalog.get("contacts.mobbeombud_none", lang))

        checked = [office.provenance.checked, ombud.provenance.checked, county.provenance.checked]
        kommune = self.municipality
        if kommune is not None and kommune.county == county.id:
            sections.append(f"{catalog.get('contacts.municipality', lang, name=kommune.name)}\n{kommune.url}")
            checked.append(kommune.provenance.checked)
        # The oldest check is the honest date for the whole screen.
        sections.append(catalog.get("contacts.checked", lang, date=_format_date(min(checked), lang)))

        buttons = [[Button(catalog.get("contacts.button.draft", lang), "d")],
                   [Button(catalog.get("contacts.button.other", lang), PREFIX), _menu_button(catalog, lang)]]
        return Reply("\n\n".join(sections), buttons=buttons)


# -- helpers ----------------------------------------------------------------------------------------------
def _menu_button(catalog, lang: str) -> Button:
    return Button(catalog.get("contacts.button.menu", lang), "k|meny")


def _format_date(day: dt.date, lang: str) -> str:
    return day.isoformat() if lang == "en" else day.strftime("%d.%m.%Y")


def _parse(path: Path) -> tuple[dict[str, Office], dict[str, County], list[Municipality]]:
    if not path.is_file():
        raise DocumentError(path, "the contacts file is missing")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DocumentError(path, f"cannot read it: {exc}") from exc
    if not isinstance(data, dict):
        raise DocumentError(path, "it must be a mapping with 'offices' and 'counties'")

    raw_offices = _mapping(path, "offices", data.get("offices"))
    offices = {}
    for office_id, entry in raw_offices.items():
        where = f"offices.{office_id}"
        entry = _mapping(path, where, entry)
        phone = entry.get("phone")
        if phone is not None and not (isinstance(phone, str) and _PHONE_RE.fullmatch(phone.strip())):
            raise DocumentError(path, f"'{where}.phone' must be a phone number like '90 91 50 45', or left out")
        offices[_id(path, where, office_id)] = Office(
            id=office_id, name=_text(path, f"{where}.name", entry.get("name")),
            url=_url(path, f"{where}.url", entry.get("url")), phone=phone.strip() if phone else None,
            provenance=_provenance(path, where, entry, need_source=True),
        )

    raw_counties = _mapping(path, "counties", data.get("counties"))
    counties = {}
    for county_id, entry in raw_counties.items():
        where = f"counties.{county_id}"
        entry = _mapping(path, where, entry)
        office = offices.get(entry.get("office"))
        if office is None:
            raise DocumentError(path, f"'{where}.office' must be one of the offices: {', '.join(offices)}")
        counties[_id(path, where, county_id)] = County(
            id=county_id, name=_text(path, f"{where}.name", entry.get("name")), office=office,
            mobbeombud=_mobbeombud(path, f"{where}.mobbeombud", entry.get("mobbeombud")),
            provenance=_provenance(path, where, entry, need_source=True),
        )

    municipalities = []
    raw_municipalities = data.get("municipalities") or []
    if not isinstance(raw_municipalities, list):
        raise DocumentError(path, "'municipalities' must be a list (or left out)")
    for i, entry in enumerate(raw_municipalities):
        where = f"municipalities[{i}]"
        entry = _mapping(path, where, entry)
        if entry.get("county") not in counties:
            raise DocumentError(path, f"'{where}.county' must be one of the counties: {', '.join(counties)}")
        municipalities.append(Municipality(
            name=_text(path, f"{where}.name", entry.get("name")), county=entry["county"],
            url=_url(path, f"{where}.url", entry.get("url")),
            provenance=_provenance(path, where, entry, need_source=True),
        ))
    return offices, counties, municipalities


def _mobbeombud(path: Path, where: str, entry) -> Mobbeombud:
    entry = _mapping(path, where, entry)
    found = entry.get("found", True)
    if not isinstance(found, bool):
        raise DocumentError(path, f"'{where}.found' must be true or false")
    if not found:
        # "None found" still says when we looked; no name, no link, nothing invented.
        return Mobbeombud(False, None, None, _provenance(path, where, entry, need_source=False))
    url = entry.get("url")
    return Mobbeombud(True, _text(path, f"{where}.name", entry.get("name")),
                      _url(path, f"{where}.url", url) if url is not None else None,
                      _provenance(path, where, entry, need_source=True))


def _provenance(path: Path, where: str, entry: dict, *, need_source: bool) -> Sourced:
    source = entry.get("source", [])
    if isinstance(source, str):
        source = [source]
    if not isinstance(source, list) or (need_source and not source):
        raise DocumentError(path, f"'{where}.source' must list the page(s) the entry comes from")
    urls = tuple(_url(path, f"{where}.source", url) for url in source)
    checked = entry.get("checked")
    if isinstance(checked, str):
        try:
            checked = dt.date.fromisoformat(checked.strip())
        except ValueError:
            checked = None
    if not isinstance(checked, dt.date) or isinstance(checked, dt.datetime):
        raise DocumentError(path, f"'{where}.checked' must be the date it was checked, as YYYY-MM-DD")
    confirmed = entry.get("confirmed", True)
    if not isinstance(confirmed, bool):
        raise DocumentError(path, f"'{where}.confirmed' must be true or false")
    note = entry.get("note", "")
    if not isinstance(note, str):
        raise DocumentError(path, f"'{where}.note' must be text")
    return Sourced(urls, checked, confirmed, note.strip())


def _mapping(path: Path, where: str, value) -> dict:
    if not isinstance(value, dict) or not value:
        raise DocumentError(path, f"'{where}' must be a non-empty mapping")
    return value


def _id(path: Path, where: str, value) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise DocumentError(path, f"'{where}': ids are lower-case letters, digits and '-' (at most 40)")
    return value


def _text(path: Path, where: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DocumentError(path, f"'{where}' must be a non-empty text")
    return value.strip()


def _url(path: Path, where: str, value) -> str:
    if not isinstance(value, str) or not value.startswith("https://") or " " in value.strip():
        raise DocumentError(path, f"'{where}' must be an https:// link")
    return value.strip()


# Every catalogue key this module reads, so a missing one stops start-up instead of a conversation.
KEYS = (
    "contacts.choose", "contacts.header", "contacts.office_role", "contacts.phone", "contacts.unconfirmed_link",
    "contacts.mobbeombud", "contacts.mobbeombud_about", "contacts.mobbeombud_unconfirmed", "contacts.mobbeombud_none",
    "contacts.municipality", "contacts.checked", "contacts.invalid", "contacts.button.other",
    "contacts.button.draft", "contacts.button.menu",
)


def check_catalog(catalog) -> None:
    """Raise ValueError naming the `contacts.*` keys the UI catalogue lacks."""
    missing = [key for key in KEYS if key not in catalog]
    if missing:
        raise ValueError(f"the UI catalogue lacks {', '.join(missing)}; add them to knowledge/ui/contacts.<lang>.yaml")


def register(core, knowledge_dir: Path, settings=None) -> None:
    """Wire /kontakt and the `o|…` buttons into the conversation core (`bot.dialog.Dialog`)."""
    check_catalog(core.catalog)
    contacts = Contacts.load(knowledge_dir, settings)
    core.register_tool(
        commands={"kontakt": lambda state: contacts.command(state, core.catalog)},
        buttons={PREFIX: lambda state, args: contacts.on_button(state, args, core.catalog)},
    )
