"""Staff proof: attempt limits that outlive /slett and restarts, proofs that lapse, public group answers."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from fakes import FakeAnswerer

from bot.config import load_settings
from bot.dialog import Dialog
from bot.flows import load_flows
from bot.i18n import Catalog
from bot.staff_proof import GLOBAL_KEY, MAX_CODE_ATTEMPTS, MAX_GLOBAL_ATTEMPTS, public_only
from bot.store import SqliteStore

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
CATALOG = Catalog.load(KNOWLEDGE / "ui")
FLOWS = load_flows(KNOWLEDGE / "flows")
CODE, NEW_CODE = "Skole-2026-kode", "Ny-kode-for-2027"
USER = "tg:4242"


def t(key: str, lang: str = "nb", **fmt) -> str:
    return CATALOG.get(f"dialog.{key}", lang, **fmt)


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "data" / "state.sqlite3"


@pytest.fixture
def make(db_path):
    """make(code) → a Dialog requiring proof, over a fresh store on the same file (a restart)."""

    def build(code: str | None = CODE, answerer: FakeAnswerer | None = None) -> Dialog:
        settings = load_settings(staff_invite_code=code)
        return Dialog(settings, answerer or FakeAnswerer(), FLOWS, CATALOG, SqliteStore(db_path),
                      require_staff_proof=True)

    return build


def guess_until_locked(dialog: Dialog, user: str = USER) -> None:
    dialog.handle_button(user, "r|staff")
    for _ in range(MAX_CODE_ATTEMPTS - 1):
        assert dialog.handle_text(user, "gjetning-123")[0].text == t("staff_code_wrong")
    assert dialog.handle_text(user, "gjetning-123")[0].text.startswith(t("staff_code_locked"))


def test_slett_does_not_reset_the_lockout(make):
    dialog = make()
    guess_until_locked(dialog)
    assert dialog.handle_command(USER, "slett")[0].text == t("forgotten")
    assert dialog.store.get_user(USER) is None  # everything about the user is gone …
    reply = dialog.handle_button(USER, "r|staff")[0]
    assert t("staff_proof_unavailable") in reply.text  # … but the count of wrong codes is not
    dialog.handle_text(USER, CODE)
    assert dialog.store.get_user(USER).staff_verified is False


def test_a_restart_does_not_reset_the_lockout_and_the_count_expires(make, db_path):
    guess_until_locked(make())
    restarted = make()
    assert t("staff_proof_unavailable") in restarted.handle_button(USER, "r|staff")[0].text
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE staff_attempts SET first_at = '2001-01-01T00:00:00Z'")
    assert t("staff_code_prompt") in restarted.handle_button(USER, "r|staff")[0].text  # a day later: again


def test_the_count_is_kept_under_a_keyed_hash_not_the_user_id(make, db_path):
    dialog = make()
    dialog.handle_button(USER, "r|staff")
    dialog.handle_text(USER, "gjetning-123")
    dialog.handle_command(USER, "slett")
    with sqlite3.connect(db_path) as db:
        keys = [row[0] for row in db.execute("SELECT key FROM staff_attempts")]
    assert len(keys) == 2 and GLOBAL_KEY in keys
    assert all("4242" not in key for key in keys)
    assert b"4242" not in db_path.read_bytes()
    assert CODE.encode() not in db_path.read_bytes()


def test_wrong_codes_are_limited_for_everyone_together(make):
    dialog = make()
    users = [f"tg:{n}" for n in range(MAX_GLOBAL_ATTEMPTS // (MAX_CODE_ATTEMPTS - 1) + 1)]
    guesses = 0
    for user in users:
        dialog.handle_button(user, "r|staff")
        for _ in range(MAX_CODE_ATTEMPTS - 1):
            if guesses < MAX_GLOBAL_ATTEMPTS:
                dialog.handle_text(user, "gjetning-123")
                guesses += 1
    newcomer = "tg:99999"
    assert t("staff_proof_unavailable") in dialog.handle_button(newcomer, "r|staff")[0].text
    dialog.handle_text(newcomer, CODE)  # even the right code is not checked now: it is a question
    assert dialog.store.get_user(newcomer).staff_verified is False


def test_a_new_invite_code_takes_back_proofs_by_the_old_one(make):
    answerer = FakeAnswerer()
    dialog = make(answerer=answerer)
    dialog.handle_button(USER, "r|staff")
    assert dialog.handle_text(USER, CODE)[0].text.startswith(t("staff_verified"))
    dialog.handle_text(USER, "aktivitetsplan")
    assert answerer.asked[-1][1] == "staff"

    restarted = make(code=NEW_CODE, answerer=answerer)
    restarted.handle_text(USER, "aktivitetsplan")
    assert answerer.asked[-1][1] == "parent"  # the old code's proof no longer holds, even before recheck
    assert restarted.staff.recheck(allow_list=set()) == 1
    assert restarted.store.get_user(USER).staff_verified is False
    assert restarted.store.get_user(USER).role == "staff"  # the role stays; only the proof goes
    assert t("staff_code_prompt") in restarted.handle_button(USER, "r|staff")[0].text
    restarted.handle_text(USER, NEW_CODE)
    restarted.handle_text(USER, "aktivitetsplan")
    assert answerer.asked[-1][1] == "staff"


def test_an_id_that_left_the_allow_list_loses_its_proof(make):
    answerer = FakeAnswerer()
    dialog = make(code=None, answerer=answerer)
    dialog.handle_button(USER, "r|staff")
    dialog.staff.prove_by_allow_list(USER)
    dialog.handle_text(USER, "aktivitetsplan")
    assert answerer.asked[-1][1] == "staff"
    assert dialog.staff.recheck(allow_list={USER}) == 0  # still on the list: kept
    assert dialog.staff.recheck(allow_list={"tg:1"}) == 1
    dialog.handle_text(USER, "aktivitetsplan")
    assert answerer.asked[-1][1] == "parent"


def test_a_proof_from_before_proofs_were_recorded_holds_only_on_the_allow_list(make, db_path):
    dialog = make()
    dialog.handle_button(USER, "r|staff")
    dialog.handle_button("tg:7", "r|staff")
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE users SET staff_verified = 1, staff_proof = NULL")
    assert dialog.staff.recheck(allow_list={"tg:7"}) == 1
    assert dialog.store.get_user("tg:7").staff_verified is True
    assert dialog.store.get_user(USER).staff_verified is False


def test_public_only_gives_public_passages_whoever_asks_also_in_a_worker_thread(make):
    answerer = FakeAnswerer()
    dialog = make(answerer=answerer)
    dialog.handle_button(USER, "r|staff")
    dialog.handle_text(USER, CODE)
    with public_only():
        dialog.handle_text(USER, "aktivitetsplan", question_only=True)
    assert answerer.asked[-1][1] == "parent"
    dialog.handle_text(USER, "aktivitetsplan")
    assert answerer.asked[-1][1] == "staff"  # outside the block the proof counts again

    def in_group():
        with public_only():
            return dialog.handle_text(USER, "aktivitetsplan", question_only=True)

    async def both():  # a group answer and a private one at the same time, in two threads
        await asyncio.gather(asyncio.to_thread(in_group),
                             asyncio.to_thread(dialog.handle_text, "tg:other", "aktivitetsplan"))

    asyncio.run(both())
    roles = {role for question, role, _ in answerer.asked[-2:]}
    assert roles == {"parent"}
    assert dialog.role_for_retrieval(USER) == "staff"
