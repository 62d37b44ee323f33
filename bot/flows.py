"""Guided walkthroughs ("flows"): YAML files in knowledge/flows/, loaded and validated into dataclasses.

A flow is content, not code: a municipality edits the YAML and `load_flows` tells it exactly which file,
step and field is wrong. Checks that need other flows or the index live in `check_flows`.
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
ID_RE = re.compile(r"[a-z0-9-]+")

# "§ 12-4" (opplæringslova), or a named law: "kommuneloven § 25-1", "forvaltningsloven § 13".
LAWS = ("kommuneloven", "forvaltningsloven")
REF_RE = re.compile(r"§ \d+-\d+|(?:" + "|".join(LAWS) + r") § \d+(?:-\d+)?")
PASSAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*#\S(?:.*\S)?")

FLOW_FIELDS = {"id", "roles", "title", "summary", "start", "steps"}
STEP_FIELDS = {"id", "text", "refs", "passages", "advice", "buttons"}
BUTTON_FIELDS = {"label", "next", "flow"}


@dataclass(frozen=True)
class FlowButton:
    """A choice on a step: go to step `next` in this flow, or start flow `flow`."""

    label: dict
    next: str | None = None
    flow: str | None = None


@dataclass(frozen=True)
class FlowStep:
    """One step: text (law), optional advice (råd), the § refs and passage keys it rests on, its buttons."""

    id: str
    text: dict
    refs: tuple[str, ...] = ()
    passages: tuple[str, ...] = ()
    advice: dict | None = None
    buttons: tuple[FlowButton, ...] = ()


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

    return Flow(flow_id, tuple(roles), title, summary, start, steps, path)


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
    for key in passages:
        if not PASSAGE_RE.fullmatch(key):
            step_fail(f"malformed passage key '{key}'; write '<document id>#<heading>'")

    raw_buttons = raw.get("buttons") or []
    if not isinstance(raw_buttons, list):
        step_fail("buttons must be a list")
    buttons = []
    for raw_button in raw_buttons:
        if not isinstance(raw_button, dict):
            step_fail("every button must be a mapping with label and next or flow")
        _check_fields(raw_button, BUTTON_FIELDS, {"label"}, "a button", step_fail)
        label = _check_texts(raw_button["label"], "a button label", step_fail)
        for lang, value in label.items():
            if len(value) > MAX_LABEL_CHARS:
                step_fail(f"the button label '{value}' ({lang}) is longer than {MAX_LABEL_CHARS} characters")
        next_step, other_flow = raw_button.get("next"), raw_button.get("flow")
        if (next_step is None) == (other_flow is None):
            step_fail(f"the button '{label['en']}' needs exactly one of next (a step) or flow (another flow)")
        if next_step is not None:
            next_step = _check_id(next_step, MAX_STEP_ID, "next", step_fail)
        if other_flow is not None:
            other_flow = _check_id(other_flow, MAX_FLOW_ID, "flow", step_fail)
        buttons.append(FlowButton(label, next_step, other_flow))
    return FlowStep(step_id, text, tuple(refs), tuple(passages), advice, tuple(buttons))


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
            for key in step.passages:
                if not passage_exists(key):
                    problems.append(f"{where}: no passage matches the key '{key}'")
            for button in step.buttons:
                if button.flow is not None and button.flow not in flows:
                    problems.append(f"{where}: a button starts the flow '{button.flow}', which does not exist")
                if button.next is not None and button.next not in flow.steps:
                    problems.append(f"{where}: a button goes to the step '{button.next}', which does not exist")
        for step_id in flow.steps.keys() - reachable_steps(flow):
            problems.append(f"{flow.path.name}, step '{step_id}': cannot be reached from the start step")
    return problems


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
    """A Mermaid flowchart of `flow`: steps as boxes (first sentence of the text), buttons as arrows."""
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
        shape = '(["{}"])' if step.id == flow.start or not step.buttons else '["{}"]'
        lines.append(f"    {_node(step.id)}{shape.format(label)}")
    other_flows = []
    for step in flow.steps.values():
        for button in step.buttons:
            label = _mermaid_text(button.label[lang])
            if button.next:
                lines.append(f'    {_node(step.id)} -->|"{label}"| {_node(button.next)}')
            else:
                lines.append(f'    {_node(step.id)} -.->|"{label}"| {_node(button.flow, "f")}')
                other_flows.append(button.flow)
    for other in dict.fromkeys(other_flows):
        lines.append(f'    {_node(other, "f")}[["flow: {other}"]]')
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
