"""Measure retrieval and refusal on a question set (the format of shared/eval/questions-dev.yaml).

For an answerable question, a hit at rank r is the first retrieved passage (in the role's audience) that
carries one of the expected § references (when any are expected) and contains one of the expected terms.
Ranks are taken from the retrieval list, so Hit@k and MRR@10 measure retrieval even when the answer
step refuses; refusals are counted on their own (refusal accuracy on out-of-scope questions, false
refusals on answerable ones).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import yaml

from bot.answer import Answerer, clean_question
from bot.errors import Kap12Error

LANGUAGE_GROUPS = ("nb", "nn", "en")
AUDIENCES = ("parent", "pupil", "staff", "new_teacher")
ROLE_FOR_AUDIENCE = {"parent": "parent", "pupil": "pupil", "staff": "staff", "new_teacher": "new_teacher"}
_VARIANT = re.compile(r"([a-zæøå][a-zæøå ]*?)~([a-zæøå][a-zæøå ]*)")


def load_questions(path: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """The items and the term variants the file header allows (pairs like 'snarest~snarast')."""
    try:
        text = path.read_text(encoding="utf-8")
        items = yaml.safe_load(text) or []
    except (OSError, yaml.YAMLError) as exc:
        raise Kap12Error(f"{path}: cannot read the question set ({exc})") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) and "question" in i for i in items):
        raise Kap12Error(f"{path}: expected a list of items with at least 'question'")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    return items, [(a.strip(), b.strip()) for a, b in _VARIANT.findall(header)]


def _term_forms(term: str, variants: list[tuple[str, str]]) -> set[str]:
    forms = {term.lower()}
    for a, b in variants:
        if a in forms or b in forms:
            forms |= {a, b}
    return forms


def is_hit(passage, expect_refs: list[str], expect_terms: list[str], variants) -> bool:
    text = f"{passage.section}\n{passage.text}".lower()
    if expect_refs and not set(expect_refs) & set(passage.refs):
        return False
    if not expect_terms:
        return True
    return any(form in text for term in expect_terms for form in _term_forms(term, variants))


def evaluate(answerer: Answerer, items: list[dict], variants, k: int = 3) -> dict:
    """Hit@1, Hit@k, MRR@10, the answer's lead and refusal figures, overall, per language group and per audience.

    Retrieval is measured without the safety check (its own set measures it: `kap12 safety-eval`); a
    chat reply or a decline counts as a refusal, a vague in-scope reply as an answer.
    """
    rows = []
    for item in items:
        role = ROLE_FOR_AUDIENCE.get(item.get("audience", "parent"), "parent")
        lang = item.get("lang", "nb")
        answer = answerer.ask(item["question"], role, lang if lang in LANGUAGE_GROUPS else "en", check_safety=False)
        hits = answer.hits
        rank = next(
            (
                r
                for r, h in enumerate(hits, start=1)
                if is_hit(h.passage, item.get("expect_refs") or [], item.get("expect_terms") or [], variants)
            ),
            None,
        )
        expected = (item.get("expect_refs") or [], item.get("expect_terms") or [], variants)
        lead = answer.lead is not None and is_hit(answer.lead.passage, *expected)
        # a right section one tap away: the lead, or a section the answer offers as a button
        reach = lead or any(is_hit(other.hit.passage, *expected) for other in answer.see_also)
        rows.append(
            {
                "id": item.get("id"),
                "group": lang if lang in LANGUAGE_GROUPS else "other",
                "audience": item.get("audience", "parent"),
                "kind": answer.kind,
                "answerable": bool(item.get("answerable", True)),
                "answered": answer.answered,
                "rank": rank,
                "lead": lead,
                "reach": reach,
                "best_dense": max((h.dense for h in hits[:3]), default=0.0),
            }
        )
    report = {"k": k, "overall": _summarise(rows, k), "groups": {}, "items": rows}
    for group in (*LANGUAGE_GROUPS, "other"):
        subset = [r for r in rows if r["group"] == group]
        if subset:
            report["groups"][group] = _summarise(subset, k)
    for audience in AUDIENCES:
        subset = [r for r in rows if r["audience"] == audience]
        if subset:
            report["groups"][audience] = _summarise(subset, k)
    return report


def near_duplicates(answerer: Answerer, items: list[dict], threshold: float) -> dict[str, float]:
    """Items whose question is nearly the same as one of the knowledge base's own section questions (cosine at
    or above threshold), with that similarity: a set measured on them partly measures recall of those questions.
    """
    vectors = answerer.retriever.index.question_vectors
    if vectors is None or not len(vectors):
        return {}
    near = {}
    for item in items:
        best = float((vectors @ answerer.retriever.embed_query(item["question"])).max())
        if best >= threshold:
            near[str(item.get("id"))] = round(best, 3)
    return near


def select(items: list[dict], split: str | None) -> list[dict]:
    """Items of one split ('calibrate' or 'measure'); all items when split is None or the set has none."""
    if not split:
        return items
    return [item for item in items if item.get("split", split) == split]


def _summarise(rows: list[dict], k: int) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    n = len(answerable)

    def share(count: int, total: int) -> float | None:
        return round(count / total, 3) if total else None

    return {
        "questions": len(rows),
        "answerable": n,
        "hit@1": share(sum(1 for r in answerable if r["rank"] == 1), n),
        f"hit@{k}": share(sum(1 for r in answerable if r["rank"] and r["rank"] <= k), n),
        "mrr@10": round(sum(1 / r["rank"] for r in answerable if r["rank"]) / n, 3) if n else None,
        # what the reader sees first: the answer's lead after their own guide and language were put first
        "lead": share(sum(1 for r in answerable if r["lead"]), n),
        # … or one tap away, on a see-also button
        "reach": share(sum(1 for r in answerable if r.get("reach", r["lead"])), n),
        "refusal_accuracy": share(sum(1 for r in unanswerable if not r["answered"]), len(unanswerable)),
        "false_refusals": share(sum(1 for r in answerable if not r["answered"]), n),
    }


def format_report(report: dict) -> str:
    k = report["k"]
    cols = ("questions", "hit@1", f"hit@{k}", "mrr@10", "lead", "reach", "refusal_accuracy", "false_refusals")
    lines = [f"{'group':<12}" + "".join(f"{c:>17}" for c in cols)]
    for name, summary in [("overall", report["overall"]), *report["groups"].items()]:
        cells = "".join(f"{'-' if summary[c] is None else summary[c]:>17}" for c in cols)
        lines.append(f"{name:<12}{cells}")
    misses = [r["id"] for r in report["items"] if r["answerable"] and not (r["rank"] and r["rank"] <= k)]
    wrong_refusals = [r["id"] for r in report["items"] if r["answerable"] != r["answered"]]
    lines.append(f"misses at {k}: {', '.join(misses) or 'none'}")
    lines.append(f"refusal errors: {', '.join(wrong_refusals) or 'none'}")
    return "\n".join(lines)


def calibration_examples(answerer: Answerer, items: list[dict], variants) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per answerable question: its candidates' ranking features and which candidates a right answer rests on."""
    retriever = answerer.retriever
    examples = []
    for item in items:
        if not item.get("answerable", True):
            continue
        role = ROLE_FOR_AUDIENCE.get(item.get("audience", "parent"), "parent")
        query, _ = clean_question(item["question"])
        ids, matrix = retriever.candidate_features(query, role, retriever.embed_query(query))
        right = np.array([is_hit(retriever.index.passages[i], item.get("expect_refs") or [],
                                 item.get("expect_terms") or [], variants) for i in ids], dtype=bool)
        examples.append((matrix, right))
    return examples
