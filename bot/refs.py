"""Find legal references ("§ 12-4", "§§ 12-3 og 12-4", "9a-4", "kommuneloven § 25-1") in text.

References are normalised to the form the citations use: "§ 12-4" for opplæringslova, "kommuneloven § 25-1"
for other acts. Old chapter 9 A numbers are kept ("§ 9 A-4") and also mapped to their new number, because
many municipal documents still cite the 1998 act.
"""

from __future__ import annotations

import re

# Old 9 A (1998 act, 2017–2024) → 2023 act, only where the reference material confirms the mapping.
# 9 A-10/11/12 (ordensreglement, bortvisning, skolebytte) are unconfirmed and deliberately left out.
OLD_TO_NEW = {
    "1": "§ 12-1",
    "2": "§ 12-2",
    "3": "§ 12-3",
    "4": "§ 12-4",
    "5": "§ 12-5",
    "6": "§ 12-6",
    "7": "§ 12-7",
    "8": "§ 10-2",
    "9": "§ 10-8",
    "13": "§ 12-8",
    "14": "§ 12-9",
    "15": "§ 12-10",
}

# A bare number may carry a letter ("forvaltningsloven § 11 a" is its own rule, not § 11).
_NUM = r"\d{1,2}\s?[aA]?\s?-\s?\d{1,2}|\d{1,3}(?:\s?[a-d](?![\w-]))?"
_LAW = r"(?P<law>\b[a-zæøå]+(?:loven|lova|lovens|lovas)\b|\bfvl\.)"
_REF = re.compile(
    rf"(?:{_LAW}\s*)?(?:§§?|\bparagraf(?:ene|en|ane|ar|er)?\b)\s*"
    rf"(?P<nums>(?:{_NUM})(?:\s*(?:,|og|and|eller|or|–|—|-)\s*(?:{_NUM}))*)",
    re.IGNORECASE,
)
_BARE_OLD = re.compile(r"(?<![\d§-])\b9\s?[aA]\s?-\s?(\d{1,2})\b")
_SPLIT = re.compile(r"\s*(?:,|\bog\b|\band\b|\beller\b|\bor\b)\s*", re.IGNORECASE)
_RANGE = re.compile(r"^(\d{1,2})-(\d{1,2})\s*[–—]\s*(\d{1,2})-(\d{1,2})$")

_LAW_NAMES = {"fvl.": "forvaltningsloven"}


def _normalise_number(raw: str, pre_2017: bool = False) -> tuple[str, str | None]:
    """Return (canonical number, old 9 A number or None) for one raw number like '9a-4', '12 -4' or '11 a'."""
    compact = re.sub(r"\s+", "", raw)
    letter = re.fullmatch(r"(\d{1,3})([a-d])", compact)
    if letter:
        return f"{letter.group(1)} {letter.group(2)}", None
    if pre_2017 and re.fullmatch(r"9a-\d{1,2}", compact):
        return compact, None  # the numbering before August 2017: not the same rules as 9 A-n
    old = re.fullmatch(r"9[aA]-(\d{1,2})", compact)
    if old:
        return f"9 A-{old.group(1)}", old.group(1)
    return compact, None


def _expand(nums: str) -> list[str]:
    """Split '12-3 og 12-4', '10-1, 10-2 og 12-4' and ranges '12-1–12-3' into single numbers."""
    out: list[str] = []
    for part in _SPLIT.split(nums.strip()):
        part = part.strip()
        if not part:
            continue
        rng = _RANGE.match(part)
        if rng and rng.group(1) == rng.group(3) and int(rng.group(2)) < int(rng.group(4)) <= 30:
            out.extend(f"{rng.group(1)}-{i}" for i in range(int(rng.group(2)), int(rng.group(4)) + 1))
        else:
            out.extend(p for p in re.split(r"\s*[–—]\s*", part) if p)
    return out


def find_refs(text: str, *, pre_2017: bool = False) -> list[str]:
    """All legal references in `text`, normalised, in order of first appearance, without duplicates.

    Args:
        pre_2017: a small-letter "9a-n" is the numbering used before August 2017 (kept as "§ 9a-n", not mapped),
            as in a text that tells the two apart. By default it is read as the informal "9 A-n" most people mean.
    """
    found: list[str] = []

    def add(ref: str) -> None:
        if ref not in found:
            found.append(ref)

    for match in _REF.finditer(text):
        law = (match.group("law") or "").lower()
        law = _LAW_NAMES.get(law, law)
        if law in ("opplæringslova", "opplæringsloven", "opplæringslovas", "opplæringslovens"):
            law = ""
        for raw in _expand(match.group("nums")):
            number, old = _normalise_number(raw, pre_2017)
            if law:
                add(f"{law} § {number}")
                continue
            if "-" not in number:
                continue  # a bare "§ 13" without its act is too ambiguous to cite
            add(f"§ {number}")
            if old and old in OLD_TO_NEW:
                add(OLD_TO_NEW[old])
    for match in _BARE_OLD.finditer(text):
        if pre_2017 and "a" in match.group(0):
            add(f"§ 9a-{match.group(1)}")
            continue
        add(f"§ 9 A-{match.group(1)}")
        if match.group(1) in OLD_TO_NEW:
            add(OLD_TO_NEW[match.group(1)])
    return found
