"""Grounded, extractive answers: the most relevant sentences of the best passages, each with its citation.

No text is generated: an answer only ever quotes the knowledge base. When the best evidence is too weak the
answer is a refusal that says whom to contact instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bot.chunk import LIST_ITEM, Passage, split_sentences
from bot.content import SAFETY_FILES, Content, load_catalog
from bot.datafiles import read_yaml_mapping
from bot.embed import Embedder, make_embedder
from bot.errors import DocumentError
from bot.i18n import Catalog
from bot.index import LoadedIndex, load_index
from bot.gate import TopicWords, similarity_features
from bot.lexical import Glossary, char_ngrams, normalise_query, terms_regex
from bot.noise import is_noise
from bot.ranking import load_model, ranking_path
from bot.replies import Citation
from bot.retrieve import AUDIENCES_FOR_ROLE, Hit, Retriever
from bot.roles import PUBLIC_ROLE, ROLE_INTENTS


def load_safety(settings, embedder, knowledge_dir: Path | None = None):
    """The safety check, when its data is shipped (knowledge/safety/); None without it (e.g. a bare test KB).

    Args:
        knowledge_dir: where to read the data (the content in service, `bot.content`); settings.knowledge_dir
            by default.
    """
    knowledge_dir = Path(knowledge_dir or settings.knowledge_dir)
    if not (knowledge_dir / "safety").is_dir():
        return None
    from bot.safety import SafetyCheck

    return SafetyCheck.load(knowledge_dir, embedder, cache_dir=settings.index_dir / "cache")

MAX_QUESTION_CHARS = 500  # longer questions are searched by their beginning and end: bounded work per message
QUESTION_TAIL_CHARS = 200  # …of which the end, where the question usually is
FOLLOW_UP_WEIGHT = 2.0  # a follow-up's vector counts twice its previous question's: it names what changed
SENTENCES_PER_PASSAGE = 2
NEW_SECTION_WITHIN = 5  # a follow-up's lead is the best hit among the first five not from the section just answered
FOLLOW_RULE_WITHIN = 10  # …or the best among all ten that rests on a rule the follow-up's own words name
# A cited passage must be about as close to the question as the best one; weaker ones add noise.
CITATION_MARGIN = 0.04
# Quotes sharing more than this share of their character n-grams (Jaccard) repeat each other.
REPEAT_OVERLAP = 0.5
# After an answer, other sections among the first hits are offered as buttons: when the lead is not what was
# asked, the right section is often second or third (Hit@3 is well above Hit@1), one tap away.
# Two buttons fit a phone screen. The window, chosen on the calibrate sets (a right section led or was offered,
# of 244): 3 hits 194, 4 199, 6 205, 8 206; with three buttons and 8 hits 211.
SEE_ALSO = 2
SEE_ALSO_WITHIN = 6
SEE_ALSO_TITLE_CHARS = 48  # a button label on a phone-sized screen
SAME_HEADING_OVERLAP = 0.6  # character n-gram Jaccard of two headings that read as the same
# Cosine of two sections' mean question vectors at which they answer the same question. Read off the closest pairs
# of sections from different documents (multilingual-e5-small): from 0.985 up they are one topic for a reader
# («Mobbeombudet» twice, «Hvor fort må skolen gjøre noe?» and «Hvor raskt: snarast …»), just below it «Hvem kan jeg
# si det til?» and «Melde fra til rektor» differ. On the calibrate sets the reach is unchanged (0.985: 4 of 238
# answers offer another button instead of a repeat).
SAME_TOPIC_AT = 0.985
NORWEGIAN_CHOICES = ("nynorsk_please", "norwegian_please")  # chat intents asking for Norwegian, nynorsk first
# Chat intents whose reply ends the talk or answers about the bot rather than the case: a message is read as one
# only when it lies this close to one of its phrases (users' misreads lay at 0.91–0.93, the phrases' own
# rewordings «jeg skjønner ikke», «tusen takk for hjelpen» at 0.95–0.98).
NEEDS_CLOSE_PHRASE = ("bye", "who_are_you", "not_understood", "simpler", "followup_meaning")
CLOSE_PHRASE_AT = 0.94
ROLE_STATEMENT_WORDS = 12  # «Hei, jeg er mamma til en gutt på 5. trinn.» states a role; a longer opening tells a story
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÆØÅ])|\s*\n+\s*")  # «5. trinn» does not end a sentence
_CLAUSE_END = re.compile(r"(?<=[,:;])\s+")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TAG = re.compile(r"<[^>]{0,200}>")
_MARKUP = re.compile(r"[*_`#>\[\]|~]+")
_REPEATS = re.compile(r"(.{1,4}?)\1{3,}", re.DOTALL)


@dataclass
class Answer:
    question: str
    answered: bool
    answer: str
    citations: list[Citation]
    suggested_flow: str | None
    role: str
    kind: str = "answer"  # answer | vague | urgent | chat | decline | refusal
    lang: str = "nb"  # the language the answer text is in
    intent: str | None = None  # chat: greeting, thanks, navigation_menu, … (knowledge/scope/conversation.yaml)
    where: str | None = None  # decline: where such a question belongs (school, kommune, ppt, …)
    section: str | None = None  # the section the answer leads with
    short: str | None = None  # that section's short answer
    urgent: bool = False
    help: list[dict] = field(default_factory=list)  # help numbers shown: [{"number", "name"}]
    category: str | None = None  # urgent: the kind of danger
    writer: str | None = None  # urgent: who the message reads as written by (pupil, parent or staff)
    # The ranked passages the answer (or refusal) was decided on; for evaluation, not part of the JSON.
    hits: list[Hit] = field(default_factory=list, repr=False, compare=False)
    # The hit the answer leads with, after the reader's own guide and language were put first; for evaluation.
    lead: Hit | None = field(default=None, repr=False, compare=False)
    # Other sections offered after the answer (see SEE_ALSO), best first.
    see_also: list["SeeAlso"] = field(default_factory=list, repr=False, compare=False)

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answered": self.answered,
            "answer": self.answer,
            "kind": self.kind,
            "citations": [c.to_json() for c in self.citations],
            "suggested_flow": self.suggested_flow,
            "role": self.role,
            "urgent": self.urgent,
            "help": list(self.help),
            "see_also": [{"section": other.key, "title": other.title} for other in self.see_also],
        }


@dataclass(frozen=True)
class SeeAlso:
    """Another section an answer offers: its key for the button, its heading for the label."""

    key: str
    title: str
    hit: Hit


_HEADING_REF = re.compile(r"\(§[^)]*\)")


def _same_topic(one, other) -> bool:
    """Two sections a reader would take for the same: one section, twins (the same short answer in bokmål), or
    headings that nearly match («Melde fra til rektor» and «Melde fra til rektor (§ 12-4)»)."""
    if one.key == other.key or (one.short or {}).get("nb") == (other.short or {}).get("nb"):
        return True
    heads = [set(char_ngrams(_HEADING_REF.sub(" ", r.path.split(" › ")[-1]))) for r in (one, other)]
    return len(heads[0] & heads[1]) / max(len(heads[0] | heads[1]), 1) >= SAME_HEADING_OVERLAP


def _section_topics(index) -> dict[str, np.ndarray]:
    """Per section with questions: the normalised mean of its question vectors, what it is asked about."""
    if index.question_vectors is None or index.question_section is None:
        return {}
    topics = {}
    for number, record in enumerate(index.sections):
        rows = index.question_vectors[index.question_section == number]
        if len(rows):
            mean = rows.mean(axis=0)
            topics[record.key] = mean / np.linalg.norm(mean)
    return topics


def section_token(key: str) -> str:
    """A short, stable token for a section key: button data must stay within 64 bytes, and keys are longer."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def short_title(path: str) -> str:
    """The section's own heading (the last part of its path), cut at a word to fit a button."""
    title = path.split(" › ")[-1].strip()
    if len(title) <= SEE_ALSO_TITLE_CHARS:
        return title
    return title[:SEE_ALSO_TITLE_CHARS - 1].rsplit(" ", 1)[0].rstrip(" ,:;–-(") + "…"


def clean_question(text: str) -> tuple[str, bool]:
    """Search text for a raw question: no control characters or markup; (text, was_truncated)."""
    text = _ANSI.sub(" ", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = _MARKUP.sub(" ", _TAG.sub(" ", text))
    text = _REPEATS.sub(r"\1\1\1", " ".join(text.split()))  # "&&&&…" or 😭🙏😭🙏… costs what "&&&" costs
    if len(text) > MAX_QUESTION_CHARS:
        # People tell the story first and ask last: search with the beginning and the end.
        head = text[:MAX_QUESTION_CHARS - QUESTION_TAIL_CHARS].rsplit(" ", 1)[0]
        tail = text[-QUESTION_TAIL_CHARS:].split(" ", 1)[-1]
        return f"{head} … {tail}", True
    return text, False


# A sentence that qualifies the one before it: it stays with it in every quote.
_CAVEAT = re.compile(r"ikke bekreftet|ikkje stadfest|ikke avklart|ikkje avklart|må sjekkes|sjekk det|not confirmed|"
                     r"not settled|check with|uncertain", re.I)
PLAIN_READERS = ("parent", "pupil")  # readers whose second quote is never a point our sources leave open
# Sentences that lean on the one before them; a quote must not start with one.
_LEANING = re.compile(r"^(den|det|dette|denne|disse|de|dei|han|hun|ho|slike|da|så|i tillegg|også|òg|dessuten|men|"
                      r"derfor|difor|likevel|it|this|these|they|that|in addition|also|but|however|therefore)\b", re.I)


def quotable_units(text: str) -> list[str]:
    """Sentences, except that a list item is one unit: its second sentence read alone ("For you if you are
    under 18 …") has lost what it is about (the help line named before it)."""
    units: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith(("-", "•")):  # a bullet, whole
            units.append(line)
        elif line:  # a numbered item keeps its number with its first sentence, which names the step
            units += split_sentences(line)
    return units


def join_quote(units: list[str]) -> str:
    """Quoted units as one block: sentences run on, a list item keeps its own line (on a phone a run of
    "- a - b - c" reads as one sentence)."""
    text = ""
    for unit in units:
        if text:
            text += "\n" if LIST_ITEM.match(unit) else " "
        text += unit
    return text


def pick_sentences(passage: Passage, query: str, limit: int = SENTENCES_PER_PASSAGE) -> list[str]:
    """The run of consecutive sentences that shares the most character n-grams with the question.

    Consecutive, because a quote read on its own must make sense: a run never starts with a sentence that
    leans on the one before ("Den …", "Dette …"), and a lead-in ending with ':' brings its list lines.
    """
    sentences = quotable_units(passage.text)
    if len(sentences) <= limit:
        return sentences
    query_grams = set(char_ngrams(query))

    def overlap(sentence: str) -> float:
        grams = set(char_ngrams(sentence))
        return len(grams & query_grams) / (len(grams) ** 0.5 or 1.0)

    scores = [overlap(s) for s in sentences]
    starts = [i for i in range(len(sentences) - limit + 1) if i == 0 or not _LEANING.match(sentences[i])]
    start = max(starts, key=lambda i: (sum(scores[i : i + limit]), -i))
    end = start + limit
    bullet = ("-", "•")
    while end < len(sentences) and (
        sentences[end - 1].endswith(":")
        or (sentences[end].startswith(bullet) and sentences[end - 1].startswith(bullet))
        or _CAVEAT.search(sentences[end])  # an unconfirmed rule never loses the sentence that says so
    ):
        end += 1
    return sentences[start:end]


def _heading_matches(heading: str, prefix: str) -> bool:
    """Prefix match that does not let "§ 12-1" match "§ 12-10"."""
    heading = heading.lower()
    return heading.startswith(prefix) and not heading[len(prefix) : len(prefix) + 1].isdigit()


def citation_for(n: int, passage: Passage, score: float = 0.0) -> Citation:
    return Citation(
        n=n,
        passage_id=passage.id,
        document=passage.doc_title,
        section=passage.section,
        refs=passage.refs,
        url=passage.url,
        updated=passage.updated,
        text=passage.text,
        score=score,
    )


class Router:
    """Suggests a walkthrough for questions that ask what to do (rules in knowledge/routing.yaml)."""

    def __init__(self, phrases: list[str], rules: list[dict], known_flows: set[str]):
        self.phrases = [p.lower() for p in phrases]
        self.rules = [r for r in rules if r["flow"] in known_flows]
        self.tools: list[tuple[str, list[str]]] = []  # (command, phrases that ask for it), from `tools`

    @classmethod
    def load(cls, knowledge_dir: Path) -> "Router":
        """The rules in knowledge/routing.yaml (none without the file); raises DocumentError naming it."""
        path = knowledge_dir / "routing.yaml"
        known = {p.stem for p in (knowledge_dir / "flows").glob("*.yaml")}
        data = read_yaml_mapping(path, required=False)
        phrases, rules = data.get("action_phrases") or [], data.get("flows") or []
        if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
            raise DocumentError(path, "'action_phrases' must be a list of text")
        if not isinstance(rules, list):
            raise DocumentError(path, "'flows' must be a list of rules {flow, roles: [...], refs: [...]}")
        for number, rule in enumerate(rules, start=1):
            if not (isinstance(rule, dict) and isinstance(rule.get("flow"), str)
                    and all(isinstance(rule.get(key), list) and all(isinstance(v, str) for v in rule[key])
                            for key in ("roles", "refs"))):
                raise DocumentError(path, f"rule {number} under 'flows' needs flow: <flow id>, roles: [...] and "
                                          "refs: [...] (lists of text)")
        router = cls(phrases, rules, known)
        tools = data.get("tools") or []
        if not isinstance(tools, list) or not all(
                isinstance(t, dict) and isinstance(t.get("command"), str) and isinstance(t.get("phrases"), list)
                and all(isinstance(p, str) for p in t["phrases"]) for t in tools):
            raise DocumentError(path, "'tools' must be a list of {command: <name>, phrases: [...]}")
        router.tools = [(t["command"], [" ".join(p.lower().split()) for p in t["phrases"]]) for t in tools]
        return router

    def tool(self, question: str) -> str | None:
        """The tool a message asks for in so many words («kan du skrive et brev til rektor?» is /brev), or None."""
        text = " ".join(question.lower().split())
        return next((command for command, phrases in self.tools if any(p in text for p in phrases)), None)

    def suggest(self, question: str, role: str, refs: list[str]) -> str | None:
        """The walkthrough for the first of `refs` (the lead citation's first) that a rule for the role names.

        Order matters: "my son is hit every day, what do I do?" leads with § 12-4 and gets the walkthrough for
        a child who is not safe, even when a later citation mentions Statsforvalteren (§ 12-6).
        """
        text = " ".join(question.lower().split())
        if not any(p in text for p in self.phrases):
            return None
        for ref in refs:
            for rule in self.rules:
                if role in rule["roles"] and ref in rule["refs"]:
                    return rule["flow"]
        return None


class Scope:
    """Topics outside chapter 12 (knowledge/scope.yaml), embedded once, to refuse off-topic questions.

    Embedding similarities between any two Norwegian school texts are high, so a fixed floor alone cannot
    tell "SFO fees" from "SFO staff's duty to act". Comparing the question's closeness to known off-topic
    phrases with its closeness to the best passage can.
    """

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors

    @classmethod
    def load(cls, path: Path, embedder: Embedder) -> "Scope":
        phrases = cls.read_phrases(path)
        return cls(embedder.embed_batch(phrases, "passage") if phrases else np.empty((0, embedder.dim), np.float32))

    @staticmethod
    def read_phrases(path: Path) -> list[str]:
        """The off-topic phrases of knowledge/scope.yaml (none without the file); raises DocumentError naming it."""
        phrases = read_yaml_mapping(path, required=False).get("out_of_scope") or []
        if not isinstance(phrases, list) or not all(isinstance(p, str | int | float) for p in phrases):
            raise DocumentError(path, "'out_of_scope' must be a list of phrases")
        return [str(p) for p in phrases]

    def closeness(self, query_vec: np.ndarray) -> float:
        """Similarity of the question to the nearest off-topic phrase (0 when there are none)."""
        return float((self.vectors @ query_vec).max()) if len(self.vectors) else 0.0


SAME_ROLE = "same as role"  # ask(writer_role=…) default
# Chat intents that continue the previous question: answered as vague questions on their own.
FOLLOW_UP_INTENTS = ("followup_what_if", "followup_meaning")
# A supporting quote must come from a passage about as close to the question as the best one.
SECOND_QUOTE_MARGIN = 0.03
# Readers whose own guide leads an answer when one of its passages is among the first few hits.
OWN_GUIDE_FIRST = ("pupil",)
OWN_GUIDE_WITHIN = 2
# Staff readers: a staff document leads instead of a parents' guide when it is among this many first hits.
STAFF_READERS = ("staff", "new_teacher")
STAFF_DOCUMENT_WITHIN = 3


def _first_that(among: list[Hit], wanted, hits: list[Hit]) -> list[Hit]:
    """The hits with the first of `among` that is `wanted` moved to the front; unchanged when there is none."""
    first = next((h for h in among if wanted(h)), None)
    return hits if first is None else [first] + [h for h in hits if h is not first]

class Answerer:
    """Answers questions from one loaded index. Build it with `from_settings`.

    Each question passes, in order: the safety check (help numbers first, when one is attached), the scope
    gate (in scope, chat, or off-topic, trained at index time; see bot/gate.py), then question-first retrieval.
    An answer leads with the best section's short answer in the user's language, then at most two quoted
    sentences with their citations.
    """

    def __init__(
        self,
        retriever: Retriever,
        catalog: Catalog,
        router: Router,
        scope: Scope,
        *,
        threshold: float,
        scope_margin: float = 0.0,
        scope_margin_unfamiliar: float = 0.0,
        max_citations: int = 3,
        safety=None,
    ):
        if not 0 <= threshold <= 1:
            raise ValueError("answer threshold must be between 0 and 1 (KAP12_ANSWER_THRESHOLD)")
        self.retriever = retriever
        self.index: LoadedIndex = retriever.index
        self.catalog = catalog
        self.router = router
        self.scope = scope
        self.threshold = threshold
        self.scope_margin = scope_margin
        self.scope_margin_unfamiliar = scope_margin_unfamiliar
        self.max_citations = max_citations
        self.safety = safety
        kinds = np.array(self.index.scope.get("kinds", []))
        vectors = self.index.scope_vectors
        empty = np.empty((0, retriever.embedder.dim), np.float32)
        self._off_ids = np.flatnonzero(kinds == "out")
        self._chat_ids = np.flatnonzero(kinds == "chat")
        self._off = vectors[self._off_ids] if vectors is not None and len(self._off_ids) else empty
        self._chat = vectors[self._chat_ids] if vectors is not None and len(self._chat_ids) else empty
        texts, labels = self.index.scope.get("texts", []), self.index.scope.get("labels", [])
        self._chat_phrases = {normalise_query(texts[i]): labels[i] for i in self._chat_ids if i < len(texts)}
        self._chat_words = frozenset(word for phrase in self._chat_phrases for word in phrase.split())
        # Intents that change the user's role or language need a word that says so (knowledge/scope/conversation.yaml)
        self._cues = {intent: terms_regex(words) for intent, words in (self.index.scope.get("cues") or {}).items()}
        # Sections that exist in several languages (the pupils' guides): the same short answer, one per language.
        by_short: dict[str, dict] = {}
        for record in self.index.sections:
            short = (record.short or {}).get("nb")
            if short:
                by_short.setdefault(short, {})[record.language] = record
        self._twins = {(short, language): record for short, records in by_short.items() if len(records) > 1
                       for language, record in records.items()}
        self._twinned = {short for short, _ in self._twins}
        self._topics = _section_topics(self.index)
        gate = self.index.gate
        # The gate's own build says whether it reads the topic words (an index built before them does not).
        self._topic_words = TopicWords(self.index.scope.get("words", []) if gate and gate.report.get("topic_words")
                                       else [])

    @classmethod
    def from_settings(cls, settings, use_model: bool = True, *, content=None) -> "Answerer":
        """Load embedder, index, glossary, catalogue, routing, the ranking model and the safety check.

        Raises IndexMissingError. use_model=False ranks by fusion alone (what `kap12 calibrate` fits from).
        Content files are read through `content` (by default the content in service, `bot.content`): one that
        fails to load is replaced by its last good copy, with a warning naming it.
        """
        content = content or Content.in_service(settings)
        embedder = make_embedder(settings)
        index = load_index(settings.index_dir, embedder)
        glossary = content.load(lambda root: Glossary.load(root / "glossary.yaml"))
        model = load_model(ranking_path(settings.knowledge_dir), embedder.identity()) if use_model else None
        retriever = Retriever.from_settings(index, embedder, glossary, settings, model)
        return cls(
            retriever,
            content.load(load_catalog),
            content.load(Router.load),
            content.load(lambda root: Scope.load(root / "scope.yaml", embedder)),
            threshold=settings.answer_threshold,
            scope_margin=settings.scope_margin,
            scope_margin_unfamiliar=settings.scope_margin_unfamiliar,
            max_citations=settings.max_citations,
            # Help numbers never vanish: a missing safety file is served from its last good copy too.
            safety=content.load(lambda root: load_safety(settings, embedder, root), keep=SAFETY_FILES),
        )

    def _refusal(self, question: str, role: str, lang: str, key: str = "answer.not_found") -> Answer:
        contact = "answer.contact.parent" if role in ("parent", "pupil") else "answer.contact.staff"
        text = f"{self.catalog.get(key, lang)}\n\n{self.catalog.get(contact, lang)}"
        return Answer(question, False, text, [], None, role, kind="refusal", lang=lang)

    def in_scope(self, query: str, query_vec: np.ndarray, best: float) -> bool:
        """The fallback when the index has no trained gate (no scope data): a floor and a margin.

        The best passage must pass a similarity floor and be closer to the question than the nearest
        off-topic phrase (knowledge/scope.yaml) by a margin; questions in chapter 12 vocabulary get less.
        """
        margin = self.scope_margin if self.retriever.glossary.matches(query) else self.scope_margin_unfamiliar
        return best >= self.threshold and best - self.scope.closeness(query_vec) >= margin

    def role_stated(self, text: str) -> str | None:
        """The role a message opens by stating before it asks («Jeg er ny lærer. Hva må jeg vite …?»), else None.

        The opening sentence (or clause) alone must read as a role statement, and a question must follow it.
        """
        text = text.strip()
        for pattern in (_SENTENCE_END, _CLAUSE_END):
            parts = pattern.split(text, maxsplit=1)
            if len(parts) != 2 or len(parts[0].split()) > ROLE_STATEMENT_WORDS or len(parts[1].split()) < 3:
                continue
            said = self.ask(parts[0], PUBLIC_ROLE, "nb", writer_role=None, check_safety=False)
            if said.kind == "chat" and said.intent in ROLE_INTENTS:
                return ROLE_INTENTS[said.intent]
        return None

    def known_phrase(self, text: str) -> str | None:
        """The intent of a listed everyday phrase ("takk", "hjelp", "husker du saken min?"), else None."""
        return self._chat_phrases.get(normalise_query(text))

    def classify(self, query: str, query_vec: np.ndarray, hits: list[Hit], role: str) -> tuple[str, dict]:
        """'in', 'vague', 'chat' or 'out', with what the decision rested on."""
        # Whether a message is about the school environment does not depend on who asks: the gate was trained on
        # closeness to every section's question and passage, so it reads the same here (not the role's view).
        q_max, p_max = self.retriever.closest_question(query_vec), self.retriever.closest_passage(query_vec)
        facts: dict = {"question_similarity": q_max, "passage_similarity": p_max}
        exact = self._chat_phrases.get(normalise_query(query))
        if exact:  # "takk", "meny", "hei": known phrases need no model
            facts["intent"] = exact
            return "chat", facts
        gate = self.index.gate
        if gate is None:
            return ("in" if self.in_scope(query, query_vec, p_max) else "out"), facts
        o_sims = self._off @ query_vec if len(self._off) else np.zeros(1, np.float32)
        c_sims = self._chat @ query_vec if len(self._chat) else np.zeros(1, np.float32)
        features = similarity_features(np.array([q_max]), np.array([p_max]), np.array([o_sims.max()]),
                                       np.array([c_sims.max()]),
                                       self._topic_words.named([query]) if self._topic_words else None)
        decision, probs = gate.decide(np.concatenate([query_vec[None, :], features], axis=1))
        facts["p_in"] = float(probs[0])
        if decision in ("chat", "out") and self.retriever.glossary.names_harm(query):
            # Someone who tells of being bullied, hit or left out is never turned away as off-topic or greeted as
            # small talk: at worst the short answer and the walkthroughs ("dei er slemme mot meg").
            decision = "vague"
        elif decision == "chat":
            facts["intent"] = self._nearest_chat(query_vec)
            if facts["intent"] in NORWEGIAN_CHOICES:
                # «svar på nynorsk» lies as near the bokmål phrases as the nynorsk ones: the word it uses decides
                facts["intent"] = next((i for i in NORWEGIAN_CHOICES if self._cues.get(i) is not None
                                        and self._cues[i].search(normalise_query(query))), facts["intent"])
            cue = self._cues.get(facts["intent"])
            if facts["intent"] in NEEDS_CLOSE_PHRASE and float(c_sims.max()) < CLOSE_PHRASE_AT:
                # «men alle gjør det» lies nearest «det var alt», «kva gjer eg no?» nearest «snakkar eg med eit
                # menneske no?»: a goodbye or «I am a chatbot» to a child who is telling something is worse than
                # reading it as a short question about the case
                decision = "vague"
                del facts["intent"]
            elif cue is not None and not cue.search(normalise_query(query)):
                # "jeg er redd" lies nearest "jeg er forelder", "i hate school" nearest "I work at the school":
                # without a word for the role or language it changes nothing; it is read as a vague question
                decision = "vague"
                del facts["intent"]
        elif decision == "out":
            facts["where"] = self.index.scope["where"][int(self._off_ids[int(np.argmax(o_sims))])] if len(
                self._off_ids) else "other"
        elif q_max < float(gate.report.get("vague_below", 0.0)):
            decision = "vague"
        return decision, facts

    def nearer_a_section_than_off_topic(self, text: str) -> bool:
        """Whether the message's closest section question is closer than its closest off-topic example: a short
        question declined on its own («hvor lang tid har skolen på seg?») may then be about the case just asked;
        «når er vinterferien?» is not."""
        query, _ = clean_question(text)
        if not query or not len(self._off):
            return bool(query)
        query_vec = self.retriever.embed_query(query)
        return self.retriever.closest_question(query_vec) > float((self._off @ query_vec).max())

    def _nearest_chat(self, query_vec: np.ndarray) -> str:
        if not len(self._chat_ids):
            return "greeting"
        return self.index.scope["labels"][int(self._chat_ids[int(np.argmax(self._chat @ query_vec))])]

    def ask(self, question: str, role: str = "parent", lang: str = "nb", *, writer_role: str | None = SAME_ROLE,
            query_vec: np.ndarray | None = None, check_safety: bool = True, context: str | None = None,
            answered_before: str | None = None) -> Answer:
        """Help numbers for someone in danger; else a cited answer, a chat reply, or a polite decline.

        Args:
            lang: the language to answer in (the chosen one; the caller may switch it for a question
                written in another language).
            writer_role: the role the user chose, for the safety wording (None: not chosen yet, so the
                message's own cues decide, also whether the pupils' guides answer; a staff member answered
                with public passages until proven still gets staff wording in a crisis). By default the same as `role`.
            check_safety: False only when the user already got the help numbers for this very question.
            context: the previous question, when this one is a short follow-up ("og hvis det er læreren?"): both
                are read together, the follow-up weighing more, since it says what changed.
            answered_before: the section the previous answer led with: a follow-up asks for something new, so
                another section that fits leads («og om skolen ikke gjør noe?» must not get the same first sentence).
        """
        if role not in AUDIENCES_FOR_ROLE:
            raise ValueError(f"unknown role '{role}'")
        query, truncated = clean_question(question)
        if not query:
            return self._refusal(question, role, lang, "answer.empty")
        if is_noise(query, self._chat_words):  # "asdfghjkl": not a question, nor a follow-up to the last one
            return Answer(question, False, self.catalog.get("chat.not_words", lang), [], None, role, kind="chat",
                          lang=lang, intent="not_words")
        # A follow-up whose own words name a rule («og hvis det er læreren?» is § 12-5) asks about that rule now.
        follow_rules = self.retriever.glossary.rules_named(query) if context else set()
        if context:
            context, _ = clean_question(context)
            follow_vec = query_vec if query_vec is not None else self.retriever.embed_query(query)
            mixed = FOLLOW_UP_WEIGHT * follow_vec + self.retriever.embed_query(context)
            query, query_vec = f"{context} {query}", (mixed / np.linalg.norm(mixed)).astype(np.float32)
        if query_vec is None:
            query_vec = self.retriever.embed_query(query)
        # Known everyday phrases ("takk", "meny", "ok") are not a cry for help; "hjelp" may be, so it is checked.
        phrase = self._chat_phrases.get(normalise_query(query))
        if self.safety is not None and check_safety and phrase in (None, "help"):
            result = self.safety.check(query, role if writer_role is SAME_ROLE else writer_role, query_vec)
            if result.urgent:
                # A bare "hjelp" says nothing about what is wrong: the numbers for anyone in danger, not a guess.
                reply = (self.safety.general_help(result.writer, lang, self.catalog) if phrase == "help"
                         else self.safety.reply(result, lang, self.catalog))
                return Answer(question, True, reply.text, [], None, role, kind="urgent", lang=lang,
                              urgent=True, help=list(reply.help), category=result.category, writer=result.writer)
        if writer_role is None and role == "parent" and self.safety is not None \
                and self.safety.writer(query, "parent") == "pupil":
            # No role chosen, and a pupil wrote this ("jeg er 13 og …"): answer from the pupils' guides, which
            # pupils and parents may both read, rather than tell a child to "talk with your child".
            role = "pupil"
        hits = self.retriever.search(query, role, k=10, query_vec=query_vec)
        decision, facts = self.classify(query, query_vec, hits, role)
        if decision == "chat" and (facts.get("intent") in FOLLOW_UP_INTENTS or context):
            # "og hvis det er læreren?" is about the topic; the dialog adds what came before (or has added it)
            decision = "vague"
        if decision == "chat":
            intent = facts.get("intent") or "greeting"
            key = f"chat.{intent}" if f"chat.{intent}" in self.catalog else "chat.greeting"
            return Answer(question, False, self.catalog.get(key, lang), [], None, role, kind="chat", lang=lang,
                          intent=intent, hits=hits)
        if decision == "out" or not hits:
            where = facts.get("where") or "other"
            text = f"{self.catalog.get('answer.decline', lang)} {self.catalog.get(f'answer.where.{where}', lang)}"
            return Answer(question, False, text, [], None, role, kind="decline", lang=lang, where=where, hits=hits)
        answer = self._compose(question, query, role, lang, hits, truncated, vague=decision == "vague",
                               answered_before=answered_before, follow_rules=follow_rules)
        answer.intent = facts.get("intent")
        return answer

    def _in_language_first(self, hits: list[Hit], lang: str) -> list[Hit]:
        """The hits, each section that also exists in the user's language (its twin: the same short answer, as
        the pupils' guides in bokmål, nynorsk and English have) given in that language, at the place of the first.

        A bokmål reader should not be quoted the nynorsk twin; a section with no twin keeps its place, since its
        short answer is shown in the user's language anyway and a closer section should not give way to a
        further one only for its language.
        """
        groups = [self._twin_group(hit) for hit in hits]
        ordered: list[Hit] = []
        placed: set[int] = set()
        for position, (hit, group) in enumerate(zip(hits, groups, strict=True)):
            if position in placed:
                continue
            if group is None:
                ordered.append(hit)
                continue
            members = [i for i, g in enumerate(groups) if g == group and i not in placed]
            placed.update(members)
            own = next((i for i in members if hits[i].passage.language == lang), None)
            first = hits[own] if own is not None else self._twin_hit(hit, group, lang)
            ordered += [first] + [hits[i] for i in members if i != own]
        return ordered

    def _twin_group(self, hit: Hit) -> str | None:
        record = self._section_of(hit)
        short = (record.short or {}).get("nb") if record else None
        return short if short in self._twinned else None

    def _twin_hit(self, hit: Hit, group: str, lang: str) -> Hit:
        """The hit's passage from the twin section in the user's language (the same place in it), in its stead."""
        twin, record = self._twins.get((group, lang)), self._section_of(hit)
        if twin is None or record is None or not twin.passages:
            return hit
        place = record.passages.index(self._positions[hit.passage.id])
        return replace(hit, passage=self.index.passages[twin.passages[min(place, len(twin.passages) - 1)]])

    @staticmethod
    def _own_guide_first(hits: list[Hit], role: str) -> list[Hit]:
        """For a pupil: a passage of a guide written for pupils leads when it is among the first few hits. The law
        explained is for adults; "jeg blir mobbet" should open with whom to tell, in a pupil's words, not with
        "Det er eleven selv som avgjør …"."""
        if role not in OWN_GUIDE_FIRST or not hits or role in hits[0].passage.readers:
            return hits
        return _first_that(hits[:OWN_GUIDE_WITHIN], lambda h: role in h.passage.readers, hits)

    @staticmethod
    def _staff_document_first(hits: list[Hit], role: str) -> list[Hit]:
        """For staff: a parents' guide («snakk med barnet …») does not lead when a staff document is among the first
        few hits. A teacher asking what to do after a parent's call needs the staff routine, in staff words."""
        if role not in STAFF_READERS or not hits:
            return hits
        lead = hits[0].passage
        if lead.audience == "staff" or "parent" not in lead.readers:
            return hits
        return _first_that(hits[:STAFF_DOCUMENT_WITHIN], lambda h: h.passage.audience == "staff", hits)

    def _compose(self, question: str, query: str, role: str, lang: str, hits: list[Hit], truncated: bool,
                 *, vague: bool, answered_before: str | None = None, follow_rules: set[str] = frozenset()) -> Answer:
        hits_for_reader = self._in_language_first(self._staff_document_first(self._own_guide_first(hits, role), role),
                                                  lang)
        def answered(hit: Hit) -> bool:  # from the section the last answer led with
            return answered_before is not None and getattr(self._section_of(hit), "key", None) == answered_before

        if answered_before:
            # the best hit of another section leads; the rest keep their order
            hits_for_reader = self._in_language_first(
                _first_that(hits_for_reader[:NEW_SECTION_WITHIN], lambda h: not answered(h), hits_for_reader), lang)
        if follow_rules:
            # …and among them, the best that rests on the rule the follow-up names, from a guide written for the
            # reader when there is one (a pupil asking «og hvis det er læreren?» gets the pupils' words)
            def on_rule(h: Hit) -> bool:
                return not answered(h) and bool(follow_rules & set(h.passage.refs))

            among = hits_for_reader[:FOLLOW_RULE_WITHIN]
            for_reader = [h for h in among if role in h.passage.readers]
            hits_for_reader = self._in_language_first(
                _first_that(for_reader if any(map(on_rule, for_reader)) else among, on_rule, hits_for_reader), lang)
        lead = hits_for_reader[0]
        record = self._section_of(lead)
        short = (record.short or {}).get(lang) if record else None
        expanded = self.retriever.glossary.expand(query)
        quoted: list[Hit] = [lead]
        for hit in hits_for_reader[:4]:
            if len(quoted) == 2 or vague:
                break
            same_section = self._section_of(hit) is record and record is not None
            if answered(hit):
                continue  # a follow-up does not quote again what the last answer led with
            other_language = hit.passage.language != lang and lead.passage.language == lang
            if hit is not lead and not same_section and not other_language \
                    and hit.dense >= lead.dense - SECOND_QUOTE_MARGIN:
                quoted.append(hit)
        citations, lines, said = [], [], []
        budget = 2  # at most two supporting sentences (a caveat that belongs to one stays with it)
        for hit in quoted:
            take = 1 if len(quoted) > 1 else 2
            if short is None and hit is lead:
                take = 2  # without a short answer the quote is the answer
            sentences = pick_sentences(hit.passage, expanded, min(take, budget))
            if not sentences:
                continue
            if hit is not lead and role in PLAIN_READERS and any(_CAVEAT.search(x) for x in sentences):
                continue  # a parent or pupil gets the practical step; what our sources leave open is for staff
            grams = set(char_ngrams(" ".join(sentences)))
            if any(len(grams & seen) / max(len(grams | seen), 1) > REPEAT_OVERLAP for seen in said):
                continue  # the parents' guide and the law guide often say the same thing; quote it once
            said.append(grams)
            budget -= min(take, budget)
            n = len(citations) + 1
            citations.append(citation_for(n, hit.passage, hit.score))
            lines.append(f"{join_quote(sentences)} [{n}]")
            if budget <= 0:
                break
        notes = [self.catalog.get("answer.general_rules", lang)]
        if truncated:
            notes.insert(0, self.catalog.get("answer.truncated", lang))
        head = [short] if short else []
        refs = [r for c in citations[:2] for r in c.refs]
        # a follow-up does not offer again the section the last answer led with
        see_also = [] if vague else self._see_also([h for h in hits_for_reader if not answered(h)], record, lang)
        return Answer(
            question=question,
            answered=True,
            answer="\n\n".join(head + lines + notes),
            citations=citations,
            suggested_flow=self.router.suggest(query, role, refs),
            role=role,
            kind="vague" if vague else "answer",
            lang=lang,
            section=record.key if record else None,
            short=short,
            hits=hits,
            lead=lead,
            see_also=see_also,
        )

    def _see_also(self, hits: list[Hit], lead_record, lang: str) -> list[SeeAlso]:
        """Other sections among the first hits that can answer in the reader's language: a section with a short
        answer, written in that language (bokmål and nynorsk read each other). Not the lead again in another
        language (its twin), nor a section whose heading reads like one already shown: a repeat, to the reader."""
        readable = {"en": ("en",)}.get(lang, ("nb", "nn"))
        offered: list[SeeAlso] = []
        shown = [lead_record] if lead_record is not None else []
        for hit in hits[:SEE_ALSO_WITHIN]:
            record = self._section_of(hit)
            if record is None or not (record.short or {}).get(lang) or hit.passage.language not in readable \
                    or any(_same_topic(record, other) or self._close_topics(record, other) for other in shown):
                continue
            shown.append(record)
            offered.append(SeeAlso(record.key, short_title(record.path), hit))
            if len(offered) == SEE_ALSO:
                break
        return offered

    def _close_topics(self, one, other) -> bool:
        """Two sections of different documents whose questions ask the same («Step in when you can» in the new
        teachers' guide, «Step in (§ 12-4)» in the staff routine): a button for the second repeats the first."""
        a, b = self._topics.get(one.key), self._topics.get(other.key)
        return a is not None and b is not None and float(a @ b) >= SAME_TOPIC_AT

    def answer_section(self, token: str, role: str, lang: str) -> Answer | None:
        """The answer a see-also button promised: that section's short answer and quotes, for a reader allowed
        to see it. None for an unknown token (an index rebuilt since) or a section the role may not read."""
        position = next((i for i, r in enumerate(self.index.sections) if section_token(r.key) == token), None)
        if position is None:
            return None
        record = self.index.sections[position]
        if role not in AUDIENCES_FOR_ROLE or not self.retriever.section_allowed(role, position) \
                or not record.passages:
            return None
        title = short_title(record.path)
        hits = [Hit(self.index.passages[i], 0.0, 0.0, 0.0) for i in record.passages]
        return self._compose(title, title, role, lang, hits, False, vague=False)

    def _section_of(self, hit: Hit):
        numbers = self.index.passage_section
        if numbers is None:
            return None
        position = self._positions.get(hit.passage.id)
        if position is None or numbers[position] < 0:
            return None
        return self.index.sections[int(numbers[position])]

    @property
    def _positions(self) -> dict[str, int]:
        if not hasattr(self, "_position_cache"):
            self._position_cache = {p.id: i for i, p in enumerate(self.index.passages)}
        return self._position_cache

    def general_help(self, writer_role: str | None, lang: str):
        """Help numbers for anyone in danger now, worded for the writer; None without a safety check."""
        if self.safety is None:
            return None
        writer = {"staff": "staff", "new_teacher": "staff", "pupil": "pupil"}.get(writer_role or "", "parent")
        return self.safety.general_help(writer, lang, self.catalog)

    def short_answer(self, section_key: str | None, lang: str) -> str | None:
        """The short answer of a section (for follow-ups such as "hva betyr det?")."""
        for record in self.index.sections:
            if record.key == section_key and record.short:
                return record.short.get(lang)
        return None

    def resolve_passage_key(self, key: str) -> list[Passage]:
        """Passages matching '<document id>#<heading prefix>' (see flows); [] for an unknown key."""
        doc_id, _, heading = key.partition("#")
        heading = heading.strip().lower()
        return [
            p
            for p in self.index.passages
            if p.doc_id == doc_id
            and (not heading or any(_heading_matches(h, heading) for h in (p.doc_title, *p.headings)))
        ]

    def citations_for_keys(self, keys: list[str], role: str) -> list[Citation]:
        """Citations for a flow step: the first passage each key matches that the role may see."""
        allowed = AUDIENCES_FOR_ROLE.get(role, AUDIENCES_FOR_ROLE["parent"])
        citations: list[Citation] = []
        for key in keys:
            match = next((p for p in self.resolve_passage_key(key) if p.audience in allowed), None)
            if match and all(c.passage_id != match.id for c in citations):
                citations.append(citation_for(len(citations) + 1, match))
        return citations

    def sources(self) -> list[dict]:
        return list(self.index.documents)
