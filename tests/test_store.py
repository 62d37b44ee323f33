"""The SQLite state store: schema, round trips, privacy (what is and is not kept), corrupt rows, reports."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from bot.errors import Kap12Error
from bot.store import MIGRATIONS, SqliteStore, UserState


@pytest.fixture
def path(tmp_path):
    return tmp_path / "data" / "state.sqlite3"


@pytest.fixture
def store(path):
    store = SqliteStore(path)
    yield store
    store.close()


def raw(path, sql, params=()):
    with sqlite3.connect(path) as db:
        return db.execute(sql, params).fetchall()


def test_file_and_folder_are_created_on_first_use_with_all_migrations(path):
    store = SqliteStore(path)
    assert not path.exists()  # constructing does not touch the disk
    assert store.get_user("tg:1") is None
    assert path.exists()
    assert store.schema_version() == len(MIGRATIONS)
    assert raw(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    store.close()


def test_reopening_keeps_data_and_does_not_migrate_again(path):
    first = SqliteStore(path)
    first.save_user(UserState("tg:1", role="staff", language="nn", flow_id="ansatt-melde", step_id="melde"))
    first.close()
    second = SqliteStore(path)
    assert second.schema_version() == len(MIGRATIONS)
    state = second.get_user("tg:1")
    assert (state.role, state.language, state.flow_id, state.step_id) == ("staff", "nn", "ansatt-melde", "melde")
    second.close()


def test_only_role_language_position_flag_and_timestamps_are_stored(store, path):
    store.get_user("x")  # create the schema
    columns = {row[1] for row in raw(path, "PRAGMA table_info(users)")}
    assert columns == {"user_id", "role", "language", "flow_id", "step_id", "staff_verified", "staff_proof",
                       "created_at", "updated_at"}
    assert {row[1] for row in raw(path, "PRAGMA table_info(staff_attempts)")} == {"key", "count", "first_at"}
    assert {row[1] for row in raw(path, "PRAGMA table_info(votes)")} == {
        "id", "passage_ids", "documents", "vote", "created_at"}
    assert {row[1] for row in raw(path, "PRAGMA table_info(question_outcomes)")} == {"day", "answered", "count"}


def test_save_keeps_created_and_moves_updated(store, path):
    state = UserState("tg:1", role="parent")
    store.save_user(state)
    created = state.created_at
    raw(path, "UPDATE users SET updated_at = '2000-01-01T00:00:00Z', created_at = '2000-01-01T00:00:00Z'")
    again = store.get_user("tg:1")
    again.language = "en"
    store.save_user(again)
    assert created is not None
    loaded = store.get_user("tg:1")
    assert loaded.created_at == "2000-01-01T00:00:00Z"
    assert loaded.updated_at > "2000-01-01T00:00:00Z"
    assert loaded.language == "en"


@pytest.mark.parametrize(
    "bad",
    [
        UserState("tg:1", role="admin"),
        UserState("tg:1", language="de"),
        UserState("tg:1", flow_id="forelder-utrygg"),  # a flow without a step
        UserState("tg:1", flow_id="../etc", step_id="x"),
        UserState(""),
    ],
)
def test_saving_an_invalid_state_is_a_bug(store, bad):
    with pytest.raises(ValueError):
        store.save_user(bad)


def test_forget_removes_that_user_only(store):
    store.save_user(UserState("tg:1", role="parent", flow_id="forelder-utrygg", step_id="noter"))
    store.save_user(UserState("tg:2", role="staff"))
    assert store.forget("tg:1") is True
    assert store.get_user("tg:1") is None
    assert store.export_user("tg:1") == {}
    assert store.forget("tg:1") is False
    assert store.get_user("tg:2").role == "staff"


def test_export_shows_exactly_what_is_stored(store):
    store.save_user(UserState("console", role="new_teacher", language="nn", flow_id="nyutdannet", step_id="q1"))
    exported = store.export_user("console")
    assert exported["role"] == "new_teacher" and exported["step_id"] == "q1" and exported["staff_verified"] == 0
    assert set(exported) == {"user_id", "role", "language", "flow_id", "step_id", "staff_verified", "staff_proof",
                             "created_at", "updated_at"}


@pytest.mark.parametrize(
    "column, garbage",
    [
        ("role", "superuser"),
        ("language", "klingon"),
        ("language", b"\x00\xff\xfe"),
        ("staff_verified", 7),
        ("flow_id", "'; DROP TABLE users; --"),
        ("updated_at", "yesterday-ish"),
        ("created_at", 3.14),
    ],
)
def test_a_corrupt_row_reads_as_defaults_and_leaves_other_rows_alone(store, path, caplog, column, garbage):
    store.save_user(UserState("tg:bad", role="parent", flow_id="forelder-utrygg", step_id="noter"))
    store.save_user(UserState("tg:good", role="staff", language="en", flow_id="ansatt-melde", step_id="melde"))
    raw(path, f"UPDATE users SET {column} = ? WHERE user_id = 'tg:bad'", (garbage,))
    with caplog.at_level(logging.WARNING, logger="bot.store"):
        state = store.get_user("tg:bad")
    assert state == UserState("tg:bad", created_at=state.created_at)  # defaults: a fresh start
    assert "unreadable state row" in caplog.text
    assert str(garbage) not in caplog.text and "tg:bad" not in caplog.text  # no content in the log
    good = store.get_user("tg:good")
    assert (good.role, good.language, good.step_id) == ("staff", "en", "melde")
    assert store.export_user("tg:bad")["user_id"] == "tg:bad"  # still shown honestly, and still deletable
    store.save_user(UserState("tg:bad", role="parent"))  # the next save repairs just that row
    assert store.get_user("tg:bad").role == "parent"
    assert len(raw(path, "SELECT * FROM users")) == 2


def test_purge_idle_deletes_only_old_rows(store, path):
    store.save_user(UserState("tg:old"))
    store.save_user(UserState("tg:new"))
    raw(path, "UPDATE users SET updated_at = '2001-01-01T00:00:00Z' WHERE user_id = 'tg:old'")
    assert store.purge_idle(90) == 1
    assert store.get_user("tg:old") is None and store.get_user("tg:new") is not None


def test_report_counts_votes_per_document_and_the_refused_share(store, path):
    store.record_vote(["k12#a", "k12#b", "foreldre#c"], up=True,
                      documents=["Kapittel 12 forklart", "Kapittel 12 forklart", "Veiledning for foreldre"])
    store.record_vote(["k12#a"], up=False, documents=["Kapittel 12 forklart"])
    store.record_vote(["rutiner#x"], up=False)  # no documents given: derived from the passage id
    for answered in (True, True, True, False):
        store.record_question(answered)
    report = store.report()
    assert report["documents"] == [
        {"document": "Kapittel 12 forklart", "up": 1, "down": 1},  # one vote counts once per document
        {"document": "rutiner", "up": 0, "down": 1},
        {"document": "Veiledning for foreldre", "up": 1, "down": 0},
    ]
    assert report["questions"] == {"answered": 3, "refused": 1, "refused_share": 0.25}
    assert raw(path, "SELECT vote FROM votes ORDER BY id") == [(1,), (-1,), (-1,)]


def test_empty_report(store):
    assert store.report() == {
        "documents": [], "questions": {"answered": 0, "refused": 0, "refused_share": 0.0}, "urgent_replies": 0
    }


def test_a_file_that_is_not_sqlite_gives_a_clear_error_and_the_bot_goes_on_from_memory(path, caplog):
    path.parent.mkdir(parents=True)
    garbage = b"this is not a database at all" * 100
    path.write_bytes(garbage)
    store = SqliteStore(path)
    with caplog.at_level(logging.ERROR, logger="bot.store"):
        assert store.get_user("tg:1") is None
    assert "not a usable SQLite database" in caplog.text
    store.save_user(UserState("tg:1", role="staff", flow_id="ansatt-melde", step_id="melde"))
    assert store.get_user("tg:1").step_id == "melde"  # the conversation goes on from memory
    with pytest.raises(Kap12Error, match="not a usable SQLite database"):
        store.report()  # a report from memory alone would mislead
    assert path.read_bytes() == garbage  # the damaged file is left for the operator, never overwritten


def test_urgent_replies_are_only_counted(tmp_path):
    store = SqliteStore(tmp_path / "s.sqlite3")
    store.record_urgent()
    store.record_urgent()
    assert store.report()["urgent_replies"] == 2
    rows = store._conn().execute("SELECT * FROM urgent_replies").fetchall()
    assert len(rows) == 1 and len(rows[0]) == 2  # a day and a count, nothing else


# -- faults: the store keeps working from memory and recovers without a restart (D6, D10, D12) ----------------
class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def faulty_store(path, **options):
    clock = Clock()
    return SqliteStore(path, busy_timeout=0.2, retry_after=5.0, clock=clock, **options), clock


def test_folder_is_0700_and_file_0600(path, tmp_path):
    store = SqliteStore(path)
    store.save_user(UserState("tg:1", role="parent"))
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    store.close()
    path.chmod(0o644)  # a file from an older version is tightened on the next start
    SqliteStore(path).get_user("tg:1")
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_lock_held_by_another_process_costs_a_bounded_wait_and_nothing_is_lost(path, caplog):
    import time

    store, clock = faulty_store(path)
    store.save_user(UserState("tg:1", role="parent", flow_id="forelder-utrygg", step_id="noter"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # a second connection holds the lock
    try:
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="bot.store"):
            moved = store.get_user("tg:1")
            moved.step_id = "kontakt"
            store.save_user(moved)
            store.record_question(True)
            store.record_vote(["k12#a"], up=True)
            assert store.forget("tg:2") is True  # a deletion under way
        assert time.monotonic() - started < 1.5  # one bounded wait, then memory
        assert store.get_user("tg:1").step_id == "kontakt"
        assert store.degraded and store.pending_writes() >= 3
        assert "locked" in caplog.text and "Do not delete" in caplog.text
        assert "move it away" not in caplog.text.lower() and "move the file away" not in caplog.text
    finally:
        other.execute("ROLLBACK")
        other.close()
    clock.now += 6  # the next try after the pause writes everything kept in memory
    assert store.get_user("tg:1").step_id == "kontakt"
    assert not store.degraded and store.pending_writes() == 0
    assert raw(path, "SELECT step_id FROM users WHERE user_id = 'tg:1'") == [("kontakt",)]
    assert store.report()["questions"]["answered"] == 1 and store.report()["documents"][0]["up"] == 1


def test_read_only_state_answers_from_memory_and_recovers_without_restart(path, monkeypatch):
    store, clock = faulty_store(path)
    store.save_user(UserState("tg:1", role="staff", language="nn"))
    store.close()
    real_connect = sqlite3.connect
    read_only = [True]

    def connect(target, *args, **kwargs):  # the file system turned read-only (tests run as root: chmod won't do)
        if read_only[0]:
            return real_connect(f"file:{target}?mode=ro", *args, uri=True, **kwargs)
        return real_connect(target, *args, **kwargs)

    monkeypatch.setattr("bot.store.sqlite3.connect", connect)
    assert store.get_user("tg:1").language == "nn"  # reading works
    state = store.get_user("tg:1")
    state.language = "en"
    store.save_user(state)  # writing fails: kept in memory
    assert store.degraded and store.get_user("tg:1").language == "en"
    assert store.forget("tg:1") is True and store.get_user("tg:1") is None  # /slett works at once
    read_only[0] = False
    clock.now += 6
    assert store.get_user("tg:1") is None and not store.degraded
    assert raw(path, "SELECT COUNT(*) FROM users") == [(0,)]  # the deletion reached the file


def test_a_full_disk_keeps_counts_in_memory_until_there_is_room(path, monkeypatch):
    store, clock = faulty_store(path)
    store.get_user("x")
    store.close()
    real_connect = sqlite3.connect
    full = [True]

    def connect(target, *args, **kwargs):
        db = real_connect(target, *args, **kwargs)
        if full[0]:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages}")  # no page more: "database or disk is full"
        return db

    monkeypatch.setattr("bot.store.sqlite3.connect", connect)
    for number in range(200):  # enough rows to need a new page
        store.save_user(UserState(f"tg:{number}", role="parent"))
        store.record_question(number % 2 == 0)
    assert store.degraded
    assert store.get_user("tg:199").role == "parent"
    full[0] = False
    clock.now += 6
    assert store.report()["questions"] == {"answered": 100, "refused": 100, "refused_share": 0.5}
    assert raw(path, "SELECT COUNT(*) FROM users") == [(200,)]


def test_a_newer_schema_is_never_written_to(path, caplog):
    store = SqliteStore(path)
    store.get_user("x")
    store.close()
    raw(path, "PRAGMA user_version = 99")
    store, _ = faulty_store(path)
    with caplog.at_level(logging.ERROR, logger="bot.store"):
        store.save_user(UserState("tg:1", role="pupil"))
    assert "newer than this program" in caplog.text
    assert store.get_user("tg:1").role == "pupil"
    assert raw(path, "SELECT COUNT(*) FROM users") == [(0,)]
    assert raw(path, "PRAGMA user_version") == [(99,)]


def test_a_data_dir_that_is_a_file(tmp_path, caplog):
    (tmp_path / "data").write_text("oops")
    store, _ = faulty_store(tmp_path / "data" / "state.sqlite3")
    with caplog.at_level(logging.ERROR, logger="bot.store"):
        store.save_user(UserState("tg:1", role="parent"))
        store.record_urgent()
    assert store.get_user("tg:1").role == "parent" and store.forget("tg:1") is True
    assert "not a folder" in caplog.text or "cannot be used" in caplog.text
    assert store.check() is not None
    with pytest.raises(Kap12Error):
        store.report()


def test_staff_code_attempts_survive_a_new_store_and_expire(path):
    store = SqliteStore(path)
    assert [store.count_attempt("k1", 3600) for _ in range(3)] == [1, 2, 3]
    store.close()
    again = SqliteStore(path)
    assert again.attempts("k1", 3600) == 3 and again.attempts("k2", 3600) == 0
    raw(path, "UPDATE staff_attempts SET first_at = '2001-01-01T00:00:00Z'")
    assert again.attempts("k1", 3600) == 0  # expired
    assert again.count_attempt("k1", 3600) == 1  # a new window
    again.clear_attempts("k1")
    assert again.attempts("k1", 3600) == 0
    raw(path, "INSERT INTO staff_attempts VALUES ('old', 3, '2001-01-01T00:00:00Z')")
    again.purge_idle(90)
    assert raw(path, "SELECT key FROM staff_attempts") == []


def test_staff_proofs_are_listed_and_revoked(store):
    store.save_user(UserState("tg:1", role="staff", staff_verified=True, staff_proof="list"))
    store.save_user(UserState("tg:2", role="new_teacher", staff_verified=True, staff_proof="code:" + "ab" * 8))
    store.save_user(UserState("tg:3", role="parent"))
    assert store.staff_proofs() == [("tg:1", "list"), ("tg:2", "code:" + "ab" * 8)]
    store.revoke_staff("tg:2")
    state = store.get_user("tg:2")
    assert (state.role, state.staff_verified, state.staff_proof) == ("new_teacher", False, None)
    with pytest.raises(ValueError):
        store.save_user(UserState("tg:4", staff_verified=True, staff_proof="anything else"))
