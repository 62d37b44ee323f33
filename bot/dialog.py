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
    k|<command>           run a command (meny, meld, rolle, sprak, hjelp, kilder, personvern, start, and the
                          commands tools register)
    <prefix>|…            a tool's own buttons (each tool registers its prefix)
    a                     "ask a question" (the flow position is kept)
    q                     leave the current flow
    v|+|<id> / v|-|<id>   feedback on an answer (channels may instead call `Dialog.vote`)
    x|go                  after help numbers, go on to the normal answer to the same question

Anything else, or a press that no longer fits the user's state, gets a calm "this button has expired"
and the main menu.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from datetime import UTC, datetime, timedelta

from bot.commands import COMMAND_ALIASES, COMMANDS, Commands, command_name
from bot.explain import Explanations
from bot.feedback import FeedbackBook
from bot.flows import Flow
from bot.i18n import LANGUAGES, Catalog
from bot.questions import Questions
from bot.replies import Button, Reply
from bot.roles import PRIMARY_FLOW, ROLES
from bot.staff_proof import StaffProof
from bot.store import Store, UserState
from bot.walkthrough import Walkthroughs, pick

log = logging.getLogger(__name__)

MAX_DATA_BYTES = 64  # Telegram's callback-data limit; the core keeps every button within it
MAX_QUESTION_CHARS = 4000  # longer input is cut before it reaches the answerer
PURGE_EVERY = timedelta(hours=24)
STATE_FILE = "state.sqlite3"  # under settings.data_dir; every channel shares it

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
    """The real core from settings: index-backed Answerer, flows and catalogue from knowledge/, SQLite state.

    Content files are read through `bot.content`: one that fails to load is replaced by its last good copy
    (kept with the index), with a warning naming it, so a content typo never keeps the bot from serving.
    """
    from bot.answer import Answerer  # heavy (index, embedder): only when a real conversation starts
    from bot.content import Content, load_catalog
    from bot.flows import load_flows
    from bot.store import SqliteStore

    content = Content.in_service(settings)
    answerer = Answerer.from_settings(settings, content=content)
    flows = content.load(lambda root: load_flows(root / "flows"))
    catalog = catalog or content.load(load_catalog)
    store = SqliteStore(settings.data_dir / STATE_FILE)
    # The core reads some data itself (distress words) from settings.knowledge_dir: give it the content in service.
    dialog = content.load(lambda root: Dialog(content.settings_for(settings), answerer, flows, catalog, store,
                                              require_staff_proof=require_staff_proof))
    from bot import contacts, drafts  # tools: /brev, /notat (buttons d|…) and /kontakt (buttons o|…)

    content.load(lambda root: drafts.register(dialog, root))
    content.load(lambda root: contacts.register(dialog, root, settings))
    return dialog




class Dialog:
    """One conversation core shared by all users of a channel.

    The core keeps the user's state and routes input; the concerns live in their own modules:
    `Walkthroughs` (bot/walkthrough.py), `Commands` (bot/commands.py), `Questions` (bot/questions.py),
    `Explanations` (bot/explain.py), `FeedbackBook` (bot/feedback.py) and `StaffProof` (bot/staff_proof.py).
    They reach shared helpers (catalogue, menu, store, answerer) through the core.

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
        self.catalog = catalog
        self.store = store
        self.require_staff_proof = require_staff_proof
        self.walk = Walkthroughs(self, flows)
        self.commands = Commands(self)
        self.explain = Explanations.from_core(self)
        self.questions = Questions(self)
        self.feedback = FeedbackBook(self)
        self.staff = StaffProof(self)
        # prefix → handler(state, args) -> replies
        self.button_handlers: dict = {"x": self.questions.on_button, "m": self.questions.see_also}
        self.commands.tools["fare"] = self.questions.danger_help
        self._last_purge: datetime | None = None

    @property
    def flows(self) -> dict[str, Flow]:
        return self.walk.flows

    def register_tool(self, *, commands: dict | None = None, buttons: dict | None = None) -> None:
        """Add a tool's commands (name → handler(state)) and button prefixes (prefix → handler(state, args))."""
        for prefix in buttons or {}:
            if prefix in BUILT_IN_PREFIXES or "|" in prefix:
                raise ValueError(f"button prefix {prefix!r} is taken or invalid")
        self.commands.tools.update(commands or {})
        self.button_handlers.update(buttons or {})

    # -- public API -------------------------------------------------------------------------------------
    def handle_text(self, user_id: str, text: str, *, question_only: bool = False) -> list[Reply]:
        """A message the user typed: a staff code, a button label, or a question.

        Args:
            question_only: treat the text as a question whatever it says (group chats, where a typed
                button label must not move the user's private walkthrough on).
        """
        if question_only:
            return self._run(user_id, lambda state: self.questions.answer(state, clean_text(text)[:MAX_QUESTION_CHARS]))
        return self._run(user_id, lambda state: self._on_text(state, text))

    def handle_button(self, user_id: str, data: str) -> list[Reply]:
        """A button press with data built by the core; stale or forged data gets a calm reply and the menu."""
        return self._run(user_id, lambda state: self._on_button(state, data))

    def handle_command(self, user_id: str, command: str, arg: str = "") -> list[Reply]:
        """A command without its slash (start, hjelp, meld, rolle, sprak, kilder, personvern, slett, meny, …)."""
        name = command_name(command)
        if name == "slett":
            return self._forget(user_id)
        if name in self.commands.tools:
            self.walk.note_elsewhere(user_id)  # a tool's screen: typed "tilbake" is not the walkthrough's
        return self._run(user_id, lambda state: self.commands.run(state, name, clean_text(arg)))

    def vote(self, user_id: str, feedback_id: str, up: bool) -> list[Reply]:
        """👍/👎 on an answer: stores only the cited passages, the vote and a timestamp."""
        return self.feedback.vote(self._load(user_id), feedback_id, up)

    def prove_staff(self, user_id: str) -> None:
        """The channel vouches for this user (e.g. a Telegram id on the staff allow-list)."""
        self.staff.prove_by_allow_list(user_id)

    def language(self, user_id: str) -> str:
        """The user's language, for a channel's own labels (nb for someone unknown)."""
        return self._load(user_id).language

    def role_for_retrieval(self, user_id: str) -> str:
        """The role the answerer gets for this user: a claimed staff role counts only once proven."""
        return self.retrieval_role(self._load(user_id))

    def retrieval_role(self, state: UserState) -> str:
        return self.staff.retrieval_role(state)

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
        if state.flow_id is not None and self.walk.current(state) is None:
            # The flow or step was removed from the content since; start over from the menu.
            self.walk.quit(state)
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
        self.staff.forget_user(user_id)
        self.feedback.forget_user(user_id)
        self.questions.forget_user(user_id)
        self.explain.forget_user(user_id)
        self.walk.forget_user(user_id)  # quiz tallies (memory only)
        existed = self.store.forget(user_id)
        text = self.t("forgotten" if existed else "forgotten_nothing", lang)
        return [Reply(text, buttons=[[Button(self.t("button.start_again", lang), button_data("k", "start"))]])]

    # -- text -------------------------------------------------------------------------------------------
    def _on_text(self, state: UserState, raw) -> list[Reply]:
        lang = state.language
        text = clean_text(raw)
        if not text:
            return [self.menu(state, lead=self.t("empty", lang))]
        code_replies = self.staff.check_code(state, text)
        if code_replies is not None:
            return code_replies
        pressed = self.walk.match_label(state, _fold(text), _fold)
        if pressed is not None:
            return self._on_button(state, pressed)
        replies = []
        if len(text) > MAX_QUESTION_CHARS:
            replies.append(Reply(self.t("too_long", lang, limit=MAX_QUESTION_CHARS)))
            text = text[:MAX_QUESTION_CHARS]
        return replies + self.questions.answer(state, text)

    # -- buttons ------------------------------------------------------------------------------------------
    def _on_button(self, state: UserState, data) -> list[Reply]:
        self.staff.stop_waiting(state.user_id)
        if not isinstance(data, str) or len(data.encode("utf-8", "replace")) > MAX_DATA_BYTES:
            return self._expired(state)
        kind, *args = data.split("|")
        replies = None
        if kind == "s" and len(args) == 3:
            replies = self.walk.press(state, *args)
        elif kind == "c" and len(args) == 2:
            replies = self.walk.show_current(state, *args)
        elif kind == "f" and len(args) == 1 and args[0] in self.flows:
            flow = self.flows[args[0]]
            if not self.walk.allowed(flow, state):
                return [self.menu(state, lead=self.t("flow_not_for_role", state.language))]
            replies = self.walk.start(state, flow)
        elif kind == "r" and len(args) == 1 and args[0] in ROLES:
            replies = self.commands.choose_role(state, args[0])
        elif kind == "l" and len(args) == 1 and args[0] in LANGUAGES:
            replies = self.commands.choose_language(state, args[0])
        elif kind == "k" and len(args) == 1 and args[0] in self.commands.button_commands():
            if args[0] in self.commands.tools:
                self.walk.note_elsewhere(state.user_id)
            replies = self.commands.run(state, args[0], "")
        elif kind == "a" and not args:
            buttons = [[self.walk.resume_button(state) or self.menu_button(state.language)]]
            replies = [Reply(self.t("ask_prompt", state.language), buttons=buttons)]
        elif kind == "q" and not args:
            self.walk.quit(state)
            replies = [self.menu(state, lead=self.t("flow_quit", state.language))]
        elif kind == "v" and len(args) == 2 and args[0] in ("+", "-"):
            replies = self.feedback.vote(state, args[1], args[0] == "+")
        elif kind in self.button_handlers:
            self.walk.note_elsewhere(state.user_id)
            replies = self.button_handlers[kind](state, args)
        return replies if replies is not None else self._expired(state)

    def _expired(self, state: UserState) -> list[Reply]:
        return [self.menu(state, lead=self.t("expired", state.language))]

    # -- shared helpers for the concern modules ---------------------------------------------------------
    def t(self, key: str, lang: str, **fmt) -> str:
        return self.catalog.get(f"dialog.{key}", lang, **fmt)

    button_data = staticmethod(button_data)

    def menu_button(self, lang: str) -> Button:
        return Button(self.t("button.menu", lang), button_data("k", "meny"))

    def menu(self, state: UserState, *, lead: str | None = None, kind: str = "menu") -> Reply:
        """The main menu: resume (if in a flow), the flows for the user's role, ask, role and language."""
        lang = state.language
        offered = self.walk.offered(state, PRIMARY_FLOW.get(state.role or "parent"))
        text = self.t("menu" if offered else "menu_no_flows", lang)
        rows: list[list[Button]] = []
        resume = self.walk.resume_button(state)
        if resume:
            rows.append([resume])
        rows += [[Button(pick(flow.title, lang), button_data("f", flow.id))] for flow in offered]
        rows.append([Button(self.t("button.ask", lang), "a")])
        rows.append([Button(self.t("button.change_role", lang), button_data("k", "rolle")),
                     Button(self.t("button.change_language", lang), button_data("k", "sprak"))])
        return Reply(f"{lead}\n\n{text}" if lead else text, buttons=rows, kind=kind)


BUILT_IN_PREFIXES = ("s", "c", "f", "r", "l", "k", "a", "q", "v", "x", "m")
__all__ = ["COMMAND_ALIASES", "COMMANDS", "Dialog", "KEYS", "build_dialog", "button_data", "clean_text"]
