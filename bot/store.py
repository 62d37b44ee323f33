"""Conversation state behind a small interface, with a SQLite implementation.

What is kept, and nothing more: per user the role, language, position in a walkthrough, whether the
user proved to be staff, and two timestamps; anonymous feedback votes (which passages an answer cited,
up or down); and per day how many questions were answered or refused. Never message text.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from bot.errors import Kap12Error
from bot.roles import ROLES

LANGUAGES = ("nb", "nn", "en")
_ID_RE = re.compile(r"[a-z0-9-]{1,24}")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # fixed width, so text order is time order

log = logging.getLogger(__name__)


@dataclass
class UserState:
    """Everything stored about one user. `role` None = not chosen yet (treated as parent)."""

    user_id: str
    role: str | None = None
    language: str = "nb"
    flow_id: str | None = None
    step_id: str | None = None
    staff_verified: bool = False
    created_at: str | None = None
    updated_at: str | None = None

    def validate(self) -> None:
        """Raise ValueError for a value the store must never write (a bug in the caller)."""
        if not isinstance(self.user_id, str) or not self.user_id:
            raise ValueError("user_id must be a non-empty string")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")
        if self.language not in LANGUAGES:
            raise ValueError(f"unknown language {self.language!r}")
        if (self.flow_id is None) != (self.step_id is None):
            raise ValueError("flow_id and step_id are set together or not at all")
        for value in (self.flow_id, self.step_id):
            if value is not None and not _ID_RE.fullmatch(value):
                raise ValueError(f"bad flow or step id {value!r}")


class Store(Protocol):
    """What the conversation core needs from a state store."""

    def get_user(self, user_id: str) -> UserState | None: ...
    def save_user(self, state: UserState) -> None: ...
    def forget(self, user_id: str) -> bool: ...
    def export_user(self, user_id: str) -> dict: ...
    def purge_idle(self, days: int) -> int: ...
    def record_vote(self, passage_ids: Sequence[str], up: bool, documents: Sequence[str] | None = None) -> None: ...
    def record_question(self, answered: bool) -> None: ...
    def record_urgent(self) -> None: ...
    def report(self) -> dict: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime(_TIME_FORMAT)


# Numbered migrations: MIGRATIONS[n] takes the schema from version n to n + 1 (PRAGMA user_version).
# Append new functions; never edit one that has shipped.
def _migration_1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE users (
               user_id TEXT PRIMARY KEY,
               role TEXT,
               language TEXT NOT NULL DEFAULT 'nb',
               flow_id TEXT,
               step_id TEXT,
               staff_verified INTEGER NOT NULL DEFAULT 0,
               created_at TEXT NOT NULL,
               updated_at TEXT NOT NULL
           )"""
    )
    db.execute("CREATE INDEX users_updated ON users (updated_at)")
    # One row per vote; passages and their documents as JSON lists (no user id, no text).
    db.execute(
        """CREATE TABLE votes (
               id INTEGER PRIMARY KEY,
               passage_ids TEXT NOT NULL,
               documents TEXT NOT NULL,
               vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
               created_at TEXT NOT NULL
           )"""
    )
    db.execute(
        """CREATE TABLE question_outcomes (
               day TEXT NOT NULL,
               answered INTEGER NOT NULL CHECK (answered IN (0, 1)),
               count INTEGER NOT NULL,
               PRIMARY KEY (day, answered)
           )"""
    )


def _migration_2(db: sqlite3.Connection) -> None:
    # How many replies per day were urgent (the safety layer's help numbers); nothing about who or what.
    db.execute("CREATE TABLE urgent_replies (day TEXT PRIMARY KEY, count INTEGER NOT NULL)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migration_1, _migration_2]


def document_of(passage_id: str) -> str:
    """Best guess at a passage's document id when none was recorded: the part before '#' or ':'."""
    return re.split(r"[#:]", passage_id, maxsplit=1)[0]


class SqliteStore:
    """The store in one SQLite file, created (with its folder) on first use."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        # The Telegram adapter may call from more than one thread; one connection, one lock.
        self._lock = threading.RLock()

    # -- plumbing ---------------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            try:
                self._migrate(db)
            except sqlite3.DatabaseError as exc:
                db.close()
                raise Kap12Error(
                    f"{self.path}: the state file is not a usable SQLite database ({exc}). "
                    "Move it away; a new one is created on the next start."
                ) from exc
            self._db = db
        return self._db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this program knows")
        for number in range(version, len(MIGRATIONS)):
            db.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[number](db)
                db.execute(f"PRAGMA user_version = {number + 1}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        with self._lock:
            return self._conn().execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- users ------------------------------------------------------------------------------------------
    def get_user(self, user_id: str) -> UserState | None:
        """The stored state; None when there is none; defaults when the row is unreadable (logged, not deleted)."""
        with self._lock:
            row = self._conn().execute(
                "SELECT user_id, role, language, flow_id, step_id, staff_verified, created_at, updated_at "
                "FROM users WHERE user_id = ?",
                (user_id,),
            ).fetchone()
        if row is None:
            return None
        try:
            state = UserState(
                user_id=row[0],
                role=row[1],
                language=row[2],
                flow_id=row[3],
                step_id=row[4],
                staff_verified=_as_flag(row[5]),
                created_at=_as_time(row[6]),
                updated_at=_as_time(row[7]),
            )
            state.validate()
        except (ValueError, TypeError):
            # Never log the content: it may be anything. Defaults with a timestamp tell the caller a row
            # exists, so its next save overwrites just this row.
            log.warning("unreadable state row in %s; starting that user afresh", self.path.name)
            return UserState(user_id=user_id, created_at=_stamp(_now()))
        return state

    def save_user(self, state: UserState) -> None:
        """Insert or update; keeps `created_at`, sets `updated_at` to now (both also set on `state`)."""
        state.validate()
        now = _stamp(_now())
        with self._lock:
            self._conn().execute(
                """INSERT INTO users (user_id, role, language, flow_id, step_id, staff_verified, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (user_id) DO UPDATE SET
                       role = excluded.role, language = excluded.language, flow_id = excluded.flow_id,
                       step_id = excluded.step_id, staff_verified = excluded.staff_verified,
                       updated_at = excluded.updated_at,
                       -- keep the first-seen time unless the stored one is damaged
                       created_at = CASE WHEN typeof(users.created_at) = 'text'
                                          AND users.created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*'
                                         THEN users.created_at ELSE excluded.created_at END""",
                (state.user_id, state.role, state.language, state.flow_id, state.step_id,
                 int(state.staff_verified), state.created_at or now, now),
            )
            created = self._conn().execute(
                "SELECT created_at FROM users WHERE user_id = ?", (state.user_id,)
            ).fetchone()[0]
        state.created_at, state.updated_at = created, now

    def forget(self, user_id: str) -> bool:
        """Delete everything stored about `user_id`; True if there was something."""
        with self._lock:
            return self._conn().execute("DELETE FROM users WHERE user_id = ?", (user_id,)).rowcount > 0

    def export_user(self, user_id: str) -> dict:
        """Everything stored about `user_id`, as stored (empty dict: nothing)."""
        with self._lock:
            cursor = self._conn().execute("SELECT * FROM users WHERE user_id = ?", (user_id,))
            row = cursor.fetchone()
            names = [column[0] for column in cursor.description]
        if row is None:
            return {}
        # Show even a damaged row honestly, as text.
        return {name: (value if isinstance(value, (str, int, type(None))) else repr(value))
                for name, value in zip(names, row, strict=True)}

    def purge_idle(self, days: int) -> int:
        """Delete users untouched for more than `days` days; returns how many."""
        cutoff = _stamp(_now() - timedelta(days=days))
        with self._lock:
            return self._conn().execute("DELETE FROM users WHERE updated_at < ?", (cutoff,)).rowcount

    # -- anonymous statistics ---------------------------------------------------------------------------
    def record_vote(self, passage_ids: Sequence[str], up: bool, documents: Sequence[str] | None = None) -> None:
        """Store one vote on an answer: the cited passage ids (and their documents), +1 or -1, a timestamp."""
        passage_ids = [str(pid) for pid in passage_ids]
        if documents is None:
            documents = [document_of(pid) for pid in passage_ids]
        with self._lock:
            self._conn().execute(
                "INSERT INTO votes (passage_ids, documents, vote, created_at) VALUES (?, ?, ?, ?)",
                (json.dumps(passage_ids), json.dumps([str(d) for d in documents]), 1 if up else -1,
                 _stamp(_now())),
            )

    def record_question(self, answered: bool) -> None:
        """Count one question as answered or refused, for today."""
        with self._lock:
            self._conn().execute(
                """INSERT INTO question_outcomes (day, answered, count) VALUES (?, ?, 1)
                   ON CONFLICT (day, answered) DO UPDATE SET count = count + 1""",
                (_now().date().isoformat(), int(bool(answered))),
            )

    def record_urgent(self) -> None:
        """Count one urgent (safety) reply for today; nothing else about it is kept."""
        with self._lock:
            self._conn().execute(
                """INSERT INTO urgent_replies (day, count) VALUES (?, 1)
                   ON CONFLICT (day) DO UPDATE SET count = count + 1""",
                (_now().date().isoformat(),),
            )

    def report(self) -> dict:
        """Votes per document, the share of refused questions and the number of urgent replies.

        Returns:
            {"documents": [{"document", "up", "down"}...] (most down-votes first),
             "questions": {"answered", "refused", "refused_share"}, "urgent_replies": int}
        """
        with self._lock:
            votes = self._conn().execute("SELECT documents, vote FROM votes").fetchall()
            outcomes = dict(self._conn().execute(
                "SELECT answered, SUM(count) FROM question_outcomes GROUP BY answered"
            ).fetchall())
            urgent = self._conn().execute("SELECT COALESCE(SUM(count), 0) FROM urgent_replies").fetchone()[0]
        per_document: dict[str, dict[str, int]] = {}
        for documents, vote in votes:
            try:
                names = set(json.loads(documents))
            except (ValueError, TypeError):
                continue
            for name in names:  # an answer citing one document twice counts once for it
                counts = per_document.setdefault(str(name), {"up": 0, "down": 0})
                counts["up" if vote > 0 else "down"] += 1
        answered, refused = int(outcomes.get(1, 0)), int(outcomes.get(0, 0))
        total = answered + refused
        return {
            "documents": [
                {"document": name, **counts}
                for name, counts in sorted(per_document.items(), key=lambda kv: (-kv[1]["down"], kv[0]))
            ],
            "questions": {
                "answered": answered,
                "refused": refused,
                "refused_share": round(refused / total, 4) if total else 0.0,
            },
            "urgent_replies": int(urgent),
        }


def _as_flag(value) -> bool:
    if value not in (0, 1):
        raise ValueError("staff_verified must be 0 or 1")
    return bool(value)


def _as_time(value) -> str:
    if not isinstance(value, str):
        raise ValueError("timestamp must be text")
    datetime.strptime(value, _TIME_FORMAT)
    return value
