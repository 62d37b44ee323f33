"""Staff proof: a user who claims a staff role gets staff passages only after giving the invite code.

Guessing is limited twice: `MAX_CODE_ATTEMPTS` wrong codes per user a day and `MAX_GLOBAL_ATTEMPTS` by
everyone together an hour. The counts live in the store under a keyed hash of the user id (never the id
itself), so neither /slett nor a restart resets them, and they expire on their own.

A proof remembers how it was given: "list" (a channel's allow-list, e.g. KAP12_STAFF_USER_IDS) or
"code:<keyed fingerprint of the invite code>". When the code changes, every proof by the old code lapses;
`recheck` (run by a channel at start) also takes back the proof of ids that left the allow-list.

In a group chat every answer is public, whoever asks: a channel wraps the call in `public_only()`.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from bot.replies import Button, Reply
from bot.roles import PUBLIC_ROLE, STAFF_ROLES
from bot.store import UserState

log = logging.getLogger(__name__)

MAX_CODE_ATTEMPTS = 5  # wrong codes per user within ATTEMPT_WINDOW before the bot stops asking
ATTEMPT_WINDOW = 24 * 3600  # seconds
MAX_GLOBAL_ATTEMPTS = 30  # wrong codes by all users together within GLOBAL_WINDOW; then nobody may try
GLOBAL_WINDOW = 3600  # seconds
GLOBAL_KEY = "all-users"  # the store key of the global count (not a user)
LIST_PROOF = "list"

_public_only: contextvars.ContextVar[bool] = contextvars.ContextVar("kap12_public_only", default=False)


@contextmanager
def public_only() -> Iterator[None]:
    """Within this block every answer is retrieved with the public role, whoever asks (group chats).

    A context variable, so it holds for the thread the block runs in and for nothing else.
    """
    token = _public_only.set(True)
    try:
        yield
    finally:
        _public_only.reset(token)


def _keyed(secret: str, purpose: str, value: str = "") -> str:
    return hmac.new(secret.encode("utf-8"), f"kap12:{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


class StaffProof:
    """Who is asked for the code (memory), and the limits and proofs kept in the store."""

    def __init__(self, core):
        self.core = core
        self._awaiting: set[str] = set()

    # -- the code -----------------------------------------------------------------------------------------
    def _code(self) -> str | None:
        secret = self.core.settings.staff_invite_code
        code = secret.get_secret_value().strip() if secret is not None else ""
        return code or None

    def code_proof(self) -> str | None:
        """The proof a correct code gives now: a keyed fingerprint, so the code itself is never stored."""
        code = self._code()
        return f"code:{_keyed(code, 'proof')}" if code else None

    def _user_key(self, user_id: str) -> str | None:
        code = self._code()
        return _keyed(code, "attempts", user_id) if code else None

    def _may_try(self, user_id: str) -> bool:
        key = self._user_key(user_id)
        if key is None:
            return False
        store = self.core.store
        return (store.attempts(key, ATTEMPT_WINDOW) < MAX_CODE_ATTEMPTS
                and store.attempts(GLOBAL_KEY, GLOBAL_WINDOW) < MAX_GLOBAL_ATTEMPTS)

    # -- proof --------------------------------------------------------------------------------------------
    def proven(self, state) -> bool:
        """Verified, and by a proof that still holds (a code proof lapses when the code changes)."""
        if not state.staff_verified:
            return False
        proof = getattr(state, "staff_proof", None)
        if proof and proof.startswith("code:"):
            return hmac.compare_digest(proof, self.code_proof() or "")
        return True

    def needs_proof(self, state) -> bool:
        return state.role in STAFF_ROLES and self.core.require_staff_proof and not self.proven(state)

    def retrieval_role(self, state) -> str:
        """The role the answerer gets: public inside `public_only()`; a claimed staff role only once proven."""
        if _public_only.get():
            return PUBLIC_ROLE
        role = state.role or PUBLIC_ROLE
        return PUBLIC_ROLE if self.needs_proof(state) else role

    def prove_by_allow_list(self, user_id: str) -> None:
        """A channel vouches for this user (e.g. a Telegram id on KAP12_STAFF_USER_IDS)."""
        store = self.core.store
        state = store.get_user(user_id) or UserState(user_id=user_id)
        if state.staff_verified and state.staff_proof == LIST_PROOF:
            return
        state.staff_verified, state.staff_proof = True, LIST_PROOF
        store.save_user(state)

    def recheck(self, allow_list: Collection[str]) -> int:
        """Take back proofs that no longer hold: the code changed, or the id left the allow-list.

        A proof from before proofs were recorded holds only for ids on the allow-list. Returns how many
        proofs were taken back.
        """
        current = self.code_proof()
        revoked = 0
        for user_id, proof in self.core.store.staff_proofs():
            if proof is not None and proof.startswith("code:"):
                keep = current is not None and hmac.compare_digest(proof, current)
            else:
                keep = user_id in allow_list
            if not keep:
                self.core.store.revoke_staff(user_id)
                revoked += 1
        if revoked:
            log.info("took back %d staff proofs (invite code changed or ids left the allow-list)", revoked)
        return revoked

    # -- the conversation ---------------------------------------------------------------------------------
    def stop_waiting(self, user_id: str) -> None:
        self._awaiting.discard(user_id)

    def forget_user(self, user_id: str) -> None:
        """/slett: stop waiting for a code. The wrong-code counts stay (keyed hash, expiring): see the module."""
        self._awaiting.discard(user_id)

    def ask_for_code(self, state, lead: str) -> list[Reply] | None:
        """After choosing a staff role: ask for the code (None when no proof is needed)."""
        if not self.needs_proof(state):
            return None
        lang = state.language
        if self._may_try(state.user_id):
            self._awaiting.add(state.user_id)
            return [Reply(f"{lead}\n\n{self.core.t('staff_code_prompt', lang)}", buttons=[[self._keep_public(lang)]])]
        return [self.core.menu(state, lead=f"{lead}\n\n{self.core.t('staff_proof_unavailable', lang)}")]

    def check_code(self, state, text: str) -> list[Reply] | None:
        """While the bot waits for the code, a typed text is that code (right or wrong), not a question."""
        if state.user_id not in self._awaiting:
            return None
        lang = state.language
        code = self._code()
        if code is None or self.proven(state) or state.role not in STAFF_ROLES:
            self._awaiting.discard(state.user_id)
            return None
        if not self._may_try(state.user_id):  # the limit was reached meanwhile (e.g. by others)
            self._awaiting.discard(state.user_id)
            return [self.core.menu(state, lead=self.core.t("staff_code_locked", lang))]
        key = self._user_key(state.user_id)
        if hmac.compare_digest(text.encode("utf-8"), code.encode("utf-8")):
            self._awaiting.discard(state.user_id)
            self.core.store.clear_attempts(key)
            state.staff_verified, state.staff_proof = True, self.code_proof()
            return [self.core.menu(state, lead=self.core.t("staff_verified", lang))]
        attempts = self.core.store.count_attempt(key, ATTEMPT_WINDOW)
        total = self.core.store.count_attempt(GLOBAL_KEY, GLOBAL_WINDOW)
        if total == MAX_GLOBAL_ATTEMPTS:
            log.warning("%d wrong staff codes within an hour: nobody may try until the hour has passed",
                        MAX_GLOBAL_ATTEMPTS)
        if attempts >= MAX_CODE_ATTEMPTS or total >= MAX_GLOBAL_ATTEMPTS:
            self._awaiting.discard(state.user_id)
            return [self.core.menu(state, lead=self.core.t("staff_code_locked", lang))]
        return [Reply(self.core.t("staff_code_wrong", lang), buttons=[[self._keep_public(lang)]])]

    def _keep_public(self, lang: str) -> Button:
        return Button(self.core.t("button.continue_public", lang), "k|meny")
