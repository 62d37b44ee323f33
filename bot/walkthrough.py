"""Running a walkthrough (flow) for a user: starting it, showing a step, pressing its buttons, going back.

Button data this module builds and accepts (see bot/dialog.py for the full list):
    s|<flow>|<step>|<i>   press button i of <step>; valid only while <step> is the user's current step
    s|<flow>|<step>|b     back: go to the step's `back` (same check)
    s|<flow>|<step>|i     the full list of the step's sources (same check; the position does not change)
    s|<flow>|<step>|n     typed "neste": the one way on, or the step again with its choices (same check)
    c|<flow>|<step>       show the user's current step again (same check)
    f|<flow>              start a flow (it must exist and be meant for the user's role)
    k|<command>           a step button with `command:` (brev, kontakt, notat, fare) runs that dialog command

Every step has the same frame, so button numbers in the terminal chat stay put and the menu button is
always in the same place: the step's own buttons, then [back] [sources] when there are any, then
[ask a question] [menu]. Typed "tilbake", "meny" and "neste" (and their nn/en words from the catalogue,
`flow.words.*`) work inside a walkthrough.

Quiz answers (`correct: true` buttons) are tallied in memory only, per user and flow, and never stored;
after a restart the score step says it cannot count.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from bot.flows import Flow, FlowStep, passage_keys_for
from bot.i18n import DEFAULT_LANGUAGE
from bot.replies import Button, Citation, Reply

log = logging.getLogger(__name__)

BACK, SOURCES, NEXT = "b", "i", "n"  # the last field of s|<flow>|<step>|… beyond the step's own buttons
QUIZ_MEMORY = 4096  # (user, flow) tallies kept; the oldest are dropped first
# Someone who has not said who they are may open the walkthroughs for these roles (never the staff ones): a
# pupil who writes "jeg er 13 og …" first is offered the pupils' walkthrough, and a poster's link opens it.
PUBLIC_FLOW_ROLES = ("parent", "pupil")


def needs_danger_button(flow: Flow, step: FlowStep) -> bool:
    """The first step of a walkthrough offers the help numbers, unless it has its own button for them."""
    return step.id == flow.start and not any(button.command == "fare" for button in step.buttons)


def pick(texts: dict, lang: str) -> str:
    """A flow text in `lang`, falling back to bokmål (flows validate all three, this is belt and braces)."""
    return texts.get(lang) or texts.get(DEFAULT_LANGUAGE) or next(iter(texts.values()), "")


def words(catalog, key: str) -> set[str]:
    """The typed words a catalogue entry lists ("tilbake, forrige"), folded, in every language.

    A bokmål user who types "back" or a nynorsk user who types "tilbake" means the same thing, so the
    words of all three languages count.
    """
    found = set()
    for lang in ("nb", "nn", "en"):
        found |= {" ".join(word.casefold().split()) for word in catalog.get(key, lang).split(",") if word.strip()}
    return found


class Walkthroughs:
    """The flows offered to users and the user's position in one of them (kept in the user's state)."""

    def __init__(self, core, flows: dict[str, Flow]):
        self.core = core
        self.flows = dict(flows)
        # (user id, flow id) → {question step id: answered right the first time}; memory only.
        self._quiz: OrderedDict[tuple[str, str], dict[str, bool]] = OrderedDict()
        self._languages: dict[str, str] | None = None  # document id → language, read once from the answerer
        # Users whose latest screen is a tool's (a draft, contacts, help numbers), not a step: typed words
        # like "tilbake" then belong to that screen. Memory only; showing a step again clears it.
        self._elsewhere: OrderedDict[str, None] = OrderedDict()

    # -- where the user is ----------------------------------------------------------------------------------
    def current(self, state) -> tuple[Flow, FlowStep] | None:
        flow = self.flows.get(state.flow_id or "")
        step = flow.steps.get(state.step_id or "") if flow else None
        return (flow, step) if step else None

    def allowed(self, flow: Flow, state) -> bool:
        """Whether the user may open the flow: one for their role; without a role, any parent's or pupil's."""
        if state.role is None:
            return bool(set(flow.roles) & set(PUBLIC_FLOW_ROLES))
        return state.role in flow.roles

    def offered(self, state, primary: str | None) -> list[Flow]:
        role = state.role or "parent"
        flows = [flow for flow in self.flows.values() if role in flow.roles]
        return sorted(flows, key=lambda flow: flow.id != primary)  # stable: the primary flow first

    def resume_button(self, state) -> Button | None:
        if self.current(state) is None:
            return None
        return Button(self.core.t("button.resume", state.language), f"c|{state.flow_id}|{state.step_id}")

    # -- actions ------------------------------------------------------------------------------------------
    def start(self, state, flow: Flow) -> list[Reply]:
        state.flow_id, state.step_id = flow.id, flow.start
        self._quiz.pop((state.user_id, flow.id), None)  # a new run counts from zero
        return [self.step_reply(state, flow, flow.steps[flow.start], intro=True)]

    def show_current(self, state, flow_id: str, step_id: str) -> list[Reply] | None:
        if (state.flow_id, state.step_id) != (flow_id, step_id) or self.current(state) is None:
            return None
        return [self.step_reply(state, *self.current(state))]

    def press(self, state, flow_id: str, step_id: str, index: str) -> list[Reply] | None:
        """A step button (or the frame's back/sources); None when it does not fit the user's state."""
        current = self.current(state)
        if current is None or (state.flow_id, state.step_id) != (flow_id, step_id):
            return None
        flow, step = current
        if index == BACK:
            if step.back is None:
                return [self.step_reply(state, flow, step, lead=self._t("flow.no_back", state.language))]
            return self.back(state)
        if index == SOURCES:
            return [self.sources_reply(state, flow, step)]
        if index == NEXT:
            onward = [i for i, button in enumerate(step.buttons) if button.next]
            if len(onward) == 1:
                return self.press(state, flow_id, step_id, str(onward[0]))
            lead = self._t("flow.next_choose", state.language) if onward else None
            return [self.step_reply(state, flow, step, lead=lead)]
        if not (index.isascii() and index.isdigit() and int(index) < len(step.buttons)):
            return None
        button = step.buttons[int(index)]
        if step.is_question:
            self._record_answer(state.user_id, flow.id, step.id, button.correct)
        if button.next is not None:
            state.step_id = button.next
            return [self.step_reply(state, flow, flow.steps[button.next])]
        if button.command is not None:  # normally sent as k|<command>; an old s|… press still works
            return self.core.commands.run(state, button.command, "")
        target = self.flows.get(button.flow or "")
        if target is None:  # content points at a flow that is not loaded; `kap12 flows check` reports it
            return None
        # The flow's author linked it, so the target's role list does not gate it.
        return self.start(state, target)

    def back(self, state) -> list[Reply] | None:
        """Go to the current step's `back` step (None on the start step, which has no back)."""
        current = self.current(state)
        if current is None or current[1].back is None:
            return None
        flow, step = current
        state.step_id = step.back
        return [self.step_reply(state, flow, flow.steps[step.back])]

    def quit(self, state) -> None:
        state.flow_id = state.step_id = None

    def forget_user(self, user_id: str) -> None:
        """Drop the user's quiz tallies and screen note (/slett)."""
        for key in [key for key in self._quiz if key[0] == user_id]:
            del self._quiz[key]
        self._elsewhere.pop(user_id, None)

    def note_elsewhere(self, user_id: str) -> None:
        """The core shows the user a tool's screen; until a step is shown again, typing does not move the flow."""
        self._elsewhere[user_id] = None
        self._elsewhere.move_to_end(user_id)
        while len(self._elsewhere) > QUIZ_MEMORY:
            self._elsewhere.popitem(last=False)

    def match_label(self, state, folded: str, fold) -> str | None:
        """Button data for what the user typed inside a walkthrough: a visible label, or back/menu/next."""
        current = self.current(state)
        if current is None:
            return None
        flow, step = current
        if folded == fold(self.core.t("button.resume", state.language)):
            return f"c|{flow.id}|{step.id}"
        if state.user_id in self._elsewhere:
            return None  # on a tool's screen: the text is for that screen (or a question)
        for row in self.step_rows(state, flow, step):
            for button in row:
                if fold(button.label) == folded:
                    return button.data
        catalog = self.core.catalog
        if folded in words(catalog, "flow.words.menu"):
            return "k|meny"
        if folded in words(catalog, "flow.words.back"):
            return f"s|{flow.id}|{step.id}|{BACK}"
        if folded in words(catalog, "flow.words.next"):
            return f"s|{flow.id}|{step.id}|{NEXT}"
        return None

    # -- rendering ------------------------------------------------------------------------------------------
    def step_rows(self, state, flow: Flow, step: FlowStep) -> list[list[Button]]:
        """The step's buttons in the fixed frame: own buttons, [back] [sources], [ask] [menu]."""
        lang = state.language
        rows = [[Button(pick(button.label, lang), self._button_data(flow, step, i, button))]
                for i, button in enumerate(step.buttons)]
        if needs_danger_button(flow, step):
            # Every walkthrough opens with a visible way to the help numbers (issue 8).
            rows.append([Button(self.core.catalog.get("safety.button.in_danger", lang), "k|fare")])
        navigation = []
        if step.back:
            navigation.append(Button(self._t("flow.button.back", lang), f"s|{flow.id}|{step.id}|{BACK}"))
        if step.passages:
            navigation.append(Button(self._t("flow.button.sources", lang), f"s|{flow.id}|{step.id}|{SOURCES}"))
        if navigation:
            rows.append(navigation)
        rows.append([Button(self.core.t("button.ask", lang), "a"), self.core.menu_button(lang)])
        return rows

    def step_buttons(self, state, flow: Flow, step: FlowStep) -> list[tuple[str, str]]:
        """(data, label) for every button shown on a step, in the order they are shown."""
        return [(button.data, button.label) for row in self.step_rows(state, flow, step) for button in row]

    def step_reply(self, state, flow: Flow, step: FlowStep, *, intro: bool = False, lead: str | None = None) -> Reply:
        lang = state.language
        self._elsewhere.pop(state.user_id, None)
        parts = [lead] if lead else []
        if intro:
            parts.append(pick(flow.title, lang))
        parts.append(pick(step.text, lang))
        if step.advice:
            parts.append(f"{self.core.t('advice_label', lang)} {pick(step.advice, lang)}")
        if step.score:
            parts.append(self._score_line(state.user_id, flow, lang))
        if step.is_end:
            parts.append(self._t("flow.end", lang, title=pick(flow.title, lang)))
        self.core.explain.saw(state.user_id, "\n".join(parts))
        return Reply("\n\n".join(parts), self.step_citations(state, step), self.step_rows(state, flow, step),
                     kind="flow_step")

    def sources_reply(self, state, flow: Flow, step: FlowStep) -> Reply:
        """The full list of a step's sources (the step itself shows one compact line per source)."""
        lang = state.language
        citations = self.step_citations(state, step)
        text = self._t("flow.sources_header" if citations else "flow.sources_none", lang)
        buttons = [[Button(self.core.t("button.resume", lang), f"c|{flow.id}|{step.id}"),
                    self.core.menu_button(lang)]]
        return Reply(text, citations, buttons, kind="sources")

    def step_citations(self, state, step: FlowStep) -> list[Citation]:
        if not step.passages:
            return []
        try:
            keys = passage_keys_for(step, state.language, self.document_language)
            return list(self.core.answerer.citations_for_keys(keys, self.core.retrieval_role(state)))
        except Exception:
            log.exception("looking up the passages of a flow step failed")
            return []

    # -- helpers ----------------------------------------------------------------------------------------------
    def _t(self, key: str, lang: str, **fmt) -> str:
        return self.core.catalog.get(key, lang, **fmt)

    @staticmethod
    def _button_data(flow: Flow, step: FlowStep, index: int, button) -> str:
        if button.command is not None:
            return f"k|{button.command}"  # the core runs the command; if it is not there, it says so calmly
        return f"s|{flow.id}|{step.id}|{index}"

    def document_language(self, doc_id: str) -> str | None:
        """The language of a document id (None if unknown), read once from the answerer."""
        if self._languages is None:
            try:
                self._languages = {str(doc.get("id")): str(doc.get("language") or "")
                                   for doc in self.core.answerer.sources()}
            except Exception:
                log.exception("listing the documents' languages failed")
                return None
        return self._languages.get(doc_id)

    def _record_answer(self, user_id: str, flow_id: str, step_id: str, correct: bool) -> None:
        tally = self._quiz.setdefault((user_id, flow_id), {})
        tally.setdefault(step_id, correct)  # the first answer counts; going back to change it does not
        self._quiz.move_to_end((user_id, flow_id))
        while len(self._quiz) > QUIZ_MEMORY:
            self._quiz.popitem(last=False)

    def _score_line(self, user_id: str, flow: Flow, lang: str) -> str:
        questions = [step.id for step in flow.steps.values() if step.is_question]
        tally = self._quiz.get((user_id, flow.id), {})
        if not questions or any(question not in tally for question in questions):
            return self._t("flow.score_unknown", lang)
        return self._t("flow.score", lang, correct=sum(tally[q] for q in questions), total=len(questions))
