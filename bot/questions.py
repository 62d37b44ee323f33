"""Free-text messages: help first for someone in danger, then an answer, a chat reply or a polite decline.

The answerer decides what a message is (bot/answer.py); this module shapes the reply: buttons that fit,
the user's language, follow-ups read together with the previous question. The previous question is kept in
memory for a few minutes only (never on disk) so "og hvis det er læreren?" can be understood.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from bot.answer import section_token
from bot.datafiles import read_yaml_mapping
from bot.errors import DocumentError

from bot.language import detect_language
from bot.replies import Button, Reply
from bot.roles import PRIMARY_FLOW, ROLE_INTENTS, STAFF_ROLES
from bot.walkthrough import pick

log = logging.getLogger(__name__)

RECENT_SECONDS = 10 * 60  # how long the last question is remembered for a follow-up
FOLLOW_UP_CHARS = 150  # a follow-up is short; a long message is a question of its own (and one embedding)
RECENT_USERS = 4096  # memory bound: the oldest topics are dropped first
LANGUAGE_INTENTS = {"english_please": "en", "norwegian_please": "nb", "nynorsk_please": "nn"}
EXPLAIN_AGAIN = ("simpler", "not_understood")
CONTEXT_INTENTS = ("help", "remember_case")  # chat intents whose nearest phrases are questions a case may ask too


@dataclass
class _Topic:
    question: str
    section: str | None


class _ShortMemory:
    """Per user, one value kept in memory (never on disk) for RECENT_SECONDS, at most RECENT_USERS users."""

    def __init__(self):
        self._items: OrderedDict[str, tuple[object, float]] = OrderedDict()

    def put(self, user_id: str, value) -> None:
        self._items[user_id] = (value, time.monotonic())
        self._items.move_to_end(user_id)
        while len(self._items) > RECENT_USERS:
            self._items.popitem(last=False)

    def get(self, user_id: str):
        value, at = self._items.get(user_id, (None, 0.0))
        if value is not None and time.monotonic() - at > RECENT_SECONDS:
            self._items.pop(user_id, None)
            return None
        return value

    def forget(self, user_id: str) -> None:
        self._items.pop(user_id, None)


class Distress:
    """Words that show worry or pain in a longer message (knowledge/scope/distress.yaml)."""

    def __init__(self, words: list[str], min_words: int):
        self.min_words = min_words
        self._pattern = re.compile(r"\b(?:" + "|".join(re.escape(w.casefold()) for w in words) + ")") if words else None

    @classmethod
    def load(cls, knowledge_dir: Path) -> "Distress":
        path = knowledge_dir / "scope" / "distress.yaml"
        data = read_yaml_mapping(path, required=False)
        words = data.get("words") or []
        if not isinstance(words, list) or not isinstance(data.get("min_words", 15), int):
            raise DocumentError(path, "needs 'words' (a list) and 'min_words' (a number)")
        return cls([str(w) for w in words], int(data.get("min_words", 15)))

    def heard(self, text: str) -> bool:
        """A longer message that carries worry: it deserves one sentence of acknowledgement first."""
        return bool(self._pattern) and len(text.split()) >= self.min_words and bool(
            self._pattern.search(text.casefold()))


class Questions:
    """Answers what users type; the answerer decides, this module shapes the reply."""

    def __init__(self, core):
        self.core = core
        self._recent = _ShortMemory()  # the last question and the section it led with, for a follow-up
        # Who the last urgent message read as written by, for the "what must the school do?" button after it
        # (only the role, never the message).
        self._writers = _ShortMemory()
        knowledge = getattr(core.settings, "knowledge_dir", None)
        self.distress = Distress.load(Path(knowledge)) if knowledge else Distress([], 0)

    # -- memory of the last question (never stored) ------------------------------------------------------
    def _remember(self, user_id: str, question: str, section: str | None) -> None:
        self._recent.put(user_id, _Topic(question, section))

    def _recall(self, user_id: str) -> _Topic | None:
        return self._recent.get(user_id)

    def forget_user(self, user_id: str) -> None:
        self._recent.forget(user_id)
        self._writers.forget(user_id)

    # -- the reply to a typed message ---------------------------------------------------------------------
    def answer(self, state, text: str, *, check_safety: bool = True) -> list[Reply]:
        core = self.core
        lang, lead_notes, offer = state.language, [], None
        written_in = detect_language(text)
        if written_in == "en" and lang != "en":
            lang, offer = "en", "en"
        elif written_in == "nn" and lang == "nb":
            # Clearly nynorsk words (bokmål is never read as nynorsk on the eval sets): answer as written.
            lang, offer = "nn", "nn"
        elif written_in == "other":
            lang = "en"
            lead_notes.append(core.catalog.get("answer.other_language", "en"))
        role_note = None
        try:
            stated = core.answerer.role_stated(text) if state.role is None else None
            if stated and not (stated in STAFF_ROLES and core.require_staff_proof):
                # «Jeg er ny lærer. Hva må jeg vite …?» says who asks: answer as that role, and say so last.
                state.role = stated
                role_note = core.catalog.get("chat.role_noted", lang, role=core.t(f"role.{stated}", lang))
            answer = core.answerer.ask(text, role=core.retrieval_role(state), lang=lang,
                                       writer_role=state.role, check_safety=check_safety)
            recent, asked = self._recall(state.user_id), text
            if answer.intent == "followup_meaning" and not core.explain.names_a_term(text):
                return self._explain(state, lang, answer.intent)  # "hva betyr det?" is about the last reply
            # Right after an answer, "what can I do now?" is about the case, not about the bot; only a listed
            # phrase ("hjelp", "husker du saken min?") surely means the bot.
            asks_on = (answer.kind == "chat" and answer.intent in CONTEXT_INTENTS
                       and core.answerer.known_phrase(text) is None)
            # A short question declined on its own («hvor lang tid har skolen på seg?») is about the case just asked
            # when it lies nearer a section's questions than any off-topic one.
            declined_near = (answer.kind == "decline" and recent is not None
                             and core.answerer.nearer_a_section_than_off_topic(text))
            if (answer.kind == "vague" or asks_on or declined_near) and recent and len(text) <= FOLLOW_UP_CHARS:
                # A short follow-up ("og hvis det er læreren?") is read together with the previous question.
                combined = core.answerer.ask(text, role=core.retrieval_role(state), lang=lang,
                                             writer_role=state.role, check_safety=False, context=recent.question,
                                             answered_before=recent.section)
                if combined.kind in ("answer", "vague"):
                    answer, asked = combined, f"{recent.question} {text}"
        except Exception:
            log.exception("the answerer failed (question text not logged)")
            return [core.menu(state, lead=core.t("error", state.language), kind="error")]
        if answer.kind == "urgent":
            core.explain.saw(state.user_id, answer.answer)  # "hva betyr det?" is now about the help reply
            return self._urgent(state, text, answer)
        term = core.explain.terms.asked_for(text)
        defined = core.explain.define(state, term, lang) if term else None
        if defined:  # "hva er en aktivitetsplan?": the term in plain words, with its source
            lines, citations = defined
            core.store.record_question(True)
            self._remember(state.user_id, text, answer.section)
            buttons = self._buttons(state, answer, lang, text)
            text_out = "\n\n".join(lead_notes + lines + [core.catalog.get("answer.general_rules", lang)]
                                     + [role_note] * bool(role_note))
            feedback_id = core.feedback.remember(state.user_id, citations)
            return [Reply(text_out, citations, buttons, kind="answer", feedback_id=feedback_id, lang=lang)]
        if answer.kind == "chat":
            return self._chat(state, answer)
        core.store.record_question(bool(answer.answered))
        buttons = self._buttons(state, answer, lang, text)
        if offer:
            key = "answer.switch_button" if offer == "en" else f"answer.switch_button_{offer}"
            buttons.insert(0, [Button(core.catalog.get(key, offer), f"l|{offer}")])
        if answer.answered and self.distress.heard(text):  # the person first, then the advice
            lead_notes.append(core.catalog.get("chat.acknowledge", lang))
        text_out = "\n\n".join(lead_notes + [answer.answer])
        core.explain.saw(state.user_id, answer.short or answer.answer if answer.kind == "vague" else text_out)
        if not answer.answered:
            if answer.kind == "decline" and core.answerer.nearer_a_section_than_off_topic(text):
                # «kan jeg bytte klasse?» may be about not being safe: the way in, not only a closed door.
                text_out, buttons = self._way_in(state, answer, lang, text_out, buttons)
            return [Reply(text_out, [], buttons, kind=answer.kind if answer.kind == "decline" else "refusal",
                          lang=lang)]
        self._remember(state.user_id, asked, answer.section)
        if answer.kind == "vague":
            text_out = "\n\n".join(lead_notes + [answer.short or answer.answer, core.catalog.get("chat.vague", lang)]
                                     + [role_note] * bool(role_note))
            return [Reply(text_out, list(answer.citations[:1]) if answer.short else list(answer.citations),
                          buttons, kind="vague", lang=lang)]
        if role_note:
            text_out = f"{text_out}\n\n{role_note}"
        citations = list(answer.citations)
        feedback_id = core.feedback.remember(state.user_id, citations) if citations else None
        return [Reply(text_out, citations, buttons, kind="answer", feedback_id=feedback_id, lang=lang)]

    def _buttons(self, state, answer, lang: str, text: str = "") -> list[list[Button]]:
        core = self.core
        rows: list[list[Button]] = []
        tool = core.answerer.router.tool(text)
        if tool in core.commands.tools:  # asked in so many words: "kan du skrive et brev til rektor?"
            rows.append([Button(core.catalog.get(f"answer.tool.{tool}", lang), core.button_data("k", tool))])
        flows = []
        suggested = core.walk.flows.get(answer.suggested_flow or "")
        if suggested and core.walk.allowed(suggested, state):
            flows.append(suggested)
        if answer.kind == "vague":
            flows += core.walk.offered(state, PRIMARY_FLOW.get(state.role or "parent"))[:3]
        resume = core.walk.resume_button(state)
        if resume:  # mid-walkthrough, "1" keeps meaning "continue where you were"
            rows.append([resume])
        for flow in dict.fromkeys(flows):
            if flow.id != state.flow_id:
                label = core.t("button.start_flow", lang, title=pick(flow.title, lang))
                rows.append([Button(label, core.button_data("f", flow.id))])
        for other in answer.see_also if answer.kind == "answer" else []:
            label = core.catalog.get("answer.see_also", lang, title=other.title)
            rows.append([Button(label, core.button_data("m", section_token(other.key)))])
        if not resume:
            rows.append([core.menu_button(lang)])
        return rows

    def _way_in(self, state, answer, lang: str, text_out: str, buttons: list) -> tuple[str, list]:
        """A decline close to what the bot covers, plus the walkthrough for the reader's role."""
        flow = self.core.walk.flows.get(PRIMARY_FLOW.get(state.role or answer.role, ""))
        if flow is None or not self.core.walk.allowed(flow, state) or flow.id == state.flow_id:
            return text_out, buttons
        label = self.core.t("button.start_flow", lang, title=pick(flow.title, lang))
        return (f"{text_out}\n\n{self.core.catalog.get('answer.decline_near', lang)}",
                [[Button(label, self.core.button_data("f", flow.id))], *buttons])

    def _urgent(self, state, text: str, answer) -> list[Reply]:
        """Help numbers first; then the offer to go on to what the school must do."""
        core, lang = self.core, answer.lang
        core.store.record_urgent()
        if answer.writer:
            self._writers.put(state.user_id, answer.writer)
        rows = [[Button(core.catalog.get("safety.button.go_on", lang), "x|go")]]
        rows.append([core.walk.resume_button(state) or core.menu_button(lang)])
        return [Reply(answer.answer, [], rows, kind="urgent", help=list(answer.help), lang=lang)]

    def _chat(self, state, answer) -> list[Reply]:
        core, lang, intent = self.core, answer.lang, answer.intent or "greeting"
        if intent in ROLE_INTENTS:
            role = ROLE_INTENTS[intent]
            state.role = role
            lead = core.catalog.get("chat.role_set", lang, role=core.t(f"role.{role}", lang))
            return core.staff.ask_for_code(state, lead) or [core.menu(state, lead=lead)]
        if intent in LANGUAGE_INTENTS:
            state.language = LANGUAGE_INTENTS[intent]
            return [core.menu(state, lead=core.catalog.get("chat.language_set", state.language))]
        if intent == "navigation_menu":
            return [core.menu(state)]
        if intent in ("navigation_back", "navigation_next"):
            current = core.walk.current(state)
            if current is not None:
                return [core.walk.step_reply(state, *current)]
            return [core.menu(state)]
        if intent == "help":
            return [core.menu(state, lead=core.t("help", lang))]
        if intent in EXPLAIN_AGAIN:
            return self._explain(state, lang, intent)
        key = f"chat.{intent}" if f"chat.{intent}" in core.catalog else "chat.greeting"
        if intent in ("greeting", "not_understood", "not_words", "who_are_you"):
            return [core.menu(state, lead=core.catalog.get(key, lang))]
        back = core.walk.resume_button(state) or core.menu_button(lang)
        return [Reply(core.catalog.get(key, lang), buttons=[[back]])]

    def _explain(self, state, lang: str, intent: str) -> list[Reply]:
        """"hva betyr det?", "forklar enklere", "jeg forstår ikke": the terms of the last reply in plain words, each
        with its source; without such terms, the short answer of the last topic; else ask what to explain."""
        core = self.core
        back = [[core.walk.resume_button(state) or core.menu_button(lang)]]
        explained = core.explain.explain(state, lang)
        if explained:
            lines, citations = explained
            text = "\n\n".join([core.catalog.get("chat.meaning", lang), *lines,
                                  core.catalog.get("chat.meaning_more", lang)])
            return [Reply(text, citations, back, kind="explain", lang=lang)]
        recent = self._recall(state.user_id)
        short = core.answerer.short_answer(recent.section, lang) if recent else None
        if short and intent != "followup_meaning":
            return [Reply(f"{core.catalog.get('chat.simpler', lang)} {short}", buttons=back, lang=lang)]
        key = {"simpler": "chat.simpler_none", "not_understood": "chat.not_understood"}.get(intent, "chat.meaning_none")
        return [core.menu(state, lead=core.catalog.get(key, lang))]

    # -- buttons and commands ------------------------------------------------------------------------------
    def see_also(self, state, args: list[str]) -> list[Reply] | None:
        """m|token: the answer of another section the last answer offered (None: stale or forged data)."""
        core = self.core
        if len(args) != 1:
            return None
        lang = state.language
        try:
            answer = core.answerer.answer_section(args[0], core.retrieval_role(state), lang)
        except Exception:
            log.exception("the answerer failed on a see-also button")
            return [core.menu(state, lead=core.t("error", lang), kind="error")]
        if answer is None:
            return None
        self._remember(state.user_id, answer.question, answer.section)  # "og hvis …?" now follows this section
        core.explain.saw(state.user_id, answer.answer)
        citations = list(answer.citations)
        feedback_id = core.feedback.remember(state.user_id, citations) if citations else None
        return [Reply(answer.answer, citations, self._buttons(state, answer, lang), kind="answer",
                      feedback_id=feedback_id, lang=lang)]

    def on_button(self, state, args: list[str]) -> list[Reply] | None:
        """x|go: after help numbers, go on to the normal answer to the same question (safety already shown)."""
        if args == ["go"]:
            # What the school must do, step by step: the walkthrough for the user's role, or, before one is
            # chosen, for whom the message read as written by (the message itself is not kept, so it cannot be
            # re-read). Asking for the role first would leave a frightened child at a menu.
            role = state.role or self._writers.get(state.user_id)
            flow = self.core.walk.flows.get(PRIMARY_FLOW.get(role or "", ""))
            if flow is None or not self.core.walk.allowed(flow, state):
                return self.core.commands.run(state, "meld", "")
            return self.core.walk.start(state, flow)
        return None

    def danger_help(self, state) -> list[Reply]:
        """/fare and the "Er noen i fare nå?" buttons: the help numbers for anyone in danger now."""
        core, lang = self.core, state.language
        help_reply = core.answerer.general_help(state.role, lang)
        if help_reply is None:
            return [core.menu(state, lead=core.t("limits", lang))]
        core.store.record_urgent()
        rows = [[core.walk.resume_button(state) or core.menu_button(lang)]]
        return [Reply(help_reply.text, [], rows, kind="urgent", help=list(help_reply.help))]
