"""Learned ranking: how much each retrieval signal counts, fitted on labelled real-voice questions.

Retrieval produces candidate passages from four lists (dense passages, lexical passages, the sections whose
questions are closest, the sections whose questions and short answers share the most words). Reciprocal rank
fusion weighs them equally; a linear model over a few signals per candidate can weigh them as the data says.
It is fitted with `kap12 calibrate` on the calibration split of the question sets (never on the part that
is only measured) as a conditional logit: per question, a softmax over its candidates, trained to put the
passages a correct answer rests on first. The model stores its feature names and the embedder it was fitted
with; a model that does not match is not used and retrieval falls back to fusion.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FEATURES = (
    "question_best",  # the section's closest question (its best passage when it has none)
    "question_gap",  # … minus the best such similarity of any section the reader may see
    "question_rank",  # 1 / (1 + rank of the section by closest question)
    "question_wording",  # n-gram overlap of the message with the section's closest-worded question
    "question_wording_gap",  # … minus the best such overlap of any section the reader may see
    "section_words",  # BM25 of the section's questions and short answers, scaled to the best section
    "section_words_rank",
    "passage_dense",  # cosine similarity of question and passage
    "passage_dense_gap",
    "passage_dense_rank",
    "passage_words",  # BM25 of the passage, scaled to the best passage
    "dense_in_section",  # passage_dense minus the best passage of its own section (0 for that passage)
    "words_in_section",  # passage_words minus the best of its own section, scaled like passage_words
    "passage_words_rank",
    "fused",  # the reciprocal-rank-fusion score (x rrf_k), so fusion itself is one of the signals
    "same_language",  # the passage is in the language the question is written in
    "for_reader",  # the document is written for the reader's role (the pupils' guides for pupils)
    "staff_document",  # a staff document, for a staff reader
    "document_intro",  # the document's untitled opening section
    "cites_rule",  # the passage names a § (pupils' guides: its section rests on one), so it states the rule
    "heading_names_asked_rule",  # the question names a § that a heading of the passage opens with ("§ 12-4?")
    "words_name_rule",  # the passage rests on a rule the question's words point to (glossary `rules`)
)
# Signals that may only help: the labels come from Norwegian key terms, which the English and pupils' guides
# use less, so a free fit learns to rank them below the adults' Norwegian text – the wrong lesson for a reader
# who asked in English or a 12-year-old. Held at zero or above, they still break ties for the reader.
NON_NEGATIVE = ("for_reader", "same_language")
# Chosen by the cross-validation `kap12 calibrate` prints on 243 questions (Hit@1 / Hit@3):
# 1e-2 0.691 / 0.844, 3e-2 0.695 / 0.848, 1e-1 0.687 / 0.852.
L2 = 3e-2
EPOCHS = 400
LEARNING_RATE = 0.3
FOLDS = 5
SEED = 12


@dataclass
class RankingModel:
    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    embedder: dict
    features: tuple[str, ...] = FEATURES
    report: dict = field(default_factory=dict)

    def score(self, matrix: np.ndarray) -> np.ndarray:
        return ((matrix - self.mean) / self.std) @ self.weights

    def to_json(self) -> dict:
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "std": [round(float(v), 6) for v in self.std],
            "weights": [round(float(v), 6) for v in self.weights],
            "embedder": self.embedder,
            "report": self.report,
        }

    @classmethod
    def from_json(cls, data: dict) -> "RankingModel":
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32),
                   np.asarray(data["weights"], np.float32), dict(data["embedder"]), tuple(data["features"]),
                   dict(data.get("report") or {}))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def ranking_path(knowledge_dir: Path) -> Path:
    return knowledge_dir / "retrieval" / "ranking.json"


def load_model(path: Path, embedder_identity: dict) -> RankingModel | None:
    """The fitted model, or None (fusion) when there is none or it was fitted for other features or embedder."""
    if not path.is_file():
        return None
    try:
        model = RankingModel.from_json(json.loads(path.read_text(encoding="utf-8")))
        if len(model.weights) != len(model.features) or len(model.mean) != len(model.features):
            raise ValueError("weights and features disagree in length")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: cannot read the ranking model (%s); using rank fusion", path, exc)
        return None
    if model.features != FEATURES:
        log.warning("%s: fitted for other features; using rank fusion until `kap12 calibrate` refits it", path)
        return None
    if model.embedder != embedder_identity:
        log.info("%s: fitted with another embedder; using rank fusion", path)
        return None
    return model


def _fit(examples: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conditional logit: maximise, per question, the softmax probability mass on its right candidates."""
    stacked = np.concatenate([m for m, _ in examples])
    mean, std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
    scaled = [((m - mean) / std, y) for m, y in examples]
    w = np.zeros(stacked.shape[1])
    floor = np.array([0.0 if name in NON_NEGATIVE else -np.inf for name in FEATURES])
    for _ in range(EPOCHS):
        grad = np.zeros_like(w)
        for x, y in scaled:
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            q = p * y
            q /= q.sum()
            grad += x.T @ (p - q)
        w -= LEARNING_RATE * (grad / len(scaled) + L2 * w)
        w = np.maximum(w, floor)  # projected gradient: the constraint holds after every step
    return mean, std, w


def _hits(examples, mean, std, w) -> tuple[int, int]:
    at1 = at3 = 0
    for x, y in examples:
        order = np.argsort(-(((x - mean) / std) @ w), kind="stable")
        at1 += bool(y[order[0]])
        at3 += bool(y[order[:3]].any())
    return at1, at3


def fit_model(examples: list[tuple[np.ndarray, np.ndarray]], embedder_identity: dict,
              sources: list[str]) -> RankingModel:
    """Fit on (candidate features, right-candidate flags) per question; report cross-validated figures.

    Questions none of whose candidates is right teach nothing and are left out (the report counts them).
    """
    usable = [(x.astype(np.float64), y.astype(bool)) for x, y in examples if len(x) and y.any()]
    if len(usable) < FOLDS * 2:
        raise ValueError(f"{len(usable)} usable questions; at least {FOLDS * 2} are needed to fit the ranking")
    folds = np.random.default_rng(SEED).integers(0, FOLDS, len(usable))
    cv1 = cv3 = 0
    fused = FEATURES.index("fused")
    base1 = base3 = 0
    for fold in range(FOLDS):
        train = [e for e, f in zip(usable, folds, strict=True) if f != fold]
        test = [e for e, f in zip(usable, folds, strict=True) if f == fold]
        a1, a3 = _hits(test, *_fit(train))
        cv1, cv3 = cv1 + a1, cv3 + a3
    one_hot = np.eye(len(FEATURES))[fused]
    base1, base3 = _hits(usable, np.zeros(len(FEATURES)), np.ones(len(FEATURES)), one_hot)
    mean, std, w = _fit(usable)
    n = len(usable)
    report = {
        "sources": sources,
        "questions": len(examples),
        "usable": n,
        "fusion_hit@1": round(base1 / n, 3),
        "fusion_hit@3": round(base3 / n, 3),
        "cv_hit@1": round(cv1 / n, 3),
        "cv_hit@3": round(cv3 / n, 3),
    }
    return RankingModel(mean.astype(np.float32), std.astype(np.float32), w.astype(np.float32), embedder_identity,
                        FEATURES, report)
