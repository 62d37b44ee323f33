"""Free-text questions: the answerer's cited answer (or refusal) turned into a reply with its buttons."""

from __future__ import annotations

import logging

from bot.replies import Button, Reply
from bot.walkthrough import pick

log = logging.getLogger(__name__)


class Questions:
    """Answers what users type; the answerer decides, this module shapes the reply."""

    def __init__(self, core):
        self.core = core

    def answer(self, state, question: str) -> list[Reply]:
        core, lang = self.core, state.language
        try:
            answer = core.answerer.ask(question, role=core.retrieval_role(state), lang=lang)
        except Exception:
            log.exception("the answerer failed (question text not logged)")
            return [core.menu(state, lead=core.t("error", lang), kind="error")]
        core.store.record_question(bool(answer.answered))
        buttons: list[list[Button]] = []
        suggested = core.walk.flows.get(answer.suggested_flow or "")
        if suggested and suggested.id != state.flow_id and core.walk.allowed(suggested, state):
            label = core.t("button.start_flow", lang, title=pick(suggested.title, lang))
            buttons.append([Button(label, core.button_data("f", suggested.id))])
        buttons.append([core.walk.resume_button(state) or core.menu_button(lang)])
        if not answer.answered:
            return [Reply(answer.answer, [], buttons, kind="refusal")]
        citations = list(answer.citations)
        feedback_id = core.feedback.remember(state.user_id, citations) if citations else None
        return [Reply(answer.answer, citations, buttons, kind="answer", feedback_id=feedback_id)]
