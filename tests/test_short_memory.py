"""The in-memory short memory for follow-ups and for the writer after help numbers: bounded and expiring."""

from bot import questions
from bot.questions import _ShortMemory


def test_a_value_is_kept_for_a_while_then_forgotten(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(questions.time, "monotonic", lambda: now[0])
    memory = _ShortMemory()
    memory.put("u1", "pupil")
    now[0] += questions.RECENT_SECONDS - 1
    assert memory.get("u1") == "pupil"
    now[0] += 2
    assert memory.get("u1") is None and memory.get("nobody") is None


def test_the_oldest_users_go_first_and_forget_removes_one(monkeypatch):
    monkeypatch.setattr(questions, "RECENT_USERS", 2)
    memory = _ShortMemory()
    for user in ("a", "b", "c"):
        memory.put(user, user.upper())
    assert (memory.get("a"), memory.get("b"), memory.get("c")) == (None, "B", "C")
    memory.forget("b")
    assert memory.get("b") is None and memory.get("c") == "C"
