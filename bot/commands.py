"""The slash commands and the choices they offer: start, help, role, language, sources, privacy, menu.

Tools (message drafts, contacts, …) register further commands with the core; they are run from here too.
"""

from __future__ import annotations

import logging

from bot.i18n import LANGUAGES
from bot.replies import Button, Reply
from bot.roles import PRIMARY_FLOW, ROLES
from bot.walkthrough import pick

log = logging.getLogger(__name__)

COMMANDS = ("start", "hjelp", "meld", "rolle", "sprak", "kilder", "personvern", "slett", "meny")
COMMAND_ALIASES = {
    "språk": "sprak", "help": "hjelp", "language": "sprak", "role": "rolle", "sources": "kilder",
    "privacy": "personvern", "delete": "slett", "menu": "meny", "letter": "brev", "contact": "kontakt",
    "note": "notat", "danger": "fare",
}
# Commands a button may run ("k|…"). Not slett: deleting everything takes a typed command.
BUTTON_COMMANDS = ("start", "hjelp", "meld", "rolle", "sprak", "kilder", "personvern", "meny")

SOURCE_KINDS = ("law-guide", "plan", "routine", "guidance", "municipal-decision")



def command_name(command) -> str:
    name = str(command or "").strip().lstrip("/").split("@", 1)[0].casefold()
    return COMMAND_ALIASES.get(name, name)


class Commands:
    """Runs commands for the core; `tools` maps further command names to handlers(state) -> replies."""

    def __init__(self, core):
        self.core = core
        self.tools: dict = {}

    def button_commands(self) -> tuple[str, ...]:
        return BUTTON_COMMANDS + tuple(self.tools)

    def run(self, state, name: str, arg: str) -> list[Reply]:
        core, lang = self.core, state.language
        core.staff.stop_waiting(state.user_id)
        if name == "start":
            return self.start(state, arg)
        if name == "hjelp":
            return [core.menu(state, lead=core.t("help", lang))]
        if name == "meld":
            if state.role is None:  # never guess: a pupil must not land in the parents' walkthrough
                return [self.role_question(state, core.t("ask_role", lang))]
            offered = core.walk.offered(state, PRIMARY_FLOW.get(state.role or "parent"))
            if not offered:
                return [core.menu(state, lead=core.t("menu_no_flows", lang))]
            return core.walk.start(state, offered[0])
        if name == "rolle":
            return [self.role_question(state, core.t("ask_role", lang))]
        if name == "sprak":
            buttons = [[Button(core.t(f"language.{code}", lang), f"l|{code}")] for code in LANGUAGES]
            return [Reply(core.t("choose_language", lang), buttons=buttons)]
        if name == "kilder":
            return [self.sources(state)]
        if name == "personvern":
            return [self.privacy(state)]
        if name == "meny":
            return [core.menu(state)]
        if name in self.tools:
            return self.tools[name](state)
        return [core.menu(state, lead=core.t("unknown_command", lang))]

    def start(self, state, payload: str) -> list[Reply]:
        core, lang = self.core, state.language
        intro = "\n\n".join((core.t("greeting", lang), core.t("limits", lang)))
        flow = core.walk.flows.get(payload) if payload else None
        if flow is not None and core.walk.allowed(flow, state):
            return [Reply(intro)] + core.walk.start(state, flow)  # deep link, e.g. a poster's QR code
        if state.role is None:
            text = "\n\n".join((intro, core.t("ask_role", lang), core.t("language_hint", lang)))
            return [self.role_question(state, text)]
        current = core.t("role_current", lang, role=core.t(f"role.{state.role}", lang))
        return [core.menu(state, lead=f"{intro}\n\n{current}")]

    def role_question(self, state, text: str) -> Reply:
        lang = state.language
        buttons = [[Button(self.core.t(f"role.{role}", lang), f"r|{role}")] for role in ROLES]
        return Reply(text, buttons=buttons, kind="menu")

    def choose_role(self, state, role: str) -> list[Reply]:
        core, lang = self.core, state.language
        state.role = role
        current = core.walk.current(state)
        if current is not None and not core.walk.allowed(current[0], state):
            core.walk.quit(state)
        lead = core.t("role_set", lang, role=core.t(f"role.{role}", lang))
        return core.staff.ask_for_code(state, lead) or [core.menu(state, lead=lead)]

    def choose_language(self, state, lang: str) -> list[Reply]:
        core = self.core
        state.language = lang
        lead = core.t("language_set", lang, language=core.t(f"language.{lang}", lang))
        current = core.walk.current(state)
        if current is not None:  # show where the user is, now in the new language
            return [Reply(lead), core.walk.step_reply(state, *current)]
        if state.role is None:  # switching language first must not skip the role question
            return [self.role_question(state, f"{lead}\n\n{core.t('ask_role', lang)}")]
        return [core.menu(state, lead=lead)]

    def sources(self, state) -> Reply:
        core, lang = self.core, state.language
        try:
            sources = list(core.answerer.sources())
        except Exception:
            log.exception("listing the sources failed")
            return core.menu(state, lead=core.t("error", lang), kind="error")
        if not sources:
            return Reply(core.t("sources_none", lang), buttons=[[core.menu_button(lang)]])
        lines = [core.t("sources_header", lang)]
        for source in sources:
            kind = str(source.get("kind") or "")
            kind_label = core.t(f"kind.{kind}", lang) if kind in SOURCE_KINDS else kind
            line = core.t("sources_item", lang, title=source.get("title") or source.get("id") or "?",
                          kind=kind_label, updated=source.get("updated") or "–")
            if source.get("audience") == "staff":
                line += " " + core.t("sources_staff", lang)
            if source.get("url"):
                line += f"\n{source['url']}"
            lines.append(line)
        return Reply("\n\n".join(lines), buttons=[[core.menu_button(lang)]])

    def privacy(self, state) -> Reply:
        core, lang = self.core, state.language
        parts = [core.t("privacy", lang, days=core.settings.state_retention_days)]
        stored = core.store.export_user(state.user_id)
        if stored:
            flow = core.walk.flows.get(state.flow_id or "")
            items = [
                core.t("privacy_item.role", lang, role=core.t(f"role.{state.role}", lang) if state.role else "–"),
                core.t("privacy_item.language", lang, language=core.t(f"language.{state.language}", lang)),
                core.t("privacy_item.flow", lang, flow=f"{pick(flow.title, lang)} ({state.step_id})" if flow else "–"),
                core.t("privacy_item.staff_verified", lang,
                       value=core.t("yes" if state.staff_verified else "no", lang)),
                core.t("privacy_item.updated", lang, time=stored.get("updated_at") or "–"),
            ]
            parts.append(core.t("privacy_stored", lang) + "\n" + "\n".join(f"• {item}" for item in items))
        else:
            parts.append(core.t("privacy_nothing", lang))
        return Reply("\n\n".join(parts), buttons=[[core.menu_button(lang)]])
