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
    assert columns == {"user_id", "role", "language", "flow_id", "step_id", "staff_verified",
                       "created_at", "updated_at"}
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
    assert set(exported) == {"user_id", "role", "language", "flow_id", "step_id", "staff_verified",
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


def test_a_file_that_is_not_sqlite_gives_a_clear_error(path):
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(Kap12Error, match="not a usable SQLite database"):
        SqliteStore(path).get_user("tg:1")


def test_urgent_replies_are_only_counted(tmp_path):
    store = SqliteStore(tmp_path / "s.sqlite3")
    store.record_urgent()
    store.record_urgent()
    assert store.report()["urgent_replies"] == 2
    rows = store._conn().execute("SELECT * FROM urgent_replies").fetchall()
    assert len(rows) == 1 and len(rows[0]) == 2  # a day and a count, nothing else
