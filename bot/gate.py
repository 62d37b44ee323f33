"""The scope gate: is a message a question about the school environment, something off-topic, or chat?

Trained at index time from data, never fitted by hand: the sections' questions are in scope, the off-topic
school questions (knowledge/scope/off-topic*.yaml) are out of scope, the conversation phrases
(knowledge/scope/conversation.yaml) are chat, and real-voice questions labelled in or out
(knowledge/scope/calibration.yaml, in-scope-voices.yaml) teach it how people actually write. A small
multinomial logistic regression (numpy) reads the message's embedding plus a few similarity features (closest
in-scope question, passage, off-topic question and chat phrase). Its in-scope threshold is chosen by five-fold
cross-validation on the real-voice questions (at most 2 % of in-scope ones refused, counting what users get: a
message that tells of someone being hurt is never refused) and recorded with the figures it gave, so
`kap12 index` can report them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.datafiles import read_yaml_mapping
from bot.errors import DocumentError
from bot.lexical import normalise_query, terms_regex

CLASSES = ("in", "out", "chat")
FOLDS = 5
MAX_FALSE_REFUSALS = 0.02  # of real-voice in-scope questions (out of fold), when choosing the threshold
VOICE_WEIGHT = 3.0  # a real-voice question counts more than a section's own question or a listed phrase
# Chosen by the index-time cross-validation on 590 real voices (off-topic refused at ≤ 2 % false refusals):
# 1e-2 77.6 %, 3e-2 81.6 %, 1e-1 81.6 %, 3e-1 59.2 %.
L2 = 3e-2
EPOCHS = 400
LEARNING_RATE = 0.5
SEED = 12


@dataclass
class ScopeData:
    """Off-topic questions (with their topic and where they belong) and chat phrases (with their intent)."""

    texts: list[str]
    kinds: list[str]  # "out" | "chat"
    labels: list[str]  # off-topic topic id, or chat intent
    where: list[str]  # for off-topic: school | kommune | ppt | …; "" for chat
    voices: list[str] = field(default_factory=list)  # real-voice questions …
    voice_in_scope: list[bool] = field(default_factory=list)  # … and whether each is in scope
    words: list[str] = field(default_factory=list)  # words that name an off-topic subject ("standpunktkarakter")
    # intent -> words one of which a message must use to be read as that intent when it is not a listed phrase
    cues: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, knowledge_dir: Path) -> "ScopeData":
        texts, kinds, labels, where, words = [], [], [], [], []
        for path in sorted((knowledge_dir / "scope").glob("off-topic*.yaml")):
            for topic in read_yaml_mapping(path, required=False).get("topics") or []:
                if not isinstance(topic, dict) or not topic.get("id") or not isinstance(topic.get("questions"), list):
                    raise DocumentError(path, "each topic needs an id and a list of questions")
                topic_words = topic.get("words") or []
                if not isinstance(topic_words, list) or not all(str(w).strip() for w in topic_words):
                    raise DocumentError(path, f"topic '{topic['id']}': 'words' must be a list of words")
                words += [str(w).strip().casefold() for w in topic_words]
                for question in topic["questions"]:
                    texts.append(str(question))
                    kinds.append("out")
                    labels.append(str(topic["id"]))
                    where.append(str(topic.get("where") or "other"))
        path = knowledge_dir / "scope" / "conversation.yaml"
        conversation = read_yaml_mapping(path, required=False)
        intents = conversation.get("intents") or {}
        if not isinstance(intents, dict):
            raise DocumentError(path, "'intents' must map an intent to a list of phrases")
        cues = conversation.get("cues") or {}
        if not isinstance(cues, dict) or not all(isinstance(v, list) and v and k in intents for k, v in cues.items()):
            raise DocumentError(path, "'cues' must map an intent listed under 'intents' to a list of words")
        for intent, phrases in intents.items():
            if not isinstance(phrases, list):
                raise DocumentError(path, f"intent '{intent}' must be a list of phrases")
            for phrase in phrases:
                texts.append(str(phrase))
                kinds.append("chat")
                labels.append(str(intent))
                where.append("")
        voices, voice_in_scope = [], []
        for name in ("calibration.yaml", "in-scope-voices.yaml"):
            path = knowledge_dir / "scope" / name
            for item in read_yaml_mapping(path, required=False).get("questions") or []:
                if not isinstance(item, dict) or not isinstance(item.get("in_scope"), bool) or not item.get("text"):
                    raise DocumentError(path, "each question needs a text and in_scope: true or false")
                voices.append(str(item["text"]))
                voice_in_scope.append(item["in_scope"])
        return cls(texts, kinds, labels, where, voices, voice_in_scope, list(dict.fromkeys(words)),
                   {str(k): [str(w).strip().casefold() for w in v] for k, v in cues.items()})




def max_similarity(vectors: np.ndarray, against: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
    """Each vector's highest similarity in `against`; leave_one_out skips itself (same set, same order)."""
    if len(vectors) == 0 or len(against) == 0:
        return np.zeros(len(vectors), np.float32)
    sims = vectors @ against.T
    if leave_one_out:
        np.fill_diagonal(sims, -1.0)
    return sims.max(axis=1)


def similarity_features(q: np.ndarray, p: np.ndarray, o: np.ndarray, c: np.ndarray,
                        named: np.ndarray | None = None) -> np.ndarray:
    """Per message: closeness to in-scope questions, passages, off-topic questions, chat, and the gaps; with
    `named`, whether it names an off-topic subject (`TopicWords`)."""
    columns = [q, p, o, c, q - o, q - c, np.maximum(q, p) - np.maximum(o, c)]
    return np.stack(columns + ([named] if named is not None else []), axis=1).astype(np.float32)


class TopicWords:
    """Words that name an off-topic subject (the `words` of knowledge/scope/off-topic*.yaml topics): "karakter",
    "permisjon", "IOP". The 4-bit embedding puts "skolen følger ikke IOP-en" next to "skolen følger ikke planen";
    the word tells them apart. Only a gate feature: the gate learns from data how much it counts, so in-scope
    voices that use such a word ("fikk dårligere karakter etter at jeg sa fra") teach it where it does not."""

    def __init__(self, words: list[str]):
        self._pattern = terms_regex(words) if words else None  # as the glossary matches: word starts

    def __bool__(self) -> bool:
        return self._pattern is not None

    def named(self, texts: list[str]) -> np.ndarray:
        """1.0 for each text that names an off-topic subject, else 0.0."""
        if self._pattern is None:
            return np.zeros(len(texts), np.float32)
        return np.array([1.0 if self._pattern.search(normalise_query(t)) else 0.0 for t in texts], np.float32)


class Gate:
    """A fitted gate: standardisation, weights and the calibrated in-scope threshold."""

    def __init__(self, mean, std, weights, bias, threshold: float, report: dict):
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.weights, self.bias = np.asarray(weights, np.float32), np.asarray(bias, np.float32)
        self.threshold = float(threshold)
        self.report = report

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        x = (np.atleast_2d(features) - self.mean) / self.std
        logits = x @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def decide(self, features: np.ndarray) -> tuple[str, np.ndarray]:
        """'in' when P(in) reaches the threshold; otherwise the likelier of 'out' and 'chat'."""
        probs = self.probabilities(features)[0]
        if probs[0] >= self.threshold:
            return "in", probs
        return ("out" if probs[1] >= probs[2] else "chat"), probs

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "weights": self.weights.tolist(),
                "bias": self.bias.tolist(), "threshold": self.threshold, "report": self.report}

    @classmethod
    def from_json(cls, data: dict) -> "Gate":
        return cls(data["mean"], data["std"], data["weights"], data["bias"], data["threshold"], data["report"])


def _fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray):
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = (x - mean) / std
    n, d = xs.shape
    k = len(CLASSES)
    onehot = np.eye(k, dtype=np.float32)[y]
    # Balanced classes: chat phrases are few and short, off-topic questions fewer than in-scope ones.
    counts = np.bincount(y, minlength=k).astype(np.float32)
    sample_weight = ((n / (k * np.maximum(counts, 1)))[y] * weight)[:, None]
    w, b = np.zeros((d, k), np.float32), np.zeros(k, np.float32)
    for _ in range(EPOCHS):
        logits = xs @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) * sample_weight / n
        w -= LEARNING_RATE * (xs.T @ grad + L2 * w)
        b -= LEARNING_RATE * grad.sum(axis=0)
    return mean, std, w, b


def train_gate(embeddings: np.ndarray, features: np.ndarray, labels: list[str], voice: np.ndarray,
               never_refused: np.ndarray | None = None) -> Gate:
    """Fit, choose the threshold on out-of-fold predictions for the real-voice questions, refit on everything.

    Args:
        voice: True for the rows that are real-voice questions (they alone calibrate the threshold).
        never_refused: True for the rows the bot answers whatever the gate says (someone who tells of being hurt
            gets at least the short answer and the walkthroughs): the threshold is calibrated on what users get,
            so such a question does not count as a false refusal.
    """
    x = np.concatenate([embeddings, features], axis=1).astype(np.float32)
    y = np.array([CLASSES.index(label) for label in labels])
    weight = np.where(voice, VOICE_WEIGHT, 1.0).astype(np.float32)
    voice_rows = np.flatnonzero(voice)
    folds = np.random.default_rng(SEED).integers(0, FOLDS, len(voice_rows))
    p_in = np.zeros(len(voice_rows), np.float32)
    for fold in range(FOLDS if len(voice_rows) >= FOLDS else 0):
        test = voice_rows[folds == fold]
        train = np.setdiff1d(np.arange(len(y)), test)
        mean, std, w, b = _fit(x[train], y[train], weight[train])
        p_in[folds == fold] = Gate(mean, std, w, b, 0.5, {}).probabilities(x[test])[:, 0]
    exempt = np.zeros(len(y), bool) if never_refused is None else np.asarray(never_refused, bool)
    in_voice = y[voice_rows] == 0
    refusable = in_voice & ~exempt[voice_rows]
    if in_voice.any():
        # The highest threshold that refuses at most MAX_FALSE_REFUSALS of the in-scope real-voice questions,
        # counting only those the gate alone can refuse.
        allowed = int(np.floor(MAX_FALSE_REFUSALS * in_voice.sum()))
        scores = np.sort(p_in[refusable])
        threshold = float(scores[allowed]) - 1e-6 if allowed < len(scores) else 0.95
    else:
        threshold = 0.5
    threshold = min(max(threshold, 0.01), 0.95)
    refused = (p_in < threshold) & ~exempt[voice_rows]
    report = {
        "train": int(len(y)),
        "real_voice": int(len(voice_rows)),
        "threshold": round(threshold, 4),
        "cv_false_refusals": _share(refused[in_voice]),
        "cv_out_of_scope_refused": _share(refused[y[voice_rows] == 1]),
    }
    mean, std, w, b = _fit(x, y, weight)
    return Gate(mean, std, w, b, threshold, report)


def _share(flags: np.ndarray) -> float | None:
    return round(float(flags.mean()), 3) if len(flags) else None
