"""Running a walkthrough (flow) for a user: starting it, showing a step, pressing its buttons.

Button data this module builds and accepts (see bot/dialog.py for the full list):
    s|<flow>|<step>|<i>   press button i of <step>; valid only while <step> is the user's current step
    c|<flow>|<step>       show the user's current step again (same check)
    f|<flow>              start a flow (it must exist and be meant for the user's role)
"""

from __future__ import annotations

import logging

from bot.flows import Flow, FlowStep
from bot.i18n import DEFAULT_LANGUAGE
from bot.replies import Button, Citation, Reply

log = logging.getLogger(__name__)


def pick(texts: dict, lang: str) -> str:
    """A flow text in `lang`, falling back to bokmål (flows validate all three, this is belt and braces)."""
    return texts.get(lang) or texts.get(DEFAULT_LANGUAGE) or next(iter(texts.values()), "")


class Walkthroughs:
    """The flows offered to users and the user's position in one of them (kept in the user's state)."""

    def __init__(self, core, flows: dict[str, Flow]):
        self.core = core
        self.flows = dict(flows)

    # -- where the user is ----------------------------------------------------------------------------------
    def current(self, state) -> tuple[Flow, FlowStep] | None:
        flow = self.flows.get(state.flow_id or "")
        step = flow.steps.get(state.step_id or "") if flow else None
        return (flow, step) if step else None

    def allowed(self, flow: Flow, state) -> bool:
        return (state.role or "parent") in flow.roles

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
        return [self.step_reply(state, flow, flow.steps[flow.start], intro=True)]

    def show_current(self, state, flow_id: str, step_id: str) -> list[Reply] | None:
        if (state.flow_id, state.step_id) != (flow_id, step_id) or self.current(state) is None:
            return None
        return [self.step_reply(state, *self.current(state))]

    def press(self, state, flow_id: str, step_id: str, index: str) -> list[Reply] | None:
        """A step button; None when the press does not fit the user's state (the core says "expired")."""
        current = self.current(state)
        if current is None or (state.flow_id, state.step_id) != (flow_id, step_id):
            return None
        flow, step = current
        if not (index.isascii() and index.isdigit() and int(index) < len(step.buttons)):
            return None
        button = step.buttons[int(index)]
        if button.next is not None:
            state.step_id = button.next
            return [self.step_reply(state, flow, flow.steps[button.next])]
        target = self.flows.get(button.flow or "")
        if target is None:  # content points at a flow that is not loaded; `kap12 flows check` reports it
            return None
        # The flow's author linked it, so the target's role list does not gate it.
        return self.start(state, target)

    def quit(self, state) -> None:
        state.flow_id = state.step_id = None

    def match_label(self, state, folded: str, fold) -> str | None:
        """Button data of a visible button of the current step whose label the user typed."""
        current = self.current(state)
        if current is None:
            return None
        flow, step = current
        for data, label in self.step_buttons(state, flow, step):
            if fold(label) == folded:
                return data
        if folded == fold(self.core.t("button.resume", state.language)):
            return f"c|{flow.id}|{step.id}"
        return None

    # -- rendering ------------------------------------------------------------------------------------------
    def step_buttons(self, state, flow: Flow, step: FlowStep) -> list[tuple[str, str]]:
        """(data, label) for every button shown on a step, the core's own ones last."""
        lang = state.language
        own = [(self.core.button_data("s", flow.id, step.id, str(i)), pick(b.label, lang))
               for i, b in enumerate(step.buttons)]
        return own + [("a", self.core.t("button.ask", lang)), ("q", self.core.t("button.quit", lang))]

    def step_reply(self, state, flow: Flow, step: FlowStep, *, intro: bool = False) -> Reply:
        lang = state.language
        parts = [pick(flow.title, lang)] if intro else []
        parts.append(pick(step.text, lang))
        if step.advice:
            parts.append(f"{self.core.t('advice_label', lang)} {pick(step.advice, lang)}")
        if not step.buttons:
            parts.append(self.core.t("flow_end", lang))
        pairs = self.step_buttons(state, flow, step)
        rows = [[Button(label, data)] for data, label in pairs[:-2]]
        rows.append([Button(label, data) for data, label in pairs[-2:]])
        return Reply("\n\n".join(parts), self.step_citations(state, step), rows, kind="flow_step")

    def step_citations(self, state, step: FlowStep) -> list[Citation]:
        if not step.passages:
            return []
        try:
            return list(self.core.answerer.citations_for_keys(list(step.passages), self.core.retrieval_role(state)))
        except Exception:
            log.exception("looking up the passages of a flow step failed")
            return []
