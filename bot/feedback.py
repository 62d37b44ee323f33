"""👍/👎 on answers: which answers may still be voted on (memory only) and storing a vote (no text)."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from bot.replies import Citation, Reply

FEEDBACK_MEMORY = 2048  # answers whose 👍/👎 still count; older ones say "expired"


@dataclass
class _Feedback:
    """What a feedback id stands for: who may vote, and the cited passages (id, document)."""

    user_id: str
    passages: tuple[tuple[str, str], ...]
    voted: bool = False


class FeedbackBook:
    """Feedback ids handed out with answers, kept in memory for the last `FEEDBACK_MEMORY` answers."""

    def __init__(self, core):
        self.core = core
        self._entries: OrderedDict[str, _Feedback] = OrderedDict()
        self._lock = threading.Lock()  # channels run the core in several threads

    def remember(self, user_id: str, citations: Sequence[Citation]) -> str:
        feedback_id = secrets.token_urlsafe(6)  # 8 URL-safe characters, fits any callback format
        with self._lock:
            self._entries[feedback_id] = _Feedback(user_id, tuple((c.passage_id, c.document) for c in citations))
            while len(self._entries) > FEEDBACK_MEMORY:
                self._entries.popitem(last=False)
        return feedback_id

    def forget_user(self, user_id: str) -> None:
        with self._lock:
            for feedback_id in [k for k, v in self._entries.items() if v.user_id == user_id]:
                del self._entries[feedback_id]

    def vote(self, state, feedback_id, up: bool) -> list[Reply]:
        """Store only the cited passages, the vote and a timestamp; one vote per answer, by its asker."""
        lang = state.language
        with self._lock:
            entry = self._entries.get(feedback_id) if isinstance(feedback_id, str) else None
            if entry is None or entry.user_id != state.user_id:
                return [Reply(self.core.t("vote_expired", lang))]
            if entry.voted:
                return [Reply(self.core.t("vote_already", lang))]
            entry.voted = True
        self.core.store.record_vote([p for p, _ in entry.passages], bool(up),
                                    documents=[d for _, d in entry.passages])
        return [Reply(self.core.t("vote_thanks", lang))]
