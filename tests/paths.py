"""Where the tests find the repository's content (importable as `paths` from every test module)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KNOWLEDGE = REPO / "knowledge"
EVAL = REPO / "eval"
DEV_QUESTIONS = EVAL / "questions-dev.yaml"
