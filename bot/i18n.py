"""The UI string catalogue: `knowledge/ui/<part>.<lang>.yaml`, flat key → string, merged over all parts.

Content people edit these files, not Python. `Catalog.get` falls back to bokmål for a key a translation
lacks, so a missing translation never breaks a conversation; `missing_keys` (and a test) makes sure none
is missing in the shipped catalogue. An unknown key is a bug in the code and raises KeyError.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Iterable
from pathlib import Path

import yaml

from bot.errors import DocumentError

LANGUAGES = ("nb", "nn", "en")
DEFAULT_LANGUAGE = "nb"

log = logging.getLogger(__name__)


class _KeepMissing(dict):
    """format_map helper: a placeholder without a value stays as `{name}` instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Catalog:
    """UI strings per language. Build it with `Catalog.load(ui_dir)` or directly from a dict (tests)."""

    def __init__(self, strings: dict[str, dict[str, str]]):
        unknown = sorted(set(strings) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"unknown languages {unknown}; use {', '.join(LANGUAGES)}")
        self._strings = {lang: dict(strings.get(lang, {})) for lang in LANGUAGES}

    @classmethod
    def load(cls, ui_dir: Path) -> Catalog:
        """Merge every `<part>.<lang>.yaml` in `ui_dir`.

        Raises:
            DocumentError: a file that is not a flat mapping of text, an unknown language in a file name,
                or a key defined twice for one language (two parts would silently fight over it).
        """
        ui_dir = Path(ui_dir)
        if not ui_dir.is_dir():
            raise DocumentError(ui_dir, "the UI catalogue folder does not exist")
        strings: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
        origin: dict[tuple[str, str], str] = {}
        for path in sorted(ui_dir.glob("*.yaml")):
            part, _, lang = path.stem.rpartition(".")
            if not part or lang not in LANGUAGES:
                raise DocumentError(path, f"name it <part>.<lang>.yaml with lang one of {', '.join(LANGUAGES)}")
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                raise DocumentError(path, f"cannot read the catalogue: {exc}") from exc
            if not isinstance(data, dict):
                raise DocumentError(path, "the catalogue must be a flat mapping of key: text")
            for key, value in data.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise DocumentError(path, f"the entry {key!r} must be text (quote it)")
                if (lang, key) in origin:
                    raise DocumentError(path, f"the key '{key}' is already defined in {origin[lang, key]}")
                origin[lang, key] = path.name
                strings[lang][key] = value.strip()
        return cls(strings)

    def keys(self) -> set[str]:
        """Every key any language defines."""
        return set().union(*(table.keys() for table in self._strings.values()))

    def __contains__(self, key: str) -> bool:
        return any(key in table for table in self._strings.values())

    def get(self, key: str, lang: str = DEFAULT_LANGUAGE, **fmt) -> str:
        """The text for `key` in `lang` (bokmål if missing there), with `{placeholders}` filled from `fmt`.

        Raises:
            KeyError: no language defines `key` (a bug in the caller).
        """
        for candidate in (lang, DEFAULT_LANGUAGE, *LANGUAGES):
            text = self._strings.get(candidate, {}).get(key)
            if text is not None:
                break
        else:
            raise KeyError(key)
        try:
            return text.format_map(_KeepMissing(fmt))
        except (ValueError, IndexError, AttributeError):
            # A malformed placeholder is a content error; show the raw text rather than fail a conversation.
            log.warning("UI text %r in %r has a malformed placeholder", key, candidate)
            return text

    def require(self, keys: Iterable[str], ui_dir: Path) -> None:
        """Check that some language defines each of `keys` (the code reads them by name).

        Raises:
            DocumentError: naming `<part>.nb.yaml`, the file a key `<part>.…` belongs in, and the keys it lacks.
        """
        missing = sorted(key for key in keys if key not in self)
        if not missing:
            return
        part = missing[0].split(".", 1)[0]
        lacking = [key for key in missing if key.split(".", 1)[0] == part]
        shown = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
        raise DocumentError(Path(ui_dir) / f"{part}.{DEFAULT_LANGUAGE}.yaml",
                            f"lacks {shown}, which no language defines and the bot needs")

    def missing_keys(self) -> dict[str, set[str]]:
        """For each language, the keys some other language defines but it lacks (empty sets = complete)."""
        every = self.keys()
        return {lang: every - self._strings[lang].keys() for lang in LANGUAGES}

    def placeholders(self, key: str, lang: str) -> set[str]:
        """The `{names}` a text uses, to check that translations take the same values."""
        text = self._strings[lang].get(key, "")
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}
