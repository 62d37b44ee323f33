"""Conversation state behind a small interface, with a SQLite implementation.

What is kept, and nothing more: per user the role, language, position in a walkthrough, whether the
user proved to be staff (and how: a keyed fingerprint of the invite code, or the allow-list), and two
timestamps; anonymous feedback votes (which passages an answer cited, up or down); per day how many
questions were answered or refused; and wrong staff-code attempts under a keyed hash of the user id, with
an expiry. Never message text.

The file can fail at any time (read-only, full disk, locked by another process, damaged, a newer schema,
a data dir that is a file). The store then keeps working from memory: what was read stays readable, writes
wait for a lock only a bounded time, are kept in memory and written once the file works again, and every
few seconds the file is tried afresh, so the bot recovers without a restart. Users keep getting answers.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from bot.errors import Kap12Error
from bot.roles import ROLES

LANGUAGES = ("nb", "nn", "en")
_ID_RE = re.compile(r"[a-z0-9-]{1,24}")
_PROOF_RE = re.compile(r"list|code:[0-9a-f]{8,64}")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # fixed width, so text order is time order

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 2.0  # seconds an operation waits for another process's lock before the store uses memory
RETRY_AFTER = 5.0  # seconds the store stays in memory after a failure before it tries the file again
MEMORY_USERS = 10_000  # user states kept in memory, so conversations go on while the file cannot be read
ATTEMPTS_RETENTION_DAYS = 7  # wrong staff-code counters older than this are deleted with the idle users


class _Unavailable(Exception):
    """The state file cannot be used right now (the store falls back to memory)."""


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
    staff_proof: str | None = None  # how staff was proven: "list", or "code:<keyed fingerprint of the code>"

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
        if self.staff_proof is not None and not _PROOF_RE.fullmatch(self.staff_proof):
            raise ValueError("staff_proof must be 'list' or 'code:<hex fingerprint>'")


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
    def count_attempt(self, key: str, window_seconds: float) -> int: ...
    def attempts(self, key: str, window_seconds: float) -> int: ...
    def clear_attempts(self, key: str) -> None: ...
    def staff_proofs(self) -> list[tuple[str, str | None]]: ...
    def revoke_staff(self, user_id: str) -> None: ...


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


def _migration_3(db: sqlite3.Connection) -> None:
    # How staff proof was given, so it can be re-checked when the code or the allow-list changes.
    db.execute("ALTER TABLE users ADD COLUMN staff_proof TEXT")
    # Wrong staff codes per keyed hash of a user id (or one key for all users), kept across /slett and
    # restarts; rows expire (purge_idle).
    db.execute(
        """CREATE TABLE staff_attempts (
               key TEXT PRIMARY KEY,
               count INTEGER NOT NULL,
               first_at TEXT NOT NULL
           )"""
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migration_1, _migration_2, _migration_3]


def document_of(passage_id: str) -> str:
    """Best guess at a passage's document id when none was recorded: the part before '#' or ':'."""
    return re.split(r"[#:]", passage_id, maxsplit=1)[0]


class SqliteStore:
    """The store in one SQLite file, created (folder 0700, file 0600) on first use; memory while it fails.

    Args:
        path: the state file.
        busy_timeout: seconds to wait for another process's lock before falling back to memory.
        retry_after: seconds to stay in memory after a failure before trying the file again.
    """

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT, retry_after: float = RETRY_AFTER,
                 clock: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.retry_after = retry_after
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        # The Telegram adapter calls from several threads; one connection, one lock.
        self._lock = threading.RLock()
        self._down_until: float | None = None  # set while the file is unusable
        self.problem: str | None = None  # why the file is unusable (for the operator), None = fine
        # Memory: states read or written lately, and what still has to reach the file.
        self._recent: OrderedDict[str, UserState] = OrderedDict()
        self._pending_users: dict[str, UserState | None] = {}  # None = delete
        self._pending_votes: list[tuple[str, str, int, str]] = []
        self._pending_questions: Counter[tuple[str, int]] = Counter()
        self._pending_urgent: Counter[str] = Counter()
        self._pending_attempts: dict[str, tuple[int, str]] = {}  # key → (count to add, first_at)
        self._memory_attempts: dict[str, tuple[int, str]] = {}  # counters while the file is unusable

    # -- plumbing ---------------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._prepare_files()
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                 timeout=self.busy_timeout)
            try:
                db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                db.execute("PRAGMA secure_delete = ON")  # deleted rows are overwritten, not left in free pages
                self._migrate(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _prepare_files(self) -> None:
        """The folder 0700 and the file 0600 before SQLite touches them (the default umask gives 0755/0644)."""
        folder = self.path.parent
        if not folder.exists():
            folder.mkdir(parents=True, mode=0o700)
            os.chmod(folder, 0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        if self.path.stat().st_mode & 0o077:
            os.chmod(self.path, 0o600)

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

    def _use(self, work: Callable[[sqlite3.Connection], object]):
        """Run `work(db)` after writing what memory holds; raise _Unavailable (and remember why) on failure."""
        with self._lock:
            if self._down_until is not None and self.clock() < self._down_until:
                raise _Unavailable(self.problem)
            try:
                db = self._conn()
                self._flush(db)
                result = work(db)
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)
                raise _Unavailable(self.problem) from exc
            if self._down_until is not None:
                log.warning("%s: the state file works again; what was kept in memory is written", self.path.name)
            self._down_until, self.problem = None, None
            return result

    def _failed(self, exc: Exception) -> None:
        if self._db is not None:  # a fresh connection next time: a read-only one never becomes writable
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        problem = _describe(self.path, exc)
        if problem != self.problem:  # once per kind of trouble, not once per message
            log.error("%s Users still get answers; their state is kept in memory meanwhile.", problem)
        self.problem = problem
        self._down_until = self.clock() + self.retry_after

    def _flush(self, db: sqlite3.Connection) -> None:
        """Write what was kept in memory while the file failed, in one transaction."""
        if not (self._pending_users or self._pending_votes or self._pending_questions or self._pending_urgent
                or self._pending_attempts):
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            for user_id, state in self._pending_users.items():
                if state is None:
                    db.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
                else:
                    self._upsert(db, state, state.updated_at or _stamp(_now()))
            db.executemany("INSERT INTO votes (passage_ids, documents, vote, created_at) VALUES (?, ?, ?, ?)",
                           self._pending_votes)
            for (day, answered), count in self._pending_questions.items():
                db.execute("""INSERT INTO question_outcomes (day, answered, count) VALUES (?, ?, ?)
                              ON CONFLICT (day, answered) DO UPDATE SET count = count + excluded.count""",
                           (day, answered, count))
            for day, count in self._pending_urgent.items():
                db.execute("""INSERT INTO urgent_replies (day, count) VALUES (?, ?)
                              ON CONFLICT (day) DO UPDATE SET count = count + excluded.count""", (day, count))
            for key, (count, first_at) in self._pending_attempts.items():
                db.execute("""INSERT INTO staff_attempts (key, count, first_at) VALUES (?, ?, ?)
                              ON CONFLICT (key) DO UPDATE SET count = count + excluded.count""",
                           (key, count, first_at))
            db.execute("COMMIT")
        except BaseException:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        self._pending_users.clear()
        self._pending_votes.clear()
        self._pending_questions.clear()
        self._pending_urgent.clear()
        self._pending_attempts.clear()
        self._memory_attempts.clear()

    def _remember(self, state: UserState) -> None:
        self._recent[state.user_id] = replace(state)
        self._recent.move_to_end(state.user_id)
        while len(self._recent) > MEMORY_USERS:
            self._recent.popitem(last=False)

    @property
    def degraded(self) -> bool:
        """True while the file is unusable and the store works from memory."""
        return self.problem is not None

    def pending_writes(self) -> int:
        """How many changes wait in memory for the file (0 = everything is on disk)."""
        with self._lock:
            return (len(self._pending_users) + len(self._pending_votes) + sum(self._pending_questions.values())
                    + sum(self._pending_urgent.values()) + len(self._pending_attempts))

    def check(self) -> str | None:
        """Try the file now; None when it works, else what is wrong (for a start-up message)."""
        with self._lock:
            self._down_until = None
            try:
                self._use(lambda db: db.execute("SELECT COUNT(*) FROM users").fetchone())
            except _Unavailable:
                return self.problem
            return None

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
        """The stored state; None when there is none; defaults when the row is unreadable (logged, not deleted).

        While the file is unusable: what memory holds (a state read or written lately), else None.
        """
        with self._lock:
            try:  # a success has written everything pending first, so the row is the truth
                row = self._use(lambda db: db.execute(
                    "SELECT user_id, role, language, flow_id, step_id, staff_verified, created_at, updated_at, "
                    "staff_proof FROM users WHERE user_id = ?",
                    (user_id,),
                ).fetchone())
            except _Unavailable:
                if user_id in self._pending_users:
                    pending = self._pending_users[user_id]
                    return replace(pending) if pending is not None else None
                recent = self._recent.get(user_id)
                return replace(recent) if recent is not None else None
        if row is None:
            with self._lock:
                self._recent.pop(user_id, None)
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
                staff_proof=row[8],
            )
            state.validate()
        except (ValueError, TypeError):
            # Never log the content: it may be anything. Defaults with a timestamp tell the caller a row
            # exists, so its next save overwrites just this row.
            log.warning("unreadable state row in %s; starting that user afresh", self.path.name)
            return UserState(user_id=user_id, created_at=_stamp(_now()))
        with self._lock:
            self._remember(state)
        return state

    @staticmethod
    def _upsert(db: sqlite3.Connection, state: UserState, now: str) -> None:
        db.execute(
            """INSERT INTO users (user_id, role, language, flow_id, step_id, staff_verified, staff_proof,
                                  created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (user_id) DO UPDATE SET
                   role = excluded.role, language = excluded.language, flow_id = excluded.flow_id,
                   step_id = excluded.step_id, staff_verified = excluded.staff_verified,
                   staff_proof = excluded.staff_proof, updated_at = excluded.updated_at,
                   -- keep the first-seen time unless the stored one is damaged
                   created_at = CASE WHEN typeof(users.created_at) = 'text'
                                      AND users.created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*'
                                     THEN users.created_at ELSE excluded.created_at END""",
            (state.user_id, state.role, state.language, state.flow_id, state.step_id,
             int(state.staff_verified), state.staff_proof if state.staff_verified else None,
             state.created_at or now, now),
        )

    def save_user(self, state: UserState) -> None:
        """Insert or update; keeps `created_at`, sets `updated_at` to now (both also set on `state`).

        While the file is unusable the state is kept in memory and written when the file works again.
        """
        state.validate()
        now = _stamp(_now())

        def write(db: sqlite3.Connection) -> str:
            self._upsert(db, state, now)
            return db.execute("SELECT created_at FROM users WHERE user_id = ?", (state.user_id,)).fetchone()[0]

        with self._lock:
            try:
                created = self._use(write)
            except _Unavailable:
                created = state.created_at or now
                self._pending_users[state.user_id] = replace(state, created_at=created, updated_at=now)
            state.created_at, state.updated_at = created, now
            self._remember(state)

    def forget(self, user_id: str) -> bool:
        """Delete everything stored about `user_id`; True if there was something.

        While the file is unusable the user is gone from memory at once and the row is deleted as soon as
        the file can be written again (True: the deletion is under way).
        """
        with self._lock:
            self._recent.pop(user_id, None)
            try:
                return self._use(lambda db: db.execute("DELETE FROM users WHERE user_id = ?", (user_id,)).rowcount) > 0
            except _Unavailable:
                self._pending_users[user_id] = None
                log.warning("%s: a deletion waits in memory until the state file can be written",
                            self.path.name)
                return True

    def export_user(self, user_id: str) -> dict:
        """Everything stored about `user_id`, as stored (empty dict: nothing)."""
        def read(db: sqlite3.Connection):
            cursor = db.execute("SELECT * FROM users WHERE user_id = ?", (user_id,))
            return cursor.fetchone(), [column[0] for column in cursor.description]

        with self._lock:
            try:
                row, names = self._use(read)
            except _Unavailable:
                state = (self._pending_users[user_id] if user_id in self._pending_users
                         else self._recent.get(user_id))
            else:
                if row is None:
                    return {}
                # Show even a damaged row honestly, as text.
                return {name: (value if isinstance(value, (str, int, type(None))) else repr(value))
                        for name, value in zip(names, row, strict=True)}
        if state is None:
            return {}
        return {key: (int(value) if isinstance(value, bool) else value) for key, value in asdict(state).items()}

    def purge_idle(self, days: int) -> int:
        """Delete users untouched for more than `days` days (and old staff-code counters); returns how many."""
        cutoff = _stamp(_now() - timedelta(days=days))
        attempts_cutoff = _stamp(_now() - timedelta(days=ATTEMPTS_RETENTION_DAYS))

        def purge(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM staff_attempts WHERE first_at < ?", (attempts_cutoff,))
            return db.execute("DELETE FROM users WHERE updated_at < ?", (cutoff,)).rowcount

        with self._lock:
            for user_id in [u for u, s in self._recent.items() if (s.updated_at or "") < cutoff]:
                del self._recent[user_id]
            try:
                return self._use(purge)
            except _Unavailable:
                return 0

    # -- staff proof --------------------------------------------------------------------------------------
    def staff_proofs(self) -> list[tuple[str, str | None]]:
        """(user id, how staff was proven) for every verified user, to re-check at start."""
        with self._lock:
            try:
                rows = self._use(lambda db: db.execute(
                    "SELECT user_id, staff_proof FROM users WHERE staff_verified != 0").fetchall())
            except _Unavailable:
                rows = []
            found = dict(rows)
            for source in (self._recent, self._pending_users):
                for user_id, state in source.items():
                    if state is not None and state.staff_verified:
                        found[user_id] = state.staff_proof
        return sorted(found.items())

    def revoke_staff(self, user_id: str) -> None:
        """Take back a user's staff proof (the role stays; staff passages need proof again)."""
        state = self.get_user(user_id)
        if state is not None and state.staff_verified:
            state.staff_verified, state.staff_proof = False, None
            self.save_user(state)

    def count_attempt(self, key: str, window_seconds: float) -> int:
        """Count one wrong staff code under `key` (a keyed hash, never a user id); returns the count in the window.

        A counter older than the window starts again from one.
        """
        now = _now()
        started_after = _stamp(now - timedelta(seconds=window_seconds))

        def count(db: sqlite3.Connection) -> int:
            db.execute(
                """INSERT INTO staff_attempts (key, count, first_at) VALUES (?, 1, ?)
                   ON CONFLICT (key) DO UPDATE SET
                       count = CASE WHEN staff_attempts.first_at < ? THEN 1 ELSE staff_attempts.count + 1 END,
                       first_at = CASE WHEN staff_attempts.first_at < ? THEN excluded.first_at
                                       ELSE staff_attempts.first_at END""",
                (key, _stamp(now), started_after, started_after),
            )
            return db.execute("SELECT count FROM staff_attempts WHERE key = ?", (key,)).fetchone()[0]

        with self._lock:
            try:
                return self._use(count)
            except _Unavailable:
                stored = self._attempts_in_memory(key, started_after)
                total, first_at = self._memory_attempts.get(key, (stored, _stamp(now)))
                self._memory_attempts[key] = (total + 1, first_at)
                pending, pending_first = self._pending_attempts.get(key, (0, _stamp(now)))
                self._pending_attempts[key] = (pending + 1, pending_first)
                return total + 1

    def _attempts_in_memory(self, key: str, started_after: str) -> int:
        count, first_at = self._memory_attempts.get(key, (0, ""))
        return count if first_at >= started_after else 0

    def attempts(self, key: str, window_seconds: float) -> int:
        """Wrong codes under `key` within the window (0 when none or expired)."""
        started_after = _stamp(_now() - timedelta(seconds=window_seconds))
        with self._lock:
            try:
                row = self._use(lambda db: db.execute(
                    "SELECT count FROM staff_attempts WHERE key = ? AND first_at >= ?", (key, started_after)
                ).fetchone())
            except _Unavailable:
                return self._attempts_in_memory(key, started_after)
        return max(int(row[0]) if row else 0, self._attempts_in_memory(key, started_after))

    def clear_attempts(self, key: str) -> None:
        """Forget the wrong codes under `key` (after the right code was given)."""
        with self._lock:
            self._memory_attempts.pop(key, None)
            self._pending_attempts.pop(key, None)
            try:
                self._use(lambda db: db.execute("DELETE FROM staff_attempts WHERE key = ?", (key,)))
            except _Unavailable:
                pass

    # -- anonymous statistics ---------------------------------------------------------------------------
    def record_vote(self, passage_ids: Sequence[str], up: bool, documents: Sequence[str] | None = None) -> None:
        """Store one vote on an answer: the cited passage ids (and their documents), +1 or -1, a timestamp."""
        passage_ids = [str(pid) for pid in passage_ids]
        if documents is None:
            documents = [document_of(pid) for pid in passage_ids]
        row = (json.dumps(passage_ids), json.dumps([str(d) for d in documents]), 1 if up else -1, _stamp(_now()))
        with self._lock:
            try:
                self._use(lambda db: db.execute(
                    "INSERT INTO votes (passage_ids, documents, vote, created_at) VALUES (?, ?, ?, ?)", row))
            except _Unavailable:
                self._pending_votes.append(row)

    def record_question(self, answered: bool) -> None:
        """Count one question as answered or refused, for today."""
        key = (_now().date().isoformat(), int(bool(answered)))
        with self._lock:
            try:
                self._use(lambda db: db.execute(
                    """INSERT INTO question_outcomes (day, answered, count) VALUES (?, ?, 1)
                       ON CONFLICT (day, answered) DO UPDATE SET count = count + 1""", key))
            except _Unavailable:
                self._pending_questions[key] += 1

    def record_urgent(self) -> None:
        """Count one urgent (safety) reply for today; nothing else about it is kept."""
        day = _now().date().isoformat()
        with self._lock:
            try:
                self._use(lambda db: db.execute(
                    """INSERT INTO urgent_replies (day, count) VALUES (?, 1)
                       ON CONFLICT (day) DO UPDATE SET count = count + 1""", (day,)))
            except _Unavailable:
                self._pending_urgent[day] += 1

    def report(self) -> dict:
        """Votes per document, the share of refused questions and the number of urgent replies.

        Returns:
            {"documents": [{"document", "up", "down"}...] (most down-votes first),
             "questions": {"answered", "refused", "refused_share"}, "urgent_replies": int}

        Raises:
            Kap12Error: the state file cannot be read (a report from memory alone would mislead).
        """
        def read(db: sqlite3.Connection):
            votes = db.execute("SELECT documents, vote FROM votes").fetchall()
            outcomes = dict(db.execute(
                "SELECT answered, SUM(count) FROM question_outcomes GROUP BY answered").fetchall())
            urgent = db.execute("SELECT COALESCE(SUM(count), 0) FROM urgent_replies").fetchone()[0]
            return votes, outcomes, urgent

        with self._lock:
            self._down_until = None  # a report is asked for rarely: always try the file
            try:
                votes, outcomes, urgent = self._use(read)
            except _Unavailable:
                raise Kap12Error(self.problem or f"{self.path}: the state file cannot be read") from None
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


def _describe(path: Path, exc: Exception) -> str:
    """What is wrong with the state file, in words for the operator; never advice that loses data for a lock."""
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return (f"{path}: the state file is locked by another process ({text}); waiting and trying again. "
                "Do not delete it: the lock is temporary.")
    if "readonly" in lowered or "read-only" in lowered or isinstance(exc, PermissionError):
        return f"{path}: the state file or its folder cannot be written ({text}); check the permissions."
    if "full" in lowered or getattr(exc, "errno", None) == 28:
        return f"{path}: the disk is full ({text}); free some space."
    if "newer than this program" in lowered:
        return f"{path}: {text}; run the newer version of kap12-bot, or restore a backup of the file."
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in lowered or "malformed" in lowered):
        return (f"{path}: the state file is not a usable SQLite database ({text}); "
                "restore a backup, or stop the bot and move the file away to start afresh.")
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        return f"{path}: the data folder is not a folder ({text}); check KAP12_DATA_DIR."
    return f"{path}: the state file cannot be used ({exc.__class__.__name__}: {text})."


def _as_flag(value) -> bool:
    if value not in (0, 1):
        raise ValueError("staff_verified must be 0 or 1")
    return bool(value)


def _as_time(value) -> str:
    if not isinstance(value, str):
        raise ValueError("timestamp must be text")
    datetime.strptime(value, _TIME_FORMAT)
    return value
