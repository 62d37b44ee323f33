"""Evaluation of the safety check against a hand-written set (eval/safety.yaml).

Recall counts a crisis message as caught only if it is flagged urgent AND the reply shows at least one number
from the item's `numbers_ok`, both at night (03:00) and in the afternoon (15:00) on a weekday, since the numbers
shown depend on the hour. A false alarm is an ordinary message flagged urgent. Figures are broken down per
split (calibrate = used for tuning, measure = held out), language and writer.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

import yaml

from bot.errors import DocumentError
from bot.safety import CATEGORIES, WRITERS, SafetyCheck

# A Wednesday: one moment when every line is open, one when the limited-hours lines are closed.
EVAL_MOMENTS = (datetime(2026, 1, 14, 3, 0), datetime(2026, 1, 14, 15, 0))
REQUIRED = ("id", "text", "lang", "writer", "urgent")


def load_safety_set(path: Path) -> list[dict]:
    """Read and validate an evaluation set; raises DocumentError naming the file and the bad item."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DocumentError(path, f"cannot read the evaluation set: {exc}") from exc
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise DocumentError(path, "expected 'items:' with a list of messages")
    seen = set()
    for n, item in enumerate(items):
        where = f"item {n + 1}" + (f" ({item.get('id')})" if isinstance(item, dict) and item.get("id") else "")
        if not isinstance(item, dict) or any(key not in item for key in REQUIRED):
            raise DocumentError(path, f"{where}: needs {', '.join(REQUIRED)}")
        if item["id"] in seen:
            raise DocumentError(path, f"{where}: the id is used twice")
        seen.add(item["id"])
        if item["writer"] not in WRITERS:
            raise DocumentError(path, f"{where}: writer must be one of {', '.join(WRITERS)}")
        if item["urgent"] and (item.get("category") not in CATEGORIES or not item.get("numbers_ok")):
            raise DocumentError(path, f"{where}: an urgent item needs a category and numbers_ok")
        item.setdefault("split", "calibrate")
        item.setdefault("numbers_ok", [])
        item.setdefault("role", None)
    return items


def evaluate_safety(check: SafetyCheck, items: list[dict], moments=EVAL_MOMENTS) -> dict:
    """Run every item through `check` and the number choice; returns figures and the misses.

    Returns:
        {"overall": stats, "by_split": {split: stats}, "by_lang": {...}, "by_writer": {...},
         "misses": [{"id", "split", "lang", "writer", "urgent", "got_urgent", "category", "got_category",
                     "got_writer", "numbers", "score"}]}
        where stats = {"crisis", "caught", "recall", "ordinary", "false_alarms", "false_alarm_rate",
                       "category_right", "writer_right"}.
    """
    groups: dict[tuple[str, str], dict] = defaultdict(_empty)
    misses = []
    for item in items:
        result = check.check(item["text"], role=item.get("role"))
        numbers_right = True
        shown: list[str] = []
        if item["urgent"] and result.urgent:
            for moment in moments:
                now_shown = [line.number for line in check.help_lines(result.category, result.writer, moment)]
                shown.append(" ".join(now_shown))
                numbers_right &= bool(set(now_shown) & set(item["numbers_ok"]))
        keys = [("overall", "all"), ("split", item["split"]), ("lang", item["lang"]), ("writer", item["writer"])]
        for key in keys:
            stats = groups[key]
            if item["urgent"]:
                stats["crisis"] += 1
                caught = result.urgent and numbers_right
                stats["caught"] += caught
                stats["category_right"] += result.urgent and result.category == item.get("category")
                # Who wrote it only matters (and is only knowable) for crisis messages.
                stats["writer_right"] += result.writer == item["writer"]
            else:
                stats["ordinary"] += 1
                stats["false_alarms"] += result.urgent
        if result.urgent != item["urgent"] or (item["urgent"] and not numbers_right):
            misses.append(
                {
                    "id": item["id"],
                    "split": item["split"],
                    "lang": item["lang"],
                    "writer": item["writer"],
                    "urgent": item["urgent"],
                    "got_urgent": result.urgent,
                    "category": item.get("category"),
                    "got_category": result.category,
                    "got_writer": result.writer,
                    "numbers": shown,
                    "score": result.score,
                }
            )
    out: dict = {"by_split": {}, "by_lang": {}, "by_writer": {}, "misses": misses}
    for (kind, name), stats in sorted(groups.items()):
        _finish(stats)
        if kind == "overall":
            out["overall"] = stats
        else:
            out[f"by_{kind}"][name] = stats
    return out


def _empty() -> dict:
    return {"crisis": 0, "caught": 0, "ordinary": 0, "false_alarms": 0, "category_right": 0, "writer_right": 0}


def _finish(stats: dict) -> None:
    stats["recall"] = round(stats["caught"] / stats["crisis"], 3) if stats["crisis"] else None
    stats["false_alarm_rate"] = round(stats["false_alarms"] / stats["ordinary"], 3) if stats["ordinary"] else None


def format_safety_report(report: dict, show_misses: str | None = "calibrate") -> str:
    """A plain-text table. Misses are listed for `show_misses` ("calibrate", "all" or None) only, so tuning never
    looks at failures of the held-out `measure` split."""

    def row(name: str, s: dict) -> str:
        recall = "  -  " if s["recall"] is None else f"{s['recall']:.3f}"
        rate = "  -  " if s["false_alarm_rate"] is None else f"{s['false_alarm_rate']:.3f}"
        return (
            f"{name:<12} crisis {s['caught']:>3}/{s['crisis']:<3} recall {recall}   "
            f"false alarms {s['false_alarms']:>2}/{s['ordinary']:<3} ({rate})"
        )

    lines = ["Safety check: recall = urgent AND a right number for the writer (at 03:00 and 15:00)", ""]
    lines.append(row("overall", report["overall"]))
    for title, key in (("per split", "by_split"), ("per language", "by_lang"), ("per writer", "by_writer")):
        lines += ["", title + ":"]
        lines += [row(name, stats) for name, stats in report[key].items()]
    o = report["overall"]
    lines += [
        "",
        f"category right on caught crisis messages: {o['category_right']}/{o['crisis']}; "
        f"writer right on crisis messages: {o['writer_right']}/{o['crisis']}",
    ]
    if show_misses:
        shown = [m for m in report["misses"] if show_misses == "all" or m["split"] == show_misses]
        hidden = len(report["misses"]) - len(shown)
        lines += ["", f"misses ({show_misses}):" if shown else f"no misses ({show_misses})"]
        for m in shown:
            kind = "missed" if m["urgent"] and not m["got_urgent"] else (
                "false alarm" if not m["urgent"] else "wrong numbers")
            lines.append(
                f"  {m['id']} [{m['lang']}/{m['writer']}] {kind}: expected {m['category']}, got {m['got_category']} "
                f"as {m['got_writer']} (score {m['score']}) {' | '.join(m['numbers'])}".rstrip()
            )
        if hidden:
            lines.append(f"  ({hidden} in other splits not shown)")
    return "\n".join(lines)
