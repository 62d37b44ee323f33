"""Message drafts (/brev) and the note template (/notat): ready texts a parent or pupil copies into an e-mail.

The draft wizard is stateless. Nothing is stored and no free text is asked for: each choice travels in the
button data, one short code per step, so a press carries everything the next screen needs:

    d                       start: what happened?
    d|<what>                since when?
    d|<what>|<since>        to whom?
    d|<what>|<since>|<to>   what do you ask for?
    d|<what>|<since>|<to>|<ask>   the letter (generated in the reply, never kept)

The letter is put together from building blocks in `knowledge/drafts/letters.<lang>.yaml`; the wizard's own
texts live in the UI catalogue (`knowledge/ui/drafts.<lang>.yaml`). Blocks say `{child}`, `{date}` …, which are
filled with the user's own placeholders in their language ("[barnets navn]"), so the user can see what to fill in.
A pupil gets a pupil's version in plain words; everyone else gets the parent's version.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from pathlib import Path


from bot.datafiles import read_yaml_mapping as _read_yaml
from bot.errors import DocumentError
from bot.i18n import LANGUAGES
from bot.replies import Button, Reply

log = logging.getLogger(__name__)

PREFIX = "d"  # button prefix registered with the core
WRITERS = ("parent", "pupil")
# The wizard's steps in order: (name, codes). Codes are one ASCII letter, so the data stays tiny.
WHAT = ("b", "o", "a", "v", "x")  # bullied/left out, online, an adult at school, violence/threats, other harm
SINCE = ("d", "w", "m")  # days, weeks, months
TO = ("r", "s")  # rektor, Statsforvalteren
ASK = ("i", "p", "m", "a")  # investigate, written plan, meeting, answer by a date
STEPS = (("what", WHAT), ("since", SINCE), ("to", TO), ("ask", ASK))
ADULT_AT_SCHOOL = "a"  # the "what" code that brings in § 12-5

# The shape every writer's blocks must have in every language: key -> None (one text) or the codes it is keyed by.
_BLOCK_SHAPE: dict[str, tuple[str, ...] | None] = {
    "subject": TO, "greeting": TO, "opening": TO, "what": WHAT, "since": SINCE, "details": None,
    "basis": (*TO, "adult"), "closing": TO, "signature": None,
}


def writer_for(state) -> str:
    """The letter's writer: a pupil writes their own; parents (the default) and everyone else as a parent."""
    return "pupil" if getattr(state, "role", None) == "pupil" else "parent"


def _placeholder_names(path: Path, where: str, text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise DocumentError(path, f"'{where}': a malformed {{placeholder}} ({exc}); write {{name}} or drop the brace") \
            from exc


@dataclass(frozen=True)
class DraftChoice:
    """One complete set of choices."""

    what: str
    since: str
    to: str
    ask: str


class Drafts:
    """The /brev wizard over validated letter blocks; build it with `Drafts.load(knowledge_dir)`."""

    def __init__(self, blocks: dict[str, dict]):
        self.blocks = blocks  # lang -> the parsed, validated letters.<lang>.yaml

    @classmethod
    def load(cls, knowledge_dir: Path) -> Drafts:
        """Read and check `knowledge/drafts/letters.<lang>.yaml` for every language.

        Raises:
            DocumentError: a missing or unreadable file, a missing block, or a `{name}` the writer's
                placeholders do not define (the message names the file and the block).
        """
        folder = Path(knowledge_dir) / "drafts"
        blocks = {}
        for lang in LANGUAGES:
            path = folder / f"letters.{lang}.yaml"
            blocks[lang] = _validate_letters(path, _read_yaml(path))
        return cls(blocks)

    # -- letter -----------------------------------------------------------------------------------------
    def letter(self, choice: DraftChoice, lang: str, writer: str) -> str:
        """The complete letter text, with the user's placeholders where they fill something in."""
        data = self.blocks[lang]
        part, fill = data[writer], data["placeholders"][writer]
        paragraphs = [
            part["subject"][choice.to],
            part["greeting"][choice.to],
            part["opening"][choice.to],
            " ".join((part["what"][choice.what], part["since"][choice.since], part["details"])),
            part["basis"][choice.to],
        ]
        if choice.what == ADULT_AT_SCHOOL:
            paragraphs.append(part["basis"]["adult"])
        paragraphs += [part["ask"][choice.to][choice.ask], part["closing"][choice.to], part["signature"]]
        return "\n\n".join(text.format_map(fill) for text in paragraphs)

    # -- the tool's interface -----------------------------------------------------------------------------
    def command(self, state, catalog) -> list[Reply]:
        """/brev: the first question."""
        return [self._question(state, catalog, [])]

    def on_button(self, state, args: list[str], catalog) -> list[Reply]:
        """A `d|…` press: the next question, or the letter once all four choices are made."""
        codes = list(args) if isinstance(args, (list, tuple)) else None
        if codes is None or not _valid_prefix(codes):
            lang = state.language
            return [self._question(state, catalog, [], lead=catalog.get("drafts.invalid", lang))]
        if len(codes) < len(STEPS):
            return [self._question(state, catalog, codes)]
        return self._result(state, catalog, DraftChoice(*codes))

    # -- screens ------------------------------------------------------------------------------------------
    def _question(self, state, catalog, codes: list[str], *, lead: str | None = None) -> Reply:
        lang = state.language
        name, options = STEPS[len(codes)]
        text = catalog.get("drafts.start" if not codes else f"drafts.ask_{name}", lang)
        rows = [[Button(catalog.get(f"drafts.{name}.{code}", lang), _data(*codes, code))] for code in options]
        nav = [Button(catalog.get("drafts.button.back", lang), _data(*codes[:-1]))] if codes else []
        rows.append(nav + [_menu_button(catalog, lang)])
        return Reply(f"{lead}\n\n{text}" if lead else text, buttons=rows)

    def _result(self, state, catalog, choice: DraftChoice) -> list[Reply]:
        lang = state.language
        notes = [catalog.get("drafts.result", lang)]
        if choice.to == "s":
            notes.append(catalog.get("drafts.note_sf", lang))
        if choice.what == ADULT_AT_SCHOOL and choice.to == "r":
            notes.append(catalog.get("drafts.note_adult", lang))
        if writer_for(state) == "pupil":
            notes.append(catalog.get("drafts.note_pupil", lang))
        if lang == "en":
            notes.append(catalog.get("drafts.note_en", lang))
        buttons = [
            [Button(catalog.get("drafts.button.restart", lang), PREFIX),
             Button(catalog.get("drafts.button.note", lang), "k|notat")],
            [_menu_button(catalog, lang)],
        ]
        # The letter is a message of its own, so it can be copied without the advice around it.
        return [Reply("\n\n".join(notes)), Reply(self.letter(choice, lang, writer_for(state)), buttons=buttons)]


class NoteTemplate:
    """/notat: a copyable template for writing down what happens; build it with `NoteTemplate.load(...)`."""

    def __init__(self, texts: dict[str, dict]):
        self.texts = texts  # lang -> {title, intro, fields, fields_pupil?, advice}

    @classmethod
    def load(cls, knowledge_dir: Path) -> NoteTemplate:
        """Read and check `knowledge/drafts/note.yaml` (every language, every field).

        Raises:
            DocumentError: the file is missing, unreadable or lacks a text for a language.
        """
        path = Path(knowledge_dir) / "drafts" / "note.yaml"
        data = _read_yaml(path)
        texts = {}
        for lang in LANGUAGES:
            entry = data.get(lang)
            if not isinstance(entry, dict):
                raise DocumentError(path, f"'{lang}' is missing; give title, intro, fields and advice")
            for key in ("title", "intro", "advice"):
                if not isinstance(entry.get(key), str) or not entry[key].strip():
                    raise DocumentError(path, f"'{lang}.{key}' must be a non-empty text")
            for key in ("fields", "fields_pupil"):
                fields = entry.get(key)
                if key == "fields_pupil" and fields is None:
                    continue
                if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f.strip()
                                                                         for f in fields):
                    raise DocumentError(path, f"'{lang}.{key}' must be a list of non-empty texts")
            texts[lang] = entry
        return cls(texts)

    def template(self, lang: str, writer: str = "parent") -> str:
        """The lines to copy: one field per line."""
        entry = self.texts[lang]
        fields = entry.get("fields_pupil") if writer == "pupil" and entry.get("fields_pupil") else entry["fields"]
        return "\n".join(field.strip() for field in fields)

    def command(self, state, catalog) -> list[Reply]:
        """/notat: the title with how to use it, then the template on its own (easy to copy)."""
        lang = state.language
        entry = self.texts[lang]
        intro = "\n\n".join((entry["title"].strip(), entry["intro"].strip(), entry["advice"].strip()))
        buttons = [[Button(catalog.get("drafts.button.restart", lang), PREFIX)], [_menu_button(catalog, lang)]]
        return [Reply(intro), Reply(self.template(lang, writer_for(state)), buttons=buttons)]


# -- helpers ----------------------------------------------------------------------------------------------
def _data(*codes: str) -> str:
    return "|".join((PREFIX, *codes))


def _menu_button(catalog, lang: str) -> Button:
    return Button(catalog.get("drafts.button.menu", lang), "k|meny")


def _valid_prefix(codes: list[str]) -> bool:
    """The codes so far are a proper start of the wizard (forged or stale data is not)."""
    if len(codes) > len(STEPS):
        return False
    return all(isinstance(code, str) and code in options for code, (_, options) in zip(codes, STEPS, strict=False))




def _text(path: Path, where: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DocumentError(path, f"'{where}' must be a non-empty text (quote it)")
    return value.strip()


def _keyed(path: Path, where: str, value, codes: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise DocumentError(path, f"'{where}' must be a mapping with the keys {', '.join(codes)}")
    missing = [code for code in codes if code not in value]
    if missing:
        raise DocumentError(path, f"'{where}' lacks {', '.join(missing)}")
    return {code: _text(path, f"{where}.{code}", value[code]) for code in codes}


def _validate_letters(path: Path, data: dict) -> dict:
    """Check the blocks' shape and that every {name} a writer uses has a placeholder; return clean data."""
    placeholders = data.get("placeholders")
    if not isinstance(placeholders, dict):
        raise DocumentError(path, "'placeholders' is missing; give the user's placeholders per writer")
    clean: dict = {"placeholders": {}}
    for writer in WRITERS:
        fill = placeholders.get(writer)
        if not isinstance(fill, dict) or not fill:
            raise DocumentError(path, f"'placeholders.{writer}' must map names to the user's placeholders")
        for name, shown in fill.items():
            shown = _text(path, f"placeholders.{writer}.{name}", shown)
            # The user must recognise what to fill in: a placeholder is marked with square brackets.
            if not (shown.startswith("[") and shown.endswith("]")) or "{" in shown or "}" in shown:
                raise DocumentError(path, f"'placeholders.{writer}.{name}' must look like [what to fill in]")
        clean["placeholders"][writer] = {str(k): str(v).strip() for k, v in fill.items()}

        part = data.get(writer)
        if not isinstance(part, dict):
            raise DocumentError(path, f"'{writer}' is missing; it holds the {writer}'s letter blocks")
        blocks: dict = {}
        for key, codes in _BLOCK_SHAPE.items():
            where = f"{writer}.{key}"
            blocks[key] = _text(path, where, part.get(key)) if codes is None else _keyed(path, where, part.get(key),
                                                                                          codes)
        ask = part.get("ask")
        if not isinstance(ask, dict):
            raise DocumentError(path, f"'{writer}.ask' must be a mapping with the keys {', '.join(TO)}")
        blocks["ask"] = {to: _keyed(path, f"{writer}.ask.{to}", ask.get(to), ASK) for to in TO}

        for where, text in _walk(blocks, writer):
            unknown = _placeholder_names(path, where, text) - set(fill)
            if unknown:
                raise DocumentError(path, f"'{where}' uses {', '.join('{' + n + '}' for n in sorted(unknown))}, "
                                          f"which 'placeholders.{writer}' does not define")
        clean[writer] = blocks
    return clean


def _walk(blocks: dict, prefix: str):
    for key, value in blocks.items():
        if isinstance(value, dict):
            yield from _walk(value, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}", value


def all_choices() -> list[DraftChoice]:
    """Every combination the wizard can produce (for tests and content checks)."""
    return [DraftChoice(w, s, t, a) for w in WHAT for s in SINCE for t in TO for a in ASK]


# Every catalogue key this module reads, so a missing one stops start-up instead of a conversation.
KEYS = (
    "drafts.start", *(f"drafts.ask_{name}" for name, _ in STEPS[1:]),
    *(f"drafts.{name}.{code}" for name, codes in STEPS for code in codes),
    "drafts.result", "drafts.note_sf", "drafts.note_adult", "drafts.note_pupil", "drafts.note_en", "drafts.invalid",
    "drafts.button.back", "drafts.button.restart", "drafts.button.note", "drafts.button.menu",
)


def check_catalog(catalog) -> None:
    """Raise ValueError naming the `drafts.*` keys the UI catalogue lacks."""
    missing = [key for key in KEYS if key not in catalog]
    if missing:
        raise ValueError(f"the UI catalogue lacks {', '.join(missing)}; add them to knowledge/ui/drafts.<lang>.yaml")


def register(core, knowledge_dir: Path) -> None:
    """Wire /brev, /notat and the `d|…` buttons into the conversation core (`bot.dialog.Dialog`)."""
    check_catalog(core.catalog)
    drafts, notes = Drafts.load(knowledge_dir), NoteTemplate.load(knowledge_dir)
    core.register_tool(
        commands={"brev": lambda state: drafts.command(state, core.catalog),
                  "notat": lambda state: notes.command(state, core.catalog)},
        buttons={PREFIX: lambda state, args: drafts.on_button(state, args, core.catalog)},
    )
