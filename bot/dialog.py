"""The channel-agnostic conversation core: text, button presses and commands in; `Reply` objects out.

Channels (terminal, Telegram) only translate between their medium and this module. Everything users read
comes from the UI catalogue (`knowledge/ui/dialog.<lang>.yaml`); walkthrough content comes from the flows;
answers come from the Answerer. State per user (role, language, position in a flow) lives in the store, so
a restart in the middle of a flow resumes at the same step.

Button data is built and parsed only here. Every string is at most 64 bytes (Telegram's callback limit):

    s|<flow>|<step>|<i>   press button i of <step>; valid only while <step> is the user's current step
    c|<flow>|<step>       resume the flow at the user's current step (same check)
    f|<flow>              start a flow (it must exist and be meant for the user's role)
    r|<role>              choose role: parent | pupil | staff | new_teacher
    l|<lang>              choose language: nb | nn | en
    k|<command>           run a command (meny, meld, rolle, sprak, hjelp, kilder, personvern, start)
    a                     "ask a question" (the flow position is kept)
    q                     leave the current flow
    v|+|<id> / v|-|<id>   feedback on an answer (channels may instead call `Dialog.vote`)

Anything else, or a press that no longer fits the user's state, gets a calm "this button has expired"
and the main menu.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.flows import Flow, FlowStep
from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES, Catalog
from bot.replies import Button, Citation, Reply
from bot.roles import ROLES
from bot.store import Store, UserState

log = logging.getLogger(__name__)

MAX_DATA_BYTES = 64  # Telegram's callback-data limit; the core keeps every button within it
MAX_QUESTION_CHARS = 4000  # longer input is cut before it reaches the answerer
FEEDBACK_MEMORY = 2048  # answers whose 👍/👎 still count; older ones say "expired"
MAX_CODE_ATTEMPTS = 5  # wrong staff codes per user before the bot stops asking (per process)
PURGE_EVERY = timedelta(hours=24)
STATE_FILE = "state.sqlite3"  # under settings.data_dir; every channel shares it

# The walkthrough /meld starts for each role; if it is missing, the first flow offered to the role is used.
PRIMARY_FLOW = {"parent": "forelder-utrygg", "staff": "ansatt-melde", "new_teacher": "nyutdannet"}

COMMANDS = ("start", "hjelp", "meld", "rolle", "sprak", "kilder", "personvern", "slett", "meny")
COMMAND_ALIASES = {
    "språk": "sprak", "help": "hjelp", "language": "sprak", "role": "rolle", "sources": "kilder",
    "privacy": "personvern", "delete": "slett", "menu": "meny",
}
# Commands a button may run ("k|…"). Not slett: deleting everything takes a typed command.
BUTTON_COMMANDS = ("start", "hjelp", "meld", "rolle", "sprak", "kilder", "personvern", "meny")

SOURCE_KINDS = ("law-guide", "plan", "routine", "guidance", "municipal-decision")

# Every catalogue key the core uses, without the "dialog." prefix. A test checks the catalogue against it.
KEYS = (
    "greeting", "limits", "ask_role", "language_hint", "role_set", "role_current",
    "role.parent", "role.pupil", "role.staff", "role.new_teacher",
    "choose_language", "language_set", "language.nb", "language.nn", "language.en",
    "menu", "menu_no_flows", "ask_prompt", "advice_label", "flow_end", "flow_quit", "flow_not_for_role",
    "expired", "empty", "too_long", "error", "unknown_command", "help",
    "button.ask", "button.quit", "button.resume", "button.menu", "button.change_role",
    "button.change_language", "button.start_flow", "button.continue_public", "button.start_again",
    "button.vote_up", "button.vote_down",
    "staff_code_prompt", "staff_code_wrong", "staff_code_locked", "staff_verified", "staff_proof_unavailable",
    "vote_thanks", "vote_already", "vote_expired",
    "sources_header", "sources_item", "sources_staff", "sources_none",
    "kind.law-guide", "kind.plan", "kind.routine", "kind.guidance", "kind.municipal-decision",
    "privacy", "privacy_stored", "privacy_nothing", "privacy_item.role", "privacy_item.language",
    "privacy_item.flow", "privacy_item.staff_verified", "privacy_item.updated", "yes", "no",
    "forgotten", "forgotten_nothing",
    "console.sources", "console.choose", "console.no_option", "console.vote_prompt", "console.startup_error",
)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class _Feedback:
    """What a feedback id stands for: who may vote, and the cited passages (id, document)."""

    user_id: str
    passages: tuple[tuple[str, str], ...]
    voted: bool = False


def pick(texts: dict, lang: str) -> str:
    """A flow text in `lang`, falling back to bokmål (flows validate all three, this is belt and braces)."""
    return texts.get(lang) or texts.get(DEFAULT_LANGUAGE) or next(iter(texts.values()), "")


def clean_text(text) -> str:
    """Drop control characters and lone surrogates, normalise line ends, trim; never raises."""
    if not isinstance(text, str):
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = _CONTROL.sub("", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cs")
    return text.strip()


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def button_data(*parts: str) -> str:
    """Join parts into button data; more than 64 bytes is a bug (ids are length-checked by the flow loader)."""
    data = "|".join(parts)
    if len(data.encode("utf-8")) > MAX_DATA_BYTES:
        raise ValueError(f"button data longer than {MAX_DATA_BYTES} bytes: {data!r}")
    return data


def build_dialog(settings, *, require_staff_proof: bool = False, catalog: Catalog | None = None) -> "Dialog":
    """The real core from settings: index-backed Answerer, flows and catalogue from knowledge/, SQLite state."""
    from bot.answer import Answerer  # heavy (index, embedder): only when a real conversation starts
    from bot.flows import load_flows
    from bot.store import SqliteStore

    return Dialog(
        settings,
        Answerer.from_settings(settings),
        load_flows(settings.knowledge_dir / "flows"),
        catalog or Catalog.load(settings.knowledge_dir / "ui"),
        SqliteStore(settings.data_dir / STATE_FILE),
        require_staff_proof=require_staff_proof,
    )


class Dialog:
    """One conversation core shared by all users of a channel.

    Args:
        settings: `bot.config.Settings` (uses staff_invite_code and state_retention_days).
        answerer: has ask(question, role, lang), citations_for_keys(keys, role) and sources().
        flows: walkthroughs by id, from `bot.flows.load_flows`.
        catalog: the UI catalogue; must hold every `dialog.*` key in `KEYS`.
        store: where user state and anonymous statistics live.
        require_staff_proof: staff and new teachers only get staff passages after proving it
            (invite code or `prove_staff`); the terminal chat runs without it.
    """

    def __init__(self, settings, answerer, flows: dict[str, Flow], catalog: Catalog, store: Store, *,
                 require_staff_proof: bool = False):
        missing = sorted(key for key in KEYS if f"dialog.{key}" not in catalog)
        if missing:
            raise ValueError(f"the UI catalogue lacks {', '.join('dialog.' + k for k in missing)}; "
                             "add them to knowledge/ui/dialog.<lang>.yaml")
        self.settings = settings
        self.answerer = answerer
        self.flows = dict(flows)
        self.catalog = catalog
        self.store = store
        self.require_staff_proof = require_staff_proof
        self._feedback: OrderedDict[str, _Feedback] = OrderedDict()
        self._awaiting_code: set[str] = set()  # users asked for the invite code; memory only, never stored
        self._code_attempts: dict[str, int] = {}
        self._last_purge: datetime | None = None

    # -- public API -------------------------------------------------------------------------------------
    def handle_text(self, user_id: str, text: str, *, question_only: bool = False) -> list[Reply]:
        """A message the user typed: a staff code, a button label, or a question.

        Args:
            question_only: treat the text as a question whatever it says (group chats, where a typed
                button label must not move the user's private walkthrough on).
        """
        if question_only:
            return self._run(user_id, lambda state: self._answer(state, clean_text(text)[:MAX_QUESTION_CHARS]))
        return self._run(user_id, lambda state: self._on_text(state, text))

    def handle_button(self, user_id: str, data: str) -> list[Reply]:
        """A button press with data built by this class; stale or forged data gets a calm reply and the menu."""
        return self._run(user_id, lambda state: self._on_button(state, data))

    def handle_command(self, user_id: str, command: str, arg: str = "") -> list[Reply]:
        """A command without its slash (start, hjelp, meld, rolle, sprak, kilder, personvern, slett, meny)."""
        name = self._command_name(command)
        if name == "slett":
            return self._forget(user_id)
        return self._run(user_id, lambda state: self._on_command(state, name, arg))

    def vote(self, user_id: str, feedback_id: str, up: bool) -> list[Reply]:
        """👍/👎 on an answer: stores only the cited passages, the vote and a timestamp."""
        state = self._load(user_id)
        return self._vote(state, feedback_id, up)

    def prove_staff(self, user_id: str) -> None:
        """The channel vouches for this user (e.g. a Telegram id on the staff allow-list)."""
        state = self._load(user_id)
        if not state.staff_verified:
            state.staff_verified = True
            self.store.save_user(state)

    def language(self, user_id: str) -> str:
        """The user's language, for a channel's own labels (nb for someone unknown)."""
        return self._load(user_id).language

    def role_for_retrieval(self, user_id: str) -> str:
        """The role the answerer gets for this user: a claimed staff role counts only once proven."""
        return self._retrieval_role(self._load(user_id))

    # -- state --------------------------------------------------------------------------------------------
    def _run(self, user_id: str, handler) -> list[Reply]:
        self._maybe_purge()
        state = self._load(user_id)
        replies = handler(state)
        # Touch existing rows (keeps an active user from being purged); create one only when there is
        # something to remember, so a passer-by who asks one question leaves nothing behind.
        if state.created_at is not None or state != UserState(user_id=user_id):
            self.store.save_user(state)
        return replies

    def _load(self, user_id: str) -> UserState:
        state = self.store.get_user(user_id) or UserState(user_id=user_id)
        if state.flow_id is not None and self._current_step(state) is None:
            # The flow or step was removed from the content since; start over from the menu.
            state.flow_id = state.step_id = None
        return state

    def _maybe_purge(self) -> None:
        now = datetime.now(UTC)
        if self._last_purge is None or now - self._last_purge > PURGE_EVERY:
            self._last_purge = now
            removed = self.store.purge_idle(self.settings.state_retention_days)
            if removed:
                log.info("deleted the state of %d idle users", removed)

    def _forget(self, user_id: str) -> list[Reply]:
        lang = self._load(user_id).language  # reply in the language the user had
        self._awaiting_code.discard(user_id)
        self._code_attempts.pop(user_id, None)
        for feedback_id in [k for k, v in self._feedback.items() if v.user_id == user_id]:
            del self._feedback[feedback_id]
        existed = self.store.forget(user_id)
        text = self._t("forgotten" if existed else "forgotten_nothing", lang)
        return [Reply(text, buttons=[[Button(self._t("button.start_again", lang), button_data("k", "start"))]])]

    def _role(self, state: UserState) -> str:
        return state.role or "parent"

    def _retrieval_role(self, state: UserState) -> str:
        role = self._role(state)
        if role != "parent" and self.require_staff_proof and not state.staff_verified:
            return "parent"
        return role

    def _current_step(self, state: UserState) -> tuple[Flow, FlowStep] | None:
        flow = self.flows.get(state.flow_id or "")
        step = flow.steps.get(state.step_id or "") if flow else None
        return (flow, step) if step else None

    def _allowed(self, flow: Flow, state: UserState) -> bool:
        return self._role(state) in flow.roles

    def _flows_for(self, state: UserState) -> list[Flow]:
        role = self._role(state)
        offered = [flow for flow in self.flows.values() if role in flow.roles]
        primary = PRIMARY_FLOW.get(role)
        return sorted(offered, key=lambda flow: flow.id != primary)  # stable: the primary flow first

    # -- text -------------------------------------------------------------------------------------------
    def _on_text(self, state: UserState, raw) -> list[Reply]:
        lang = state.language
        text = clean_text(raw)
        if not text:
            return [self._menu(state, lead=self._t("empty", lang))]
        code_replies = self._check_staff_code(state, text)
        if code_replies is not None:
            return code_replies
        pressed = self._match_label(state, text)
        if pressed is not None:
            return self._on_button(state, pressed)
        replies = []
        if len(text) > MAX_QUESTION_CHARS:
            replies.append(Reply(self._t("too_long", lang, limit=MAX_QUESTION_CHARS)))
            text = text[:MAX_QUESTION_CHARS]
        return replies + self._answer(state, text)

    def _match_label(self, state: UserState, text: str) -> str | None:
        """Button data of a visible button of the current step whose label the user typed."""
        current = self._current_step(state)
        if current is None:
            return None
        flow, step = current
        folded = _fold(text)
        for data, label in self._step_buttons(state, flow, step):
            if _fold(label) == folded:
                return data
        if folded == _fold(self._t("button.resume", state.language)):
            return button_data("c", flow.id, step.id)
        return None

    def _check_staff_code(self, state: UserState, text: str) -> list[Reply] | None:
        """While the bot waits for the invite code, a typed text is that code (right or wrong), not a question."""
        if state.user_id not in self._awaiting_code:
            return None
        lang = state.language
        secret = self.settings.staff_invite_code
        if secret is None or state.staff_verified or self._role(state) == "parent":
            self._awaiting_code.discard(state.user_id)
            return None
        if hmac.compare_digest(text.encode("utf-8"), secret.get_secret_value().strip().encode("utf-8")):
            self._awaiting_code.discard(state.user_id)
            self._code_attempts.pop(state.user_id, None)
            state.staff_verified = True
            return [self._menu(state, lead=self._t("staff_verified", lang))]
        attempts = self._code_attempts.get(state.user_id, 0) + 1
        self._code_attempts[state.user_id] = attempts
        if attempts >= MAX_CODE_ATTEMPTS:
            self._awaiting_code.discard(state.user_id)
            return [self._menu(state, lead=self._t("staff_code_locked", lang))]
        keep_public = Button(self._t("button.continue_public", lang), button_data("k", "meny"))
        return [Reply(self._t("staff_code_wrong", lang), buttons=[[keep_public]])]

    def _answer(self, state: UserState, question: str) -> list[Reply]:
        lang = state.language
        try:
            answer = self.answerer.ask(question, role=self._retrieval_role(state), lang=lang)
        except Exception:
            log.exception("the answerer failed (question text not logged)")
            return [self._menu(state, lead=self._t("error", lang), kind="error")]
        self.store.record_question(bool(answer.answered))
        buttons: list[list[Button]] = []
        suggested = self.flows.get(answer.suggested_flow or "")
        if suggested and suggested.id != state.flow_id and self._allowed(suggested, state):
            label = self._t("button.start_flow", lang, title=pick(suggested.title, lang))
            buttons.append([Button(label, button_data("f", suggested.id))])
        buttons.append([self._resume_button(state) or self._menu_button(lang)])
        citations = list(answer.citations) if answer.answered else []
        if not answer.answered:
            return [Reply(answer.answer, [], buttons, kind="refusal")]
        feedback_id = self._remember_feedback(state.user_id, citations) if citations else None
        return [Reply(answer.answer, citations, buttons, kind="answer", feedback_id=feedback_id)]

    # -- feedback -----------------------------------------------------------------------------------------
    def _remember_feedback(self, user_id: str, citations: Sequence[Citation]) -> str:
        feedback_id = secrets.token_urlsafe(6)  # 8 URL-safe characters, fits any callback format
        passages = tuple((c.passage_id, c.document) for c in citations)
        self._feedback[feedback_id] = _Feedback(user_id, passages)
        while len(self._feedback) > FEEDBACK_MEMORY:
            self._feedback.popitem(last=False)
        return feedback_id

    def _vote(self, state: UserState, feedback_id, up: bool) -> list[Reply]:
        lang = state.language
        entry = self._feedback.get(feedback_id) if isinstance(feedback_id, str) else None
        if entry is None or entry.user_id != state.user_id:
            return [Reply(self._t("vote_expired", lang))]
        if entry.voted:
            return [Reply(self._t("vote_already", lang))]
        entry.voted = True
        self.store.record_vote([p for p, _ in entry.passages], bool(up), documents=[d for _, d in entry.passages])
        return [Reply(self._t("vote_thanks", lang))]

    # -- buttons ------------------------------------------------------------------------------------------
    def _on_button(self, state: UserState, data) -> list[Reply]:
        self._awaiting_code.discard(state.user_id)
        if not isinstance(data, str) or len(data.encode("utf-8", "replace")) > MAX_DATA_BYTES:
            return self._expired(state)
        kind, *args = data.split("|")
        if kind == "s" and len(args) == 3:
            return self._press_step_button(state, *args)
        if kind == "c" and len(args) == 2 and (state.flow_id, state.step_id) == tuple(args):
            flow, step = self._current_step(state)
            return [self._step_reply(state, flow, step)]
        if kind == "f" and len(args) == 1 and args[0] in self.flows:
            flow = self.flows[args[0]]
            if not self._allowed(flow, state):
                return [self._menu(state, lead=self._t("flow_not_for_role", state.language))]
            return self._start_flow(state, flow)
        if kind == "r" and len(args) == 1 and args[0] in ROLES:
            return self._choose_role(state, args[0])
        if kind == "l" and len(args) == 1 and args[0] in LANGUAGES:
            return self._choose_language(state, args[0])
        if kind == "k" and len(args) == 1 and args[0] in BUTTON_COMMANDS:
            return self._on_command(state, args[0], "")
        if kind == "a" and not args:
            buttons = [[self._resume_button(state) or self._menu_button(state.language)]]
            return [Reply(self._t("ask_prompt", state.language), buttons=buttons)]
        if kind == "q" and not args:
            state.flow_id = state.step_id = None
            return [self._menu(state, lead=self._t("flow_quit", state.language))]
        if kind == "v" and len(args) == 2 and args[0] in ("+", "-"):
            return self._vote(state, args[1], args[0] == "+")
        return self._expired(state)

    def _press_step_button(self, state: UserState, flow_id: str, step_id: str, index: str) -> list[Reply]:
        current = self._current_step(state)
        if current is None or (state.flow_id, state.step_id) != (flow_id, step_id):
            return self._expired(state)
        flow, step = current
        if not (index.isascii() and index.isdigit() and int(index) < len(step.buttons)):
            return self._expired(state)
        button = step.buttons[int(index)]
        if button.next is not None:
            state.step_id = button.next
            return [self._step_reply(state, flow, flow.steps[button.next])]
        target = self.flows.get(button.flow or "")
        if target is None:  # content points at a flow that is not loaded; `kap12 flows check` reports it
            return self._expired(state)
        # The flow's author linked it, so the target's role list does not gate it.
        return self._start_flow(state, target)

    def _expired(self, state: UserState) -> list[Reply]:
        return [self._menu(state, lead=self._t("expired", state.language))]

    # -- commands -----------------------------------------------------------------------------------------
    @staticmethod
    def _command_name(command) -> str:
        name = str(command or "").strip().lstrip("/").split("@", 1)[0].casefold()
        return COMMAND_ALIASES.get(name, name)

    def _on_command(self, state: UserState, name: str, arg: str) -> list[Reply]:
        self._awaiting_code.discard(state.user_id)
        lang = state.language
        if name == "start":
            return self._start(state, clean_text(arg))
        if name == "hjelp":
            return [self._menu(state, lead=self._t("help", lang))]
        if name == "meld":
            offered = self._flows_for(state)
            if not offered:
                return [self._menu(state, lead=self._t("menu_no_flows", lang))]
            return self._start_flow(state, offered[0])
        if name == "rolle":
            return [self._role_question(state, self._t("ask_role", lang))]
        if name == "sprak":
            buttons = [[Button(self._t(f"language.{code}", lang), button_data("l", code))] for code in LANGUAGES]
            return [Reply(self._t("choose_language", lang), buttons=buttons)]
        if name == "kilder":
            return [self._sources(state)]
        if name == "personvern":
            return [self._privacy(state)]
        if name == "meny":
            return [self._menu(state)]
        return [self._menu(state, lead=self._t("unknown_command", lang))]

    def _start(self, state: UserState, payload: str) -> list[Reply]:
        lang = state.language
        intro = "\n\n".join((self._t("greeting", lang), self._t("limits", lang)))
        flow = self.flows.get(payload) if payload else None
        if flow is not None and self._allowed(flow, state):
            return [Reply(intro)] + self._start_flow(state, flow)  # deep link, e.g. a poster's QR code
        if state.role is None:
            text = "\n\n".join((intro, self._t("ask_role", lang), self._t("language_hint", lang)))
            return [self._role_question(state, text)]
        current = self._t("role_current", lang, role=self._t(f"role.{state.role}", lang))
        return [self._menu(state, lead=f"{intro}\n\n{current}")]

    def _role_question(self, state: UserState, text: str) -> Reply:
        lang = state.language
        buttons = [[Button(self._t(f"role.{role}", lang), button_data("r", role))] for role in ROLES]
        return Reply(text, buttons=buttons, kind="menu")

    def _choose_role(self, state: UserState, role: str) -> list[Reply]:
        lang = state.language
        state.role = role
        current = self._current_step(state)
        if current is not None and not self._allowed(current[0], state):
            state.flow_id = state.step_id = None
        lead = self._t("role_set", lang, role=self._t(f"role.{role}", lang))
        if role != "parent" and self.require_staff_proof and not state.staff_verified:
            can_try = (self.settings.staff_invite_code is not None
                       and self._code_attempts.get(state.user_id, 0) < MAX_CODE_ATTEMPTS)
            if can_try:
                self._awaiting_code.add(state.user_id)
                keep_public = Button(self._t("button.continue_public", lang), button_data("k", "meny"))
                text = f"{lead}\n\n{self._t('staff_code_prompt', lang)}"
                return [Reply(text, buttons=[[keep_public]])]
            lead = f"{lead}\n\n{self._t('staff_proof_unavailable', lang)}"
        return [self._menu(state, lead=lead)]

    def _choose_language(self, state: UserState, lang: str) -> list[Reply]:
        state.language = lang
        lead = self._t("language_set", lang, language=self._t(f"language.{lang}", lang))
        current = self._current_step(state)
        if current is not None:  # show where the user is, now in the new language
            return [Reply(lead), self._step_reply(state, *current)]
        return [self._menu(state, lead=lead)]

    def _sources(self, state: UserState) -> Reply:
        lang = state.language
        try:
            sources = list(self.answerer.sources())
        except Exception:
            log.exception("listing the sources failed")
            return self._menu(state, lead=self._t("error", lang), kind="error")
        if not sources:
            return Reply(self._t("sources_none", lang), buttons=[[self._menu_button(lang)]])
        lines = [self._t("sources_header", lang)]
        for source in sources:
            kind = str(source.get("kind") or "")
            kind_label = self._t(f"kind.{kind}", lang) if kind in SOURCE_KINDS else kind
            line = self._t("sources_item", lang, title=source.get("title") or source.get("id") or "?",
                           kind=kind_label, updated=source.get("updated") or "–")
            if source.get("audience") == "staff":
                line += " " + self._t("sources_staff", lang)
            if source.get("url"):
                line += f"\n{source['url']}"
            lines.append(line)
        return Reply("\n\n".join(lines), buttons=[[self._menu_button(lang)]])

    def _privacy(self, state: UserState) -> Reply:
        lang = state.language
        parts = [self._t("privacy", lang, days=self.settings.state_retention_days)]
        stored = self.store.export_user(state.user_id)
        if stored:
            flow = self.flows.get(state.flow_id or "")
            items = [
                self._t("privacy_item.role", lang,
                        role=self._t(f"role.{state.role}", lang) if state.role else "–"),
                self._t("privacy_item.language", lang, language=self._t(f"language.{state.language}", lang)),
                self._t("privacy_item.flow", lang,
                        flow=f"{pick(flow.title, lang)} ({state.step_id})" if flow else "–"),
                self._t("privacy_item.staff_verified", lang,
                        value=self._t("yes" if state.staff_verified else "no", lang)),
                self._t("privacy_item.updated", lang, time=stored.get("updated_at") or "–"),
            ]
            parts.append(self._t("privacy_stored", lang) + "\n" + "\n".join(f"• {item}" for item in items))
        else:
            parts.append(self._t("privacy_nothing", lang))
        return Reply("\n\n".join(parts), buttons=[[self._menu_button(lang)]])

    # -- flows --------------------------------------------------------------------------------------------
    def _start_flow(self, state: UserState, flow: Flow) -> list[Reply]:
        state.flow_id, state.step_id = flow.id, flow.start
        return [self._step_reply(state, flow, flow.steps[flow.start], intro=True)]

    def _step_buttons(self, state: UserState, flow: Flow, step: FlowStep) -> list[tuple[str, str]]:
        """(data, label) for every button shown on a step, the core's own ones last."""
        lang = state.language
        own = [(button_data("s", flow.id, step.id, str(i)), pick(b.label, lang)) for i, b in enumerate(step.buttons)]
        return own + [("a", self._t("button.ask", lang)), ("q", self._t("button.quit", lang))]

    def _step_reply(self, state: UserState, flow: Flow, step: FlowStep, *, intro: bool = False) -> Reply:
        lang = state.language
        parts = [pick(flow.title, lang)] if intro else []
        parts.append(pick(step.text, lang))
        if step.advice:
            parts.append(f"{self._t('advice_label', lang)} {pick(step.advice, lang)}")
        if not step.buttons:
            parts.append(self._t("flow_end", lang))
        pairs = self._step_buttons(state, flow, step)
        rows = [[Button(label, data)] for data, label in pairs[:-2]]
        rows.append([Button(label, data) for data, label in pairs[-2:]])
        return Reply("\n\n".join(parts), self._step_citations(state, step), rows, kind="flow_step")

    def _step_citations(self, state: UserState, step: FlowStep) -> list[Citation]:
        if not step.passages:
            return []
        try:
            return list(self.answerer.citations_for_keys(list(step.passages), self._retrieval_role(state)))
        except Exception:
            log.exception("looking up the passages of a flow step failed")
            return []

    # -- small builders -----------------------------------------------------------------------------------
    def _t(self, key: str, lang: str, **fmt) -> str:
        return self.catalog.get(f"dialog.{key}", lang, **fmt)

    def _menu_button(self, lang: str) -> Button:
        return Button(self._t("button.menu", lang), button_data("k", "meny"))

    def _resume_button(self, state: UserState) -> Button | None:
        if self._current_step(state) is None:
            return None
        return Button(self._t("button.resume", state.language), button_data("c", state.flow_id, state.step_id))

    def _menu(self, state: UserState, *, lead: str | None = None, kind: str = "menu") -> Reply:
        """The main menu: resume (if in a flow), the flows for the user's role, ask, role and language."""
        lang = state.language
        offered = self._flows_for(state)
        text = self._t("menu" if offered else "menu_no_flows", lang)
        rows: list[list[Button]] = []
        resume = self._resume_button(state)
        if resume:
            rows.append([resume])
        rows += [[Button(pick(flow.title, lang), button_data("f", flow.id))] for flow in offered]
        rows.append([Button(self._t("button.ask", lang), "a")])
        rows.append([Button(self._t("button.change_role", lang), button_data("k", "rolle")),
                     Button(self._t("button.change_language", lang), button_data("k", "sprak"))])
        return Reply(f"{lead}\n\n{text}" if lead else text, buttons=rows, kind=kind)
