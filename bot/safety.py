"""The safety layer: recognise a person in danger and answer first, briefly, with the right help numbers.

Every free-text message passes through `SafetyCheck.check` before retrieval or walkthroughs. Recognition has
two sides, both driven by data under `knowledge/safety/` so reviewers can change them without code:

- curated patterns (`patterns.yaml`): strong ones decide alone; weak ones (often harmless words such as
  "orker ikke mer") only make the embedding side more willing; masks blank out figures of speech first
  ("dette møtet tar livet av meg"), and past + procedural markers turn "how should the school follow up the
  fight last year?" into a question about the law rather than an emergency;
- similarity to crisis exemplars (`exemplars.yaml`) with the shipped multilingual embedding model, compared
  with harmless exemplars so a close-but-ordinary question ("my daughter is bullied, what must the school do?")
  does not trigger. The numbers are in `thresholds.yaml`.

Patterns give precision and coverage of typos/dialect we have seen; embeddings give recall on wordings nobody
listed and on languages with few patterns. Either side alone missed too much (see the evaluation).

The reply chooses numbers by writer (pupil/parent/staff) and situation from `numbers.yaml`, drops lines that
are closed at that hour (`knowledge/help/helplines.yaml`) and never gives an adults-only line to a pupil.

Privacy: this module keeps no state about messages: it neither logs nor stores the text.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from bot.embed import Embedder
from bot.datafiles import read_yaml_mapping as _read_yaml
from bot.errors import DocumentError
from bot.i18n import Catalog

CATEGORIES = (
    "suicide",
    "self_harm",
    "home_violence",
    "sexual_abuse",
    "adult_hurting",
    "weapon_threat",
    "violence_now",
    "missing_child",
    "medical",
)
WRITERS = ("pupil", "parent", "staff")
# The bot's roles (bot/roles.py) mapped to who is writing; a new teacher is staff.
ROLE_TO_WRITER = {"pupil": "pupil", "parent": "parent", "staff": "staff", "new_teacher": "staff"}
# With no cue in the text and no chosen role we assume a child: child wording and numbers (112, 113, 116 111)
# also serve an adult, while an adult's wording and numbers (116 006) can fail a child.
DEFAULT_WRITER = "pupil"
REPLY_GROUPS = ("care", "medical", "abuse", "adult", "danger")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOCAL_TZ = ZoneInfo("Europe/Oslo")
THRESHOLD_KEYS = ("top_k", "neighbours", "sure_at", "clearly_harmless", "l2", "iterations", "urgent_at", "weak_bonus",
                  "mask_penalty", "damp_penalty")
# Exemplar vectors are scaled up before the classifier is fitted: e5 cosines sit in a narrow band, and a larger
# input scale lets plain gradient descent converge in a few thousand steps with a small L2 penalty.
FEATURE_SCALE = 10.0


@dataclass(frozen=True)
class SafetyResult:
    """What the check found: whether to answer with help first, the situation, who wrote, and the evidence."""

    urgent: bool
    category: str | None  # one of CATEGORIES, None when not urgent
    writer: str  # one of WRITERS
    score: float  # 1.0 = a strong pattern decided; otherwise the embedding margin over harmless exemplars


@dataclass(frozen=True)
class SafetyReply:
    """A short plain-text reply and the numbers it shows, in order (for buttons, JSON and tests)."""

    text: str
    help: list[dict]


# --------------------------------------------------------------------------------------------- text folding

# Letters NFKD does not split into base + mark, and the apostrophes people type (Ukrainian uses several).
_FOLD_EXTRA = str.maketrans(
    {"ø": "o", "æ": "ae", "ł": "l", "đ": "d", "ß": "ss", "’": "'", "ʼ": "'", "`": "'", "´": "'"}
)
_REPEATS = re.compile(r"(\w)\1{2,}")


def fold(text: str) -> str:
    """Lower-case, strip accents and marks, unify apostrophes, shorten letter runs ("hjelppp" → "hjelpp").

    Patterns are folded the same way, so "nie chce zyc", "vil ikke leve" and "ønsker ikke å leve" all match
    patterns written with proper letters.
    """
    text = unicodedata.normalize("NFKC", text).lower().translate(_FOLD_EXTRA)
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    text = unicodedata.normalize("NFC", text)
    return _REPEATS.sub(r"\1\1", text)


# ------------------------------------------------------------------------------------------------ data types


@dataclass(frozen=True)
class _Pattern:
    label: str  # category, writer or marker kind
    lang: str
    regex: re.Pattern
    weak: bool = False


@dataclass(frozen=True)
class Helpline:
    """One help number from knowledge/help/helplines.yaml."""

    number: str
    names: dict[str, str]
    always_open: bool
    windows: tuple[tuple[frozenset[int], time, time], ...]  # (weekdays 0=mon, from, to) in Oslo time
    free: bool
    emergency: bool
    min_age: int | None
    max_age: int | None

    def is_open(self, local: datetime) -> bool:
        if self.always_open:
            return True
        clock = local.time()
        return any(local.weekday() in days and start <= clock < end for days, start, end in self.windows)

    def closes_at(self, local: datetime) -> time | None:
        """The closing time of the window open at `local`, if any (shown as "open until 22:00")."""
        clock = local.time()
        for days, start, end in self.windows:
            if local.weekday() in days and start <= clock < end:
                return end
        return None

    def name(self, lang: str) -> str:
        return self.names.get(lang) or self.names["nb"]

    def as_help(self, lang: str) -> dict:
        return {"number": self.number, "name": self.name(lang)}


# ------------------------------------------------------------------------------------------------ loading




def _compile(path: Path, where: str, entry) -> re.Pattern:
    if not isinstance(entry, dict) or not isinstance(entry.get("re"), str) or not entry["re"].strip():
        raise DocumentError(path, f"{where}: each entry needs a non-empty 're' (the regular expression)")
    try:
        return re.compile(fold(entry["re"]))
    except re.error as exc:
        raise DocumentError(path, f"{where}: bad regular expression {entry['re']!r}: {exc}") from exc


def _pattern_list(path: Path, data: dict, section: str, label: str | None = None) -> list[_Pattern]:
    entries = data.get(section) or []
    if not isinstance(entries, list):
        raise DocumentError(path, f"'{section}' must be a list of {{lang, re}} entries")
    patterns = []
    for i, e in enumerate(entries):
        regex = _compile(path, f"{section}[{i}]", e)  # first: it checks that the entry is a mapping
        patterns.append(_Pattern(label or section, str(e.get("lang", "")), regex, bool(e.get("weak"))))
    return patterns


def _load_patterns(path: Path) -> dict:
    data = _read_yaml(path)
    categories = data.get("categories")
    if not isinstance(categories, dict) or not categories:
        raise DocumentError(path, "'categories' must map each danger category to a list of patterns")
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise DocumentError(path, f"unknown categories {unknown}; use {', '.join(CATEGORIES)}")
    ordered: list[_Pattern] = []
    for category, entries in categories.items():  # file order = priority when several categories match
        if not isinstance(entries, list):
            raise DocumentError(path, f"categories.{category} must be a list of patterns")
        for i, entry in enumerate(entries):
            regex = _compile(path, f"categories.{category}[{i}]", entry)
            ordered.append(_Pattern(category, str(entry.get("lang", "")), regex, bool(entry.get("weak"))))
    writers = []
    for i, entry in enumerate(data.get("writers") or []):
        if not isinstance(entry, dict) or entry.get("writer") not in WRITERS:
            raise DocumentError(path, f"writers[{i}]: 'writer' must be one of {', '.join(WRITERS)}")
        writers.append(_Pattern(entry["writer"], str(entry.get("lang", "")), _compile(path, f"writers[{i}]", entry)))
    return {
        "categories": ordered,
        "masks": _pattern_list(path, data, "masks"),
        "past": _pattern_list(path, data, "past"),
        "procedural": _pattern_list(path, data, "procedural"),
        "writers": writers,
    }


def _load_exemplars(path: Path) -> tuple[list[str], list[str]]:
    """All exemplar texts and, per text, its label (a category or "harmless")."""
    data = _read_yaml(path)
    categories = data.get("categories")
    if not isinstance(categories, dict):
        raise DocumentError(path, "'categories' must map each danger category to a list of example messages")
    texts: list[str] = []
    labels: list[str] = []
    for category in CATEGORIES:
        examples = categories.get(category)
        if not isinstance(examples, list) or not examples:
            raise DocumentError(path, f"categories.{category} needs at least one example message")
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise DocumentError(path, f"unknown categories {unknown}; use {', '.join(CATEGORIES)}")
    harmless = data.get("harmless")
    if not isinstance(harmless, list) or not harmless:
        raise DocumentError(path, "'harmless' needs a list of ordinary messages that must not trigger")
    for label, examples in [*((c, categories[c]) for c in CATEGORIES), ("harmless", harmless)]:
        for text in examples:
            if not isinstance(text, str) or not text.strip():
                raise DocumentError(path, f"{label}: every example must be a non-empty text (quote it)")
            texts.append(text.strip())
            labels.append(label)
    return texts, labels


def _load_thresholds(path: Path) -> dict[str, float]:
    data = _read_yaml(path)
    out = {}
    for key in THRESHOLD_KEYS:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DocumentError(path, f"'{key}' must be a number")
        out[key] = float(value)
    for key in ("top_k", "iterations"):
        if out[key] < 1 or out[key] != int(out[key]):
            raise DocumentError(path, f"'{key}' must be a whole number of at least 1")
    if out["neighbours"] < 0 or out["neighbours"] != int(out["neighbours"]):
        raise DocumentError(path, "'neighbours' must be a whole number (0 switches the check off)")
    return out


def _parse_clock(path: Path, where: str, value) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value))
    if not match or int(match[1]) > 24 or int(match[2]) > 59:
        raise DocumentError(path, f"{where}: write times as HH:MM, not {value!r}")
    hours, minutes = int(match[1]), int(match[2])
    return time.max if hours == 24 else time(hours, minutes)


def _load_helplines(path: Path) -> dict[str, Helpline]:
    data = _read_yaml(path)
    entries = data.get("helplines")
    if not isinstance(entries, list) or not entries:
        raise DocumentError(path, "'helplines' must be a list of help numbers")
    lines: dict[str, Helpline] = {}
    for i, entry in enumerate(entries):
        where = f"helplines[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("number"), str):
            raise DocumentError(path, f"{where}: 'number' must be given as quoted text, e.g. \"116 111\"")
        number = entry["number"]
        where = f"helpline {number}"
        names = entry.get("names")
        if not isinstance(names, dict) or not all(isinstance(names.get(lang), str) for lang in ("nb", "nn", "en")):
            raise DocumentError(path, f"{where}: 'names' needs a name for nb, nn and en")
        hours = entry.get("hours")
        if not isinstance(hours, dict):
            raise DocumentError(path, f"{where}: 'hours' must be {{always: true}} or {{windows: [...]}}")
        windows = []
        for j, window in enumerate(hours.get("windows") or []):
            days = window.get("days") if isinstance(window, dict) else None
            if not isinstance(days, list) or not days or any(day not in DAYS for day in days):
                raise DocumentError(path, f"{where}: window {j} needs 'days' from {', '.join(DAYS)}")
            start = _parse_clock(path, f"{where} window {j}", window.get("from"))
            end = _parse_clock(path, f"{where} window {j}", window.get("to"))
            if end <= start:
                raise DocumentError(path, f"{where}: window {j} must end after it starts (split it at midnight)")
            windows.append((frozenset(DAYS.index(day) for day in days), start, end))
        always = hours.get("always") is True
        if always == bool(windows):
            raise DocumentError(path, f"{where}: give either 'always: true' or opening 'windows', not both or none")
        if not entry.get("sources"):
            raise DocumentError(path, f"{where}: 'sources' must say where the number was found")
        if "checked" not in entry:
            raise DocumentError(path, f"{where}: 'checked' (the date of the newest source, or null) is missing")
        if number in lines:
            raise DocumentError(path, f"{where} is listed twice")
        lines[number] = Helpline(
            number=number,
            names={lang: names[lang] for lang in names},
            always_open=always,
            windows=tuple(windows),
            free=bool(entry.get("free")),
            emergency=bool(entry.get("emergency")),
            min_age=entry.get("min_age"),
            max_age=entry.get("max_age"),
        )
    return lines


def _load_numbers(path: Path, helplines: dict[str, Helpline]) -> dict:
    data = _read_yaml(path)
    max_numbers = data.get("max_numbers")
    if not isinstance(max_numbers, int) or max_numbers < 1:
        raise DocumentError(path, "'max_numbers' must be a whole number of at least 1")

    def table(numbers, where: str) -> list[str]:
        if not isinstance(numbers, list) or not numbers:
            raise DocumentError(path, f"{where}: needs a list of numbers")
        for number in numbers:
            if not isinstance(number, str) or number not in helplines:
                raise DocumentError(path, f"{where}: {number!r} is not in knowledge/help/helplines.yaml")
        if where.endswith(".pupil"):
            adults = [n for n in numbers if (helplines[n].min_age or 0) >= 18]
            if adults:
                raise DocumentError(path, f"{where}: {adults} is for adults only and must never be given to pupils")
        if not any(helplines[n].always_open for n in numbers):
            raise DocumentError(path, f"{where}: needs at least one number that is open day and night")
        return list(numbers)

    situations = data.get("situations")
    if not isinstance(situations, dict):
        raise DocumentError(path, "'situations' must map each category to numbers per writer")
    chosen = {}
    for category in CATEGORIES:
        per_writer = situations.get(category)
        if not isinstance(per_writer, dict):
            raise DocumentError(path, f"situations.{category} is missing (numbers for pupil, parent and staff)")
        chosen[category] = {w: table(per_writer.get(w), f"situations.{category}.{w}") for w in WRITERS}
    general = data.get("general")
    if not isinstance(general, dict):
        raise DocumentError(path, "'general' must give the numbers for anyone in danger, per writer")
    groups = data.get("reply_groups")
    if not isinstance(groups, dict) or set(groups) != set(CATEGORIES) or not all(
            group in REPLY_GROUPS for group in groups.values()):
        raise DocumentError(path, f"'reply_groups' must map every category to one of {', '.join(REPLY_GROUPS)}")
    return {
        "max": max_numbers,
        "situations": chosen,
        "general": {w: table(general.get(w), f"general.{w}") for w in WRITERS},
        "reply_groups": dict(groups),
    }


def read_data(knowledge_dir: Path) -> dict:
    """Read and check knowledge/safety/*.yaml and knowledge/help/helplines.yaml, without embedding anything
    (also how `bot.content` checks a changed file before an index build keeps a copy of it).

    Raises:
        DocumentError: a data file is missing or malformed; the message names the file and the problem.
    """
    safety_dir = Path(knowledge_dir) / "safety"
    helplines = _load_helplines(Path(knowledge_dir) / "help" / "helplines.yaml")
    return {
        "helplines": helplines,
        "numbers": _load_numbers(safety_dir / "numbers.yaml", helplines),
        "patterns": _load_patterns(safety_dir / "patterns.yaml"),
        "thresholds": _load_thresholds(safety_dir / "thresholds.yaml"),
        "exemplars": _load_exemplars(safety_dir / "exemplars.yaml"),
    }


def _ordinary_messages(knowledge_dir: Path) -> list[str]:
    """Everyday chat the bot's conversation data already holds: greetings, thanks, navigation (not "hjelp",
    which may be a cry for help). Short chat otherwise looks like nothing the classifier has seen and lands on
    the crisis side; as harmless examples they teach it otherwise."""
    from bot.gate import ScopeData

    scope = ScopeData.load(knowledge_dir)
    return [text for text, kind, label in zip(scope.texts, scope.kinds, scope.labels, strict=True)
            if kind == "chat" and label != "help"]


def _fit_classifier(vectors: np.ndarray, urgent: np.ndarray, l2: float, iterations: int) -> tuple[np.ndarray, float]:
    """Logistic regression: crisis exemplars against harmless ones, each class weighing half.

    Plain nearest-exemplar similarity separated poorly (e5 puts most sentences at cosine 0.85-0.9); a linear
    direction fitted on the same exemplars finds what crisis messages share. Deterministic (zero start, full-batch
    gradient descent), so the same exemplars always give the same weights.
    """
    x = vectors.astype(np.float64) * FEATURE_SCALE
    y = urgent.astype(np.float64)
    share = y.mean()
    weight = np.where(y == 1, 0.5 / share, 0.5 / (1 - share))
    w = np.zeros(x.shape[1])
    b = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        g = (p - y) * weight
        w -= 0.5 * (x.T @ g / len(y) + l2 * w)
        b -= 0.5 * float(g.mean())
    return (w * FEATURE_SCALE).astype(np.float32), float(b)


def _embedded_exemplars(
    texts: list[str], labels: list[str], embedder: Embedder, thresholds: dict, cache_dir: Path | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Exemplar vectors and the fitted classifier, computed once and cached by model, texts and settings."""
    key = hashlib.sha256(
        json.dumps(
            {"embedder": embedder.identity(), "texts": texts, "labels": labels,
             "fit": [thresholds["l2"], thresholds["iterations"], FEATURE_SCALE]},
            ensure_ascii=False, sort_keys=True,
        ).encode()
    ).hexdigest()[:20]
    path = Path(cache_dir) / f"safety-exemplars-{key}.npz" if cache_dir else None
    if path and path.is_file():
        try:
            with np.load(path) as cached:
                vectors, w, b = cached["vectors"], cached["w"], float(cached["b"])
            if vectors.shape == (len(texts), embedder.dim) and w.shape == (embedder.dim,):
                return vectors.astype(np.float32, copy=False), w.astype(np.float32, copy=False), b
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is rebuilt below
    vectors = np.asarray(embedder.embed_batch(texts, "query"), dtype=np.float32)
    w, b = _fit_classifier(
        vectors, np.asarray(labels) != "harmless", thresholds["l2"], int(thresholds["iterations"])
    )
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside and rename, so a crash never leaves a half-written cache that later loads as garbage.
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, vectors=vectors, w=w, b=np.float64(b))
        os.replace(tmp, path)
    return vectors, w, b


# ------------------------------------------------------------------------------------------------ the check


class SafetyCheck:
    """Recognises danger in a message and builds the help-first reply. Build it with `SafetyCheck.load`."""

    def __init__(
        self,
        *,
        patterns: dict,
        exemplar_vectors: np.ndarray,
        exemplar_labels: list[str],
        classifier: tuple[np.ndarray, float],
        thresholds: dict[str, float],
        helplines: dict[str, Helpline],
        numbers: dict,
        embedder: Embedder,
    ):
        self._patterns = patterns
        self._vectors = exemplar_vectors
        self._w, self._b = classifier
        labels = np.asarray(exemplar_labels)
        self._rows = {label: np.flatnonzero(labels == label) for label in (*CATEGORIES, "harmless")}
        self._crisis_rows = np.flatnonzero(labels != "harmless")
        self._t = thresholds
        self.helplines = helplines
        self._numbers = numbers
        self._embedder = embedder

    @classmethod
    def load(cls, knowledge_dir: Path, embedder: Embedder, cache_dir: Path | None = None) -> SafetyCheck:
        """Read knowledge/safety/*.yaml and knowledge/help/helplines.yaml and embed the exemplars (cached).

        Raises:
            DocumentError: a data file is missing or malformed; the message names the file and the problem.
        """
        knowledge_dir = Path(knowledge_dir)
        # Validate every file before the (slow) embedding, so a typo fails at once.
        data = read_data(knowledge_dir)
        texts, labels = data["exemplars"]
        ordinary = [t for t in _ordinary_messages(knowledge_dir) if t not in set(texts)]
        texts, labels = texts + ordinary, labels + ["harmless"] * len(ordinary)
        vectors, w, b = _embedded_exemplars(texts, labels, embedder, data["thresholds"], cache_dir)
        return cls(
            patterns=data["patterns"],
            exemplar_vectors=vectors,
            exemplar_labels=labels,
            classifier=(w, b),
            thresholds=data["thresholds"],
            helplines=data["helplines"],
            numbers=data["numbers"],
            embedder=embedder,
        )

    # -- recognition

    def check(self, text: str, role: str | None = None, query_vec: np.ndarray | None = None) -> SafetyResult:
        """Is this message from someone in danger, which situation, and who is writing?

        Args:
            text: the raw message.
            role: the role the user chose (parent|pupil|staff|new_teacher) or None; cues in the text win.
            query_vec: `embedder.embed_query(text)` if the caller has it already (saves the embedding time).
        """
        folded = fold(text or "")
        writer = self.writer(folded, role, folded=True)
        if not folded.strip():
            return SafetyResult(False, None, writer, 0.0)

        masked = folded
        for pattern in self._patterns["masks"]:
            masked = pattern.regex.sub(" ", masked)
        was_masked = masked != folded
        # Past AND procedural: a question about handling an old case, not a cry for help now.
        damped = any(p.regex.search(folded) for p in self._patterns["past"]) and any(
            p.regex.search(folded) for p in self._patterns["procedural"]
        )

        weak: set[str] = set()
        for pattern in self._patterns["categories"]:
            if damped:
                break  # a question about an old case: only the embedding side (with its penalty) may decide
            if pattern.regex.search(masked):
                if not pattern.weak:
                    # A strong pattern decides alone: no need to embed or compare (saves ~1 ms, or the whole
                    # embedding when the caller passed no vector).
                    return SafetyResult(True, pattern.label, writer, 1.0)
                weak.add(pattern.label)

        if query_vec is None:
            query_vec = self._embedder.embed_query(text)
        query_vec = np.asarray(query_vec, dtype=np.float32)
        # How crisis-like the message is (the classifier's log-odds), and which situation it is closest to.
        logit = float(query_vec @ self._w + self._b)
        threshold = self._t["urgent_at"]
        threshold -= self._t["weak_bonus"] if weak else 0.0
        threshold += self._t["mask_penalty"] if was_masked else 0.0
        threshold += self._t["damp_penalty"] if damped else 0.0
        if logit < threshold:
            return SafetyResult(False, None, writer, round(logit, 3))
        sims = self._vectors @ query_vec
        k = int(self._t["top_k"])
        # With no pattern, the nearest exemplars must agree: below `sure_at`, harmless neighbours that are closer at
        # all win (a short statement far from everything, "my son is in a wheelchair", can fall just on the crisis
        # side); at or above it, only ones closer by `clearly_harmless` do ("en elev fortalte at hun blir plaget på
        # bussen" shares its opening with many crisis exemplars and lies next to a harmless one).
        agree = int(self._t["neighbours"])
        if agree and not weak:
            crisis, harmless = sims[self._crisis_rows], sims[self._rows["harmless"]]
            closer = _top_mean(harmless, agree) - _top_mean(crisis, agree)
            if closer > (0.0 if logit < self._t["sure_at"] else self._t["clearly_harmless"]):
                return SafetyResult(False, None, writer, round(logit, 3))
        # A weak pattern names the situation when there is one ("en byrde for alle" points at suicide even when
        # the nearest exemplars are about home); otherwise the nearest exemplars do.
        candidates = [c for c in CATEGORIES if c in weak] or list(CATEGORIES)
        scores = {c: _top_mean(sims[self._rows[c]], k) for c in candidates}
        return SafetyResult(True, max(scores, key=scores.get), writer, round(logit, 3))

    def writer(self, text: str, role: str | None = None, *, folded: bool = False) -> str:
        """Who wrote this: the first writer cue in the text, else the chosen role, else a pupil."""
        text = text if folded else fold(text)
        for cue in self._patterns["writers"]:
            if cue.regex.search(text):
                return cue.label
        return ROLE_TO_WRITER.get(role or "", DEFAULT_WRITER)

    # -- help numbers

    def help_lines(self, category: str | None, writer: str, now: datetime | None = None) -> list[Helpline]:
        """The numbers to show for this situation and writer at this moment, in order.

        Drops lines closed at `now` (Oslo time) and adults-only lines for pupils, keeps at most `max_numbers`,
        and makes sure at least one line open day and night is shown (a limited-hours line is never alone).
        """
        writer = writer if writer in WRITERS else DEFAULT_WRITER
        wanted = self._numbers["situations"][category][writer] if category else self._numbers["general"][writer]
        local = _local(now)
        shown = [
            line
            for line in (self.helplines[number] for number in wanted)
            if line.is_open(local) and not (writer == "pupil" and (line.min_age or 0) >= 18)
        ][: self._numbers["max"]]
        if not any(line.always_open for line in shown):
            fallback = next(self.helplines[n] for n in wanted if self.helplines[n].always_open)
            shown = [fallback, *shown][: self._numbers["max"]]
        return shown

    # -- replies

    def reply(self, result: SafetyResult, lang: str, catalog: Catalog, now: datetime | None = None) -> SafetyReply:
        """The warm, brief help-first reply for this writer and situation, in nb, nn or en."""
        if not result.urgent or result.category is None:
            return self.general_help(result.writer, lang, catalog, now)
        writer = result.writer if result.writer in WRITERS else DEFAULT_WRITER
        category = result.category
        lines = self.help_lines(category, writer, now)
        group = self._numbers["reply_groups"][category]
        # First what to do now, then comfort (or, for staff, their duties), then the numbers, then the way on.
        parts = [
            catalog.get(f"safety.lead.{category}.{writer}", lang),
            catalog.get(f"safety.support.{writer}.{group}", lang),
            self._number_block(lines, lang, catalog, now),
            catalog.get(f"safety.after.{writer}", lang),
        ]
        return SafetyReply("\n\n".join(p for p in parts if p), [line.as_help(lang) for line in lines])

    def general_help(
        self, writer: str, lang: str, catalog: Catalog, now: datetime | None = None
    ) -> SafetyReply:
        """For the "Er noen i fare nå?" button: the numbers for anyone in danger, worded for the writer."""
        writer = writer if writer in WRITERS else DEFAULT_WRITER
        lines = self.help_lines(None, writer, now)
        parts = [
            catalog.get(f"safety.general.{writer}", lang),
            self._number_block(lines, lang, catalog, now),
            catalog.get("safety.general.tell_more", lang),
        ]
        return SafetyReply("\n\n".join(parts), [line.as_help(lang) for line in lines])

    def _number_block(self, lines: list[Helpline], lang: str, catalog: Catalog, now: datetime | None) -> str:
        local = _local(now)
        rows = [catalog.get("safety.numbers_intro", lang)]
        for line in lines:
            if line.emergency:
                note = ""  # everyone knows 112/113 are free and always answered; keep the screen short
            elif not line.always_open:
                closes = line.closes_at(local)
                note = catalog.get("safety.note.open_until", lang, until=closes.strftime("%H:%M")) if closes else ""
            elif line.free:
                note = catalog.get("safety.note.free_always", lang)
            else:
                note = catalog.get("safety.note.always_paid", lang)
            rows.append(catalog.get("safety.number_line", lang, number=line.number, name=line.name(lang), note=note))
        return "\n".join(row.rstrip() for row in rows)


def _top_mean(values: np.ndarray, k: int) -> float:
    """Mean of the k largest values: one lucky exemplar counts less than two that agree."""
    if values.size == 0:
        return -1.0
    k = min(k, values.size)
    return float(np.partition(values, -k)[-k:].mean())


def _local(now: datetime | None) -> datetime:
    """Norwegian local time; a naive datetime is taken to be Norwegian local time already."""
    if now is None:
        return datetime.now(LOCAL_TZ)
    return now if now.tzinfo is None else now.astimezone(LOCAL_TZ)
