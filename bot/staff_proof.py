"""Staff proof: a user who claims a staff role gets staff passages only after giving the invite code."""

from __future__ import annotations

import hmac

from bot.replies import Button, Reply

MAX_CODE_ATTEMPTS = 5  # wrong staff codes per user before the bot stops asking (per process)
STAFF_ROLES = ("staff", "new_teacher")


class StaffProof:
    """Who is asked for the code, how many wrong tries they had; memory only, never stored."""

    def __init__(self, core):
        self.core = core
        self._awaiting: set[str] = set()
        self._attempts: dict[str, int] = {}

    def needs_proof(self, state) -> bool:
        return state.role in STAFF_ROLES and self.core.require_staff_proof and not state.staff_verified

    def retrieval_role(self, state) -> str:
        """The role the answerer gets: a claimed staff role counts only once proven."""
        role = state.role or "parent"
        return "parent" if self.needs_proof(state) else role

    def stop_waiting(self, user_id: str) -> None:
        self._awaiting.discard(user_id)

    def forget_user(self, user_id: str) -> None:
        self._awaiting.discard(user_id)
        self._attempts.pop(user_id, None)

    def ask_for_code(self, state, lead: str) -> list[Reply] | None:
        """After choosing a staff role: ask for the code (None when no proof is needed)."""
        if not self.needs_proof(state):
            return None
        lang = state.language
        can_try = (self.core.settings.staff_invite_code is not None
                   and self._attempts.get(state.user_id, 0) < MAX_CODE_ATTEMPTS)
        if can_try:
            self._awaiting.add(state.user_id)
            return [Reply(f"{lead}\n\n{self.core.t('staff_code_prompt', lang)}", buttons=[[self._keep_public(lang)]])]
        return [self.core.menu(state, lead=f"{lead}\n\n{self.core.t('staff_proof_unavailable', lang)}")]

    def check_code(self, state, text: str) -> list[Reply] | None:
        """While the bot waits for the code, a typed text is that code (right or wrong), not a question."""
        if state.user_id not in self._awaiting:
            return None
        lang = state.language
        secret = self.core.settings.staff_invite_code
        if secret is None or state.staff_verified or state.role not in STAFF_ROLES:
            self._awaiting.discard(state.user_id)
            return None
        if hmac.compare_digest(text.encode("utf-8"), secret.get_secret_value().strip().encode("utf-8")):
            self.forget_user(state.user_id)
            state.staff_verified = True
            return [self.core.menu(state, lead=self.core.t("staff_verified", lang))]
        attempts = self._attempts.get(state.user_id, 0) + 1
        self._attempts[state.user_id] = attempts
        if attempts >= MAX_CODE_ATTEMPTS:
            self._awaiting.discard(state.user_id)
            return [self.core.menu(state, lead=self.core.t("staff_code_locked", lang))]
        return [Reply(self.core.t("staff_code_wrong", lang), buttons=[[self._keep_public(lang)]])]

    def _keep_public(self, lang: str) -> Button:
        return Button(self.core.t("button.continue_public", lang), "k|meny")
