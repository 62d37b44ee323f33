"""Guided walkthroughs ("flows"): YAML files in knowledge/flows/, loaded and validated into dataclasses.

A flow is content, not code: a municipality edits the YAML and `load_flows` tells it exactly which file,
step and field is wrong. Checks that need other flows or the index live in `check_flows`.

A step's buttons either move within the flow (`next`), start another flow (`flow`) or run a dialog
command (`command`: brev, kontakt, notat, fare). A step without `next` buttons ends the flow. Every step
but the start has a way back (`back`): by default the one step that leads to it; a step reached from
several steps names it. Quiz answers carry `correct: true`; a step with `score: true` shows the tally.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.errors import FlowError
from bot.roles import ROLES

LANGS = ("nb", "nn", "en")

MAX_FLOW_ID = 24  # the flow id travels in Telegram callback data (≤ 64 bytes) together with the step id
MAX_STEP_ID = 16
MAX_LABEL_CHARS = 30  # longer labels get cut off on phone screens
# What a user reads before the buttons (text + advice) must fit a phone screen: about 600 characters.
MAX_STEP_CHARS = 600
ID_RE = re.compile(r"[a-z0-9-]+")

# "§ 12-4" (opplæringslova), or a named law: "kommuneloven § 25-1", "forvaltningsloven § 13".
LAWS = ("kommuneloven", "forvaltningsloven", "straffeloven", "barnevernsloven")
REF_RE = re.compile(r"§ \d+-\d+|(?:" + "|".join(LAWS) + r") § \d+(?:-\d+)?")
PASSAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*#\S(?:.*\S)?")
# One citation slot may name the same section in several languages, "a#X | b#Y": the reader gets the one in
# their language (see `passage_keys_for`), so a nynorsk pupil is not shown the bokmål guide as well.
ALTERNATIVES = " | "

FLOW_FIELDS = {"id", "roles", "title", "summary", "start", "steps"}
STEP_FIELDS = {"id", "text", "refs", "passages", "advice", "buttons", "back", "score"}
BUTTON_FIELDS = {"label", "next", "flow", "command", "correct"}
# Dialog commands a button may run: brev = a message draft, kontakt = local contacts, notat = a note
# template, fare = the safety layer's help numbers.
COMMANDS = ("brev", "kontakt", "notat", "fare")


@dataclass(frozen=True)
class FlowButton:
    """A choice on a step: go to step `next` in this flow, start flow `flow`, or run dialog `command`.

    `correct` marks the right answer(s) of a quiz question; the runner keeps the tally in memory only.
    """

    label: dict
    next: str | None = None
    flow: str | None = None
    command: str | None = None
    correct: bool = False

    def __hash__(self) -> int:  # label is a dict; hash what identifies the button
        return hash((self.label.get("nb"), self.next, self.flow, self.command, self.correct))


@dataclass(frozen=True)
class FlowStep:
    """One step: text (law), optional advice (råd), the § refs and passage keys it rests on, its buttons."""

    id: str
    text: dict
    refs: tuple[str, ...] = ()
    passages: tuple[str, ...] = ()
    advice: dict | None = None
    buttons: tuple[FlowButton, ...] = ()
    back: str | None = None  # where "back" goes; None only on the start step (and unreachable ones)
    back_declared: bool = False  # written in the YAML (drawn in the diagram) rather than derived
    score: bool = False  # show the quiz tally on this step

    def __hash__(self) -> int:  # texts are dicts; a step is identified by its id (equality still compares all)
        return hash(self.id)

    @property
    def is_end(self) -> bool:
        """A step without `next` buttons ends the flow (it may still link to other flows or commands)."""
        return not any(button.next for button in self.buttons)

    @property
    def is_question(self) -> bool:
        """A quiz question: at least one of its buttons is marked `correct`."""
        return any(button.correct for button in self.buttons)


@dataclass(frozen=True)
class Flow:
    """A walkthrough; `steps` keeps the file's order, `start` is the first step's id."""

    id: str
    roles: tuple[str, ...]
    title: dict
    summary: dict
    start: str
    steps: dict[str, FlowStep]
    path: Path

    def __hash__(self) -> int:
        # The texts are dicts (unhashable); a flow is identified by its id and file, so sets and dict keys work.
        return hash((self.id, self.path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_flows(flows_dir: Path) -> dict[str, Flow]:
    """Load and validate every `*.yaml` in `flows_dir`, keyed by flow id.

    Raises:
        FlowError: naming the file, the step (if any) and the problem.
    """
    flows_dir = Path(flows_dir)
    if not flows_dir.is_dir():
        raise FlowError(flows_dir, None, "the flows folder does not exist")
    return {flow.id: flow for flow in map(load_flow, sorted(flows_dir.glob("*.yaml")))}


def load_flow(path: Path) -> Flow:
    """Load and validate one flow file."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(path, None, f"cannot read the file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise FlowError(path, None, f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise FlowError(path, None, "the file must be a YAML mapping with id, roles, title, summary, start, steps")

    def fail(problem: str, step: str | None = None):
        raise FlowError(path, step, problem)

    _check_fields(data, FLOW_FIELDS, FLOW_FIELDS, "the flow", fail)
    flow_id = _check_id(data["id"], MAX_FLOW_ID, "flow id", fail)
    if flow_id != path.stem:
        fail(f"the flow id '{flow_id}' must equal the file name '{path.stem}'")
    roles = data["roles"]
    if not isinstance(roles, list) or not roles:
        fail(f"roles must be a non-empty list of {', '.join(ROLES)}")
    for role in roles:
        if role not in ROLES:
            fail(f"unknown role '{role}'; use {', '.join(ROLES)}")
    if len(set(roles)) != len(roles):
        fail("a role is listed twice")
    title = _check_texts(data["title"], "title", fail)
    summary = _check_texts(data["summary"], "summary", fail)
    if not isinstance(data["steps"], list) or not data["steps"]:
        fail("steps must be a non-empty list")

    steps: dict[str, FlowStep] = {}
    for position, raw in enumerate(data["steps"], start=1):
        step = _load_step(raw, position, fail)
        if step.id in steps:
            fail("the step id is used twice", step.id)
        steps[step.id] = step

    start = _check_id(data["start"], MAX_STEP_ID, "start", fail)
    if start not in steps:
        fail(f"start names the step '{start}', which does not exist")
    for step in steps.values():
        for button in step.buttons:
            if button.next is not None and button.next not in steps:
                fail(f"a button goes to the step '{button.next}', which does not exist", step.id)
            if button.next == step.id:
                fail("a button goes to its own step", step.id)
    steps = _resolve_back_links(steps, start, fail)
    if any(step.score for step in steps.values()) and not any(step.is_question for step in steps.values()):
        fail("a step shows the quiz score (score: true), but no button is marked correct: true")
    return Flow(flow_id, tuple(roles), title, summary, start, steps, path)


def _resolve_back_links(steps: dict[str, FlowStep], start: str, fail) -> dict[str, FlowStep]:
    """Fill in each step's `back`: declared, or the one step that leads to it; reject circles.

    A step reached from several steps must declare `back` (the loader cannot guess which way the user
    came); the start step has none. Following `back` from any step must end at the start step.
    """
    leads_here: dict[str, list[str]] = {step_id: [] for step_id in steps}
    for step in steps.values():
        for button in step.buttons:
            if button.next and step.id not in leads_here[button.next]:
                leads_here[button.next].append(step.id)
    resolved = {}
    for step in steps.values():
        back = step.back
        if step.id == start:
            if back is not None:
                fail("the start step cannot have back: it is where the flow begins", step.id)
        elif back is not None:
            if back not in steps:
                fail(f"back names the step '{back}', which does not exist", step.id)
            if back == step.id:
                fail("back cannot name the step itself", step.id)
        elif len(leads_here[step.id]) == 1:
            back = leads_here[step.id][0]
        elif len(leads_here[step.id]) > 1:
            fail(f"the step is reached from {', '.join(leads_here[step.id])}; "
                 "add back: <step id> to say where its back button goes", step.id)
        resolved[step.id] = FlowStep(step.id, step.text, step.refs, step.passages, step.advice, step.buttons,
                                     back, step.back is not None, step.score)
    for step_id in resolved:
        seen, current = [step_id], resolved[step_id].back
        while current is not None:
            if current in seen:
                circle = " → ".join(seen[seen.index(current):] + [current])
                fail(f"the back links go round in a circle ({circle}); one of them must lead towards "
                     f"the start step '{start}'", step_id)
            seen.append(current)
            current = resolved[current].back
    return resolved


def _load_step(raw, position: int, fail) -> FlowStep:
    """Validate one entry of `steps`; errors name the step by id, or by position ("#2") if it has none."""
    where = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"#{position}"

    def step_fail(problem: str):
        fail(problem, where)

    if not isinstance(raw, dict):
        step_fail("every entry in steps must be a mapping with at least id and text")
    step_id = raw.get("id")

    _check_fields(raw, STEP_FIELDS, {"id", "text"}, "the step", step_fail)
    step_id = _check_id(step_id, MAX_STEP_ID, "step id", step_fail)
    text = _check_texts(raw["text"], "text", step_fail)
    advice = _check_texts(raw["advice"], "advice", step_fail) if raw.get("advice") is not None else None
    refs = _check_strings(raw.get("refs") or [], "refs", step_fail)
    for ref in refs:
        if not REF_RE.fullmatch(ref):
            step_fail(f"malformed ref '{ref}'; write e.g. '§ 12-4', 'kommuneloven § 25-1', "
                      "'forvaltningsloven § 13'")
    passages = _check_strings(raw.get("passages") or [], "passages", step_fail)
    for slot in passages:
        for key in passage_alternatives(slot):
            if not PASSAGE_RE.fullmatch(key):
                step_fail(f"malformed passage key '{key}'; write '<document id>#<heading>', "
                          f"or several languages of one section as 'a#Heading{ALTERNATIVES}b#Overskrift'")
    if not refs and not passages:
        step_fail("the step has no source: add refs (e.g. '§ 12-4') or passages ('<document id>#<heading>')")
    for lang in LANGS:
        length = len(text[lang]) + (len(advice[lang]) if advice else 0)
        if length > MAX_STEP_CHARS:
            step_fail(f"text and advice in '{lang}' are {length} characters; keep them within {MAX_STEP_CHARS} "
                      "so the step fits a phone screen (split it into two steps)")
    back = raw.get("back")
    if back is not None:
        back = _check_id(back, MAX_STEP_ID, "back", step_fail)
    score = raw.get("score", False)
    if not isinstance(score, bool):
        step_fail("score must be true or false")

    raw_buttons = raw.get("buttons") or []
    if not isinstance(raw_buttons, list):
        step_fail("buttons must be a list")
    buttons = []
    for raw_button in raw_buttons:
        if not isinstance(raw_button, dict):
            step_fail("every button must be a mapping with label and one of next, flow or command")
        _check_fields(raw_button, BUTTON_FIELDS, {"label"}, "a button", step_fail)
        label = _check_texts(raw_button["label"], "a button label", step_fail)
        for lang, value in label.items():
            if len(value) > MAX_LABEL_CHARS:
                step_fail(f"the button label '{value}' ({lang}) is longer than {MAX_LABEL_CHARS} characters")
        next_step, other_flow, command = raw_button.get("next"), raw_button.get("flow"), raw_button.get("command")
        if sum(target is not None for target in (next_step, other_flow, command)) != 1:
            step_fail(f"the button '{label['en']}' needs exactly one of next (a step), flow (another flow) "
                      "or command (brev, kontakt, notat, fare)")
        if next_step is not None:
            next_step = _check_id(next_step, MAX_STEP_ID, "next", step_fail)
        if other_flow is not None:
            other_flow = _check_id(other_flow, MAX_FLOW_ID, "flow", step_fail)
        if command is not None and command not in COMMANDS:
            step_fail(f"the button '{label['en']}' runs the unknown command '{command}'; use {', '.join(COMMANDS)}")
        correct = raw_button.get("correct", False)
        if not isinstance(correct, bool):
            step_fail(f"correct on the button '{label['en']}' must be true or false")
        if correct and next_step is None:
            step_fail(f"the quiz answer '{label['en']}' is marked correct but has no next step to give feedback")
        buttons.append(FlowButton(label, next_step, other_flow, command, correct))
    for lang in LANGS:
        in_lang = [button.label[lang].casefold() for button in buttons]
        if len(set(in_lang)) != len(in_lang):
            step_fail(f"two buttons have the same label in '{lang}'; a typed label must pick one button")
    return FlowStep(step_id, text, tuple(refs), tuple(passages), advice, tuple(buttons), back, False, score)


def _check_fields(data: dict, allowed: set, required: set, what: str, fail) -> None:
    """Required fields present, no unknown ones (a typo like `passage:` would otherwise vanish silently)."""
    missing = sorted(required - data.keys())
    if missing:
        fail(f"{what} is missing: {', '.join(missing)}")
    unknown = sorted(str(key) for key in data.keys() - allowed)
    if unknown:
        fail(f"{what} has unknown fields: {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _check_id(value, max_len: int, what: str, fail) -> str:
    if not isinstance(value, str):
        fail(f"{what} must be text (quote it if it looks like a number or yes/no)")
    if not ID_RE.fullmatch(value) or len(value) > max_len:
        fail(f"{what} '{value}' must be 1-{max_len} characters of a-z, 0-9 and '-'")
    return value


def _check_texts(value, what: str, fail) -> dict:
    """A {nb, nn, en} mapping of non-empty strings; returned stripped (YAML block scalars add a newline)."""
    if not isinstance(value, dict):
        fail(f"{what} must be a mapping with {', '.join(LANGS)}")
    for lang in LANGS:
        if not isinstance(value.get(lang), str) or not value[lang].strip():
            fail(f"{what} is missing or empty in '{lang}' (every text needs {', '.join(LANGS)})")
    extra = sorted(str(key) for key in value.keys() - set(LANGS))
    if extra:
        fail(f"{what} has unknown languages: {', '.join(extra)} (use {', '.join(LANGS)})")
    return {lang: value[lang].strip() for lang in LANGS}


def _check_strings(value, what: str, fail) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        fail(f"{what} must be a list of text")
    return value


def check_flows(flows: dict[str, Flow], passage_exists: Callable[[str], bool]) -> list[str]:
    """Checks across files and against the index; returns the problems as text (empty list = all good).

    Args:
        flows: as returned by `load_flows`.
        passage_exists: tells whether a passage key ("<document id>#<heading>") matches any indexed passage.
    """
    problems = []
    for flow in flows.values():
        for step in flow.steps.values():
            where = f"{flow.path.name}, step '{step.id}'"
            for ref in step.refs:
                if not REF_RE.fullmatch(ref):
                    problems.append(f"{where}: malformed ref '{ref}'")
            if step.refs and not step.passages:
                problems.append(f"{where}: cites {', '.join(step.refs)} but has no passages to show")
            for key in (key for slot in step.passages for key in passage_alternatives(slot)):
                if not passage_exists(key):
                    problems.append(f"{where}: no passage matches the key '{key}'")
            for button in step.buttons:
                if button.flow is not None and button.flow not in flows:
                    problems.append(f"{where}: a button starts the flow '{button.flow}', which does not exist")
                if button.next is not None and button.next not in flow.steps:
                    problems.append(f"{where}: a button goes to the step '{button.next}', which does not exist")
        for step_id in sorted(flow.steps.keys() - reachable_steps(flow)):
            problems.append(f"{flow.path.name}, step '{step_id}': cannot be reached from the start step")
        for step_id in sorted(flow.steps.keys() - steps_that_can_end(flow)):
            problems.append(f"{flow.path.name}, step '{step_id}': no path from here reaches an end step "
                            "(a step without next buttons), so the walkthrough could never finish")
    return problems


def passage_alternatives(slot: str) -> list[str]:
    """The passage keys of one citation slot: "a#X" → ["a#X"]; "a#X | b#Y" → ["a#X", "b#Y"]."""
    return [key.strip() for key in slot.split(ALTERNATIVES)]


def passage_keys_for(step: FlowStep, lang: str, language_of: Callable[[str], str | None]) -> list[str]:
    """One key per citation slot of `step`, in the reader's language where the slot offers it.

    Args:
        lang: the reader's language.
        language_of: the language of a document id (None if unknown); the first alternative is the default.
    """
    keys = []
    for slot in step.passages:
        alternatives = passage_alternatives(slot)
        keys.append(next((key for key in alternatives if language_of(key.split("#", 1)[0]) == lang),
                         alternatives[0]))
    return keys


def steps_that_can_end(flow: Flow) -> set[str]:
    """Ids of the steps from which some sequence of `next` presses reaches an end step."""
    can_end = {step.id for step in flow.steps.values() if step.is_end}
    changed = True
    while changed:
        changed = False
        for step in flow.steps.values():
            if step.id not in can_end and any(button.next in can_end for button in step.buttons):
                can_end.add(step.id)
                changed = True
    return can_end


def reachable_steps(flow: Flow) -> set[str]:
    """Ids of the steps a user can reach from `flow.start` by pressing buttons."""
    seen, todo = set(), [flow.start]
    while todo:
        step_id = todo.pop()
        if step_id in seen or step_id not in flow.steps:
            continue
        seen.add(step_id)
        todo.extend(button.next for button in flow.steps[step_id].buttons if button.next)
    return seen


def flow_to_mermaid(flow: Flow, lang: str = "nb") -> str:
    """A Mermaid flowchart of `flow`: steps as boxes (first sentence of the text), buttons as arrows.

    Links to other flows and commands are dashed arrows to their own nodes; a correct quiz answer is
    marked ✓; declared back links are dotted "↩" arrows (a derived back link is just the reverse of the
    one arrow into a step, so drawing it would only double the lines).
    """
    lines = [
        "---",
        f"title: {json.dumps(f'{flow.title[lang]} ({flow.id})', ensure_ascii=False)}",  # JSON is valid YAML
        "---",
        f"%% Generated from {flow.id}.yaml by bot.flows.flow_to_mermaid; do not edit by hand.",
        "flowchart TD",
    ]
    for step in flow.steps.values():
        label = _mermaid_text(f"{step.id}: {_first_sentence(step.text[lang])}")
        # Stadium shape for the start and the end steps, boxes for the rest.
        shape = '(["{}"])' if step.id == flow.start or step.is_end else '["{}"]'
        lines.append(f"    {_node(step.id)}{shape.format(label)}")
    other_flows, commands = [], []
    for step in flow.steps.values():
        for button in step.buttons:
            label = _mermaid_text(button.label[lang] + (" ✓" if button.correct else ""))
            if button.next:
                lines.append(f'    {_node(step.id)} -->|"{label}"| {_node(button.next)}')
            elif button.flow:
                lines.append(f'    {_node(step.id)} -.->|"{label}"| {_node(button.flow, "f")}')
                other_flows.append(button.flow)
            else:
                lines.append(f'    {_node(step.id)} -.->|"{label}"| {_node(button.command, "c")}')
                commands.append(button.command)
        if step.back_declared:
            lines.append(f'    {_node(step.id)} -.->|"↩"| {_node(step.back)}')
    for other in dict.fromkeys(other_flows):
        lines.append(f'    {_node(other, "f")}[["flow: {other}"]]')
    for command in dict.fromkeys(commands):
        lines.append(f'    {_node(command, "c")}{{{{"/{command}"}}}}')
    return "\n".join(lines) + "\n"


def write_mermaid(flow: Flow, lang: str = "nb") -> Path:
    """Write `<id>.mmd` beside the flow's YAML file; returns its path."""
    target = flow.path.with_suffix(".mmd")
    target.write_text(flow_to_mermaid(flow, lang), encoding="utf-8")
    return target


def _node(item_id: str, prefix: str = "s") -> str:
    # Hyphens in Mermaid node ids clash with arrow syntax; ids never contain "_", so this stays unique.
    return f"{prefix}_{item_id.replace('-', '_')}"


def _first_sentence(text: str, limit: int = 60) -> str:
    """The text's first sentence, cut at a word boundary so a diagram box stays small."""
    first = re.split(r"(?<=[.!?:])\s|\n", text, maxsplit=1)[0].strip()
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0].rstrip(",;") + " …"


def _mermaid_text(text: str) -> str:
    # Quotes would end a Mermaid label; Mermaid's entity code keeps them.
    return text.replace('"', "#quot;")
