"""Reading the YAML data files under knowledge/ (safety, help lines, drafts, contacts, scope) the same way."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.errors import DocumentError


def read_yaml_mapping(path: Path, *, required: bool = True) -> dict:
    """The file's top-level mapping; a clear DocumentError naming the file when it is missing or malformed.

    Args:
        required: when False, a missing or empty file is an empty mapping (optional data).
    """
    if not path.is_file():
        if required:
            raise DocumentError(path, "the file is missing")
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DocumentError(path, f"cannot read the YAML: {exc}") from None
    if data is None and not required:
        return {}
    if not isinstance(data, dict):
        raise DocumentError(path, "the file must be a mapping (key: value) at the top level")
    return data
