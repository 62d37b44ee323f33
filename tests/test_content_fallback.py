"""A broken content file (routing, scope, glossary, catalogue, flow, safety data …) never stops the bot (D7).

Each index build keeps a copy of the content files that load cleanly; at start-up a file that fails is
named in one warning line and served from that copy. Users keep getting answers, walkthrough steps and
help numbers; the broken file itself, the index in service and the users' stored state stay as they were.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot import cli
from bot.config import load_settings
from bot.content import CONTENT_DIR, PARTS, Content, load_catalog, required_ui_keys
from bot.dialog import build_dialog
from bot.embed import HashEmbedder
from bot.errors import DocumentError, FlowError
from bot.index import build_index
from bot.lexical import Glossary
from paths import KNOWLEDGE, REPO

CONTENT = ["ui", "flows", "safety", "help", "drafts", "scope", "routing.yaml", "scope.yaml", "glossary.yaml",
           "explain.yaml"]
DOCUMENTS = ["kapittel-12-forklart.md", "veiledning-for-foreldre.md"]
USER = "u1"
FLOW = "forelder-utrygg"


def small_knowledge(folder: Path) -> Path:
    """The shipped content files and two documents: builds in seconds with the hash embedder."""
    folder.mkdir(parents=True)
    for name in CONTENT:
        source = KNOWLEDGE / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        else:
            shutil.copyfile(source, folder / name)
    for name in DOCUMENTS:
        shutil.copyfile(KNOWLEDGE / name, folder / name)
    shutil.copyfile(KNOWLEDGE / "situations.yaml", folder / "situations.yaml")  # the documents' `when` names these
    return folder


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, Path]:
    """(knowledge folder, index folder): an index built while every content file was good."""
    base = tmp_path_factory.mktemp("content-good")
    knowledge = small_knowledge(base / "knowledge")
    build_index(knowledge, base / "index", HashEmbedder())
    return knowledge, base / "index"


@pytest.fixture
def live(good, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the good knowledge folder to break, with settings pointing at it and the good index."""
    knowledge = tmp_path / "knowledge"
    shutil.copytree(good[0], knowledge)
    monkeypatch.setenv("KAP12_KNOWLEDGE_DIR", str(knowledge))
    monkeypatch.setenv("KAP12_INDEX_DIR", str(good[1]))
    return knowledge


def drop_key(folder: Path, key: str) -> None:
    """Remove `key` from the catalogue in every language (keys are one line each in the shipped files)."""
    for lang in ("nb", "nn", "en"):
        path = folder / "ui" / f"{key.split('.')[0]}.{lang}.yaml"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith(f"{key}:")]
        assert len(kept) == len(lines) - 1
        path.write_text("".join(kept), encoding="utf-8")


def button_to_nowhere(folder: Path) -> None:
    path = folder / "flows" / f"{FLOW}.yaml"
    text = path.read_text(encoding="utf-8")
    first = re.search(r"next: ([a-z0-9-]+)", text)
    path.write_text(text.replace(first.group(0), "next: finnes-ikke", 1), encoding="utf-8")


# file → what breaks it: new text (invalid YAML, the wrong structure) or a change (a flow button to a missing
# step, a key missing in every language, a deleted file or folder).
BREAKS = {
    "routing-yaml": ("routing.yaml", "action_phrases: [hva gjør jeg\n"),
    "routing-shape": ("routing.yaml", "flows: {forelder-utrygg: 1}\n"),
    "scope-yaml": ("scope.yaml", "out_of_scope:\n  - 'SFO\n  bad: [\n"),
    "scope-shape": ("scope.yaml", "- Skoleruta\n- Karakterer\n"),
    "glossary-shape": ("glossary.yaml", "canonical: [mobbing]\n"),
    "explain-shape": ("explain.yaml", "terms:\n  - {id: rektor, words: [rektor]}\n"),
    "catalogue-yaml": ("ui/dialog.nb.yaml", "dialog.menu: 'x\n"),
    "catalogue-shape": ("ui/safety.nn.yaml", "- a\n- b\n"),
    "catalogue-key": ("ui/dialog.nb.yaml", lambda k: drop_key(k, "dialog.menu")),
    "flow-yaml": (f"flows/{FLOW}.yaml", "id: [\n"),
    "flow-missing-step": (f"flows/{FLOW}.yaml", button_to_nowhere),
    "safety-numbers": ("safety/numbers.yaml", "max_numbers: [\n"),
    "helplines-shape": ("help/helplines.yaml", "helplines: 113\n"),
    "helplines-gone": ("help/helplines.yaml", lambda k: (k / "help" / "helplines.yaml").unlink()),
    "safety-gone": ("safety", lambda k: shutil.rmtree(k / "safety")),
    "distress": ("scope/distress.yaml", "words: mobbing\n"),
    "conversation": ("scope/conversation.yaml", "intents: [\n"),
    "drafts": ("drafts/note.yaml", "- not a mapping\n"),
    "contacts": ("help/contacts.yaml", "offices: {\n"),
}


def break_file(knowledge: Path, case: str) -> str:
    """Apply BREAKS[case] to the knowledge folder; returns the broken file's path relative to it."""
    rel, change = BREAKS[case]
    if callable(change):
        change(knowledge)
    else:
        (knowledge / rel).write_text(change, encoding="utf-8")
    return rel


def snapshot_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def serve_a_user(dialog) -> None:
    """An answer, a walkthrough step and its next step, and help numbers, through the dialog core."""
    error = dialog.catalog.get("dialog.error", "nb")
    dialog.handle_button(USER, "r|parent")
    replies = dialog.handle_text(USER, "Hva må skolen gjøre når barnet mitt blir mobbet?")
    assert replies and all(r.text and r.kind != "error" and error not in r.text for r in replies)
    [step] = [r for r in dialog.handle_button(USER, f"f|{FLOW}") if r.kind == "flow_step"]
    presses = [b.data for row in step.buttons for b in row if b.data.startswith(f"s|{FLOW}|")]
    assert presses
    [after] = [r for r in dialog.handle_button(USER, presses[0]) if r.kind == "flow_step"]
    assert after.text and after.text != step.text
    urgent = [r for r in dialog.handle_text("u2", "jeg vil ikke leve mer") if r.kind == "urgent"]
    assert urgent and "113" in {h["number"] for h in urgent[0].help}


def one_warning(caplog, name: str) -> str:
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.content" and r.levelno == logging.WARNING]
    assert len(lines) == 1, lines
    assert name in lines[0] and "\n" not in lines[0] and "last good copy" in lines[0]
    return lines[0]


# -------------------------------------------------------------------------------------------- the build


def test_a_build_keeps_a_copy_of_every_content_file(good):
    knowledge, index_dir = good
    copy = index_dir / "current" / CONTENT_DIR
    expected = sorted({rel for part in PARTS for rel in part.paths(knowledge)})
    assert sorted(snapshot_of(copy)) == expected
    assert {"routing.yaml", "ui/dialog.nb.yaml", f"flows/{FLOW}.yaml", "safety/numbers.yaml",
            "help/helplines.yaml", "scope/distress.yaml", "drafts/note.yaml"} <= set(expected)
    assert all((copy / rel).read_bytes() == (knowledge / rel).read_bytes() for rel in expected)


def test_a_rebuild_keeps_the_good_copy_of_a_broken_file_and_takes_the_fixed_one(good, tmp_path):
    knowledge, index_dir = tmp_path / "knowledge", tmp_path / "index"
    shutil.copytree(good[0], knowledge)
    shutil.copytree(good[1], index_dir, symlinks=True)
    flow = f"flows/{FLOW}.yaml"
    good_flow = (knowledge / flow).read_bytes()
    button_to_nowhere(knowledge)
    (knowledge / "glossary.yaml").write_text("- canonical: [mobbing, skolemiljø]\n", encoding="utf-8")

    summary = build_index(knowledge, index_dir, HashEmbedder())
    copy = index_dir / "current" / CONTENT_DIR
    assert (copy / flow).read_bytes() == good_flow  # the last good copy, carried into the new build
    assert (copy / "glossary.yaml").read_bytes() == (knowledge / "glossary.yaml").read_bytes()  # a good edit
    [warning] = [w for w in summary.warnings if FLOW in w]
    assert "finnes-ikke" in warning and "keeps its last good copy" in warning and "\n" not in warning

    (knowledge / flow).write_bytes(good_flow.replace(b"Hvor er dere n", b"Hvor er dere akkurat n"))
    assert not build_index(knowledge, index_dir, HashEmbedder()).warnings
    assert (index_dir / "current" / CONTENT_DIR / flow).read_bytes() == (knowledge / flow).read_bytes()


def test_a_broken_file_without_a_good_copy_is_a_build_warning_not_a_failed_build(tmp_path):
    knowledge = small_knowledge(tmp_path / "knowledge")
    (knowledge / "routing.yaml").write_text("flows: [\n", encoding="utf-8")
    summary = build_index(knowledge, tmp_path / "index", HashEmbedder())
    [warning] = summary.warnings
    assert "routing.yaml" in warning and "no good copy" in warning
    assert not (tmp_path / "index" / "current" / CONTENT_DIR / "routing.yaml").exists()
    assert (tmp_path / "index" / "current" / CONTENT_DIR / "scope.yaml").exists()


# ---------------------------------------------------------------------------------------------- serving


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_the_bot_starts_and_serves_with_a_broken_file(case, live, good, caplog):
    settings = load_settings()
    build_dialog(settings).handle_button(USER, "r|parent")  # a user whose state must survive
    name = break_file(live, case)
    broken = snapshot_of(live)
    in_service = os.readlink(good[1] / "current")

    with caplog.at_level(logging.WARNING):
        dialog = build_dialog(settings)
    warning = one_warning(caplog, name)
    assert str(live / name) in warning
    assert dialog.store.get_user(USER).role == "parent"
    serve_a_user(dialog)
    assert snapshot_of(live) == broken  # the broken file is left for its editor to fix
    assert os.readlink(good[1] / "current") == in_service


def test_a_missing_key_is_served_from_the_good_copy_in_every_language(live, caplog):
    drop_key(live, "dialog.menu")
    with caplog.at_level(logging.WARNING):
        dialog = build_dialog(load_settings())
    assert "lacks dialog.menu" in one_warning(caplog, "ui/dialog.nb.yaml")
    shipped = load_catalog(KNOWLEDGE)
    assert dialog.catalog.get("dialog.menu", "nb") == shipped.get("dialog.menu", "nb")
    assert dialog.catalog.get("dialog.menu", "en")  # nn and en lack it: bokmål, never a KeyError


def test_several_broken_files_each_get_their_line(live, caplog):
    break_file(live, "routing-yaml")
    break_file(live, "flow-missing-step")
    break_file(live, "catalogue-shape")
    with caplog.at_level(logging.WARNING):
        serve_a_user(build_dialog(load_settings()))
    warnings = "\n".join(r.getMessage() for r in caplog.records if r.name == "bot.content")
    assert len(warnings.splitlines()) == 3
    assert all(name in warnings for name in ("routing.yaml", f"{FLOW}.yaml", "safety.nn.yaml"))


def test_kap12_chat_starts_with_a_broken_catalogue(live, monkeypatch, capsys, caplog):
    break_file(live, "catalogue-yaml")
    monkeypatch.setattr("sys.stdin", io.StringIO("/start\n1\n"))
    with caplog.at_level(logging.WARNING):
        assert cli.main(["chat"]) == 0
    one_warning(caplog, "ui/dialog.nb.yaml")
    assert "> 1" in capsys.readouterr().out


def test_kap12_report_uses_the_good_catalogue(live, capsys):
    break_file(live, "catalogue-shape")
    assert cli.main(["report"]) == 0
    assert capsys.readouterr().out.strip()


# --------------------------------------------------------------------------------- one line, no traceback


def run_kap12(*args: str, knowledge: Path, index: Path, data: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP12_")}
    env.update(KAP12_KNOWLEDGE_DIR=str(knowledge), KAP12_INDEX_DIR=str(index), KAP12_DATA_DIR=str(data),
               KAP12_EMBEDDER="hash", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=env,
                          cwd=data.parent, stdin=subprocess.DEVNULL, timeout=300)


def only_line(stderr: str, path: Path) -> str:
    """The one line on stderr, which names `path` (no traceback, no other noise)."""
    [line] = stderr.splitlines()
    assert str(path) in line
    return line


def test_kap12_ask_answers_and_names_the_broken_file_on_one_line(live, good, tmp_path):
    break_file(live, "routing-yaml")
    done = run_kap12("ask", "--json", "Hva må skolen gjøre når barnet mitt blir mobbet?",
                     knowledge=live, index=good[1], data=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer"]
    line = only_line(done.stderr, live / "routing.yaml")
    assert "WARNING" in line and "last good copy" in line


def test_without_a_good_copy_the_error_is_one_line_naming_the_file(live, good, tmp_path):
    older = tmp_path / "older-index"  # built before copies were kept: there is no good copy anywhere
    shutil.copytree(good[1], older, symlinks=True)
    shutil.rmtree(older / "current" / CONTENT_DIR)
    good_routing = (live / "routing.yaml").read_bytes()
    break_file(live, "routing-shape")
    for command in (["ask", "mobbing"], ["chat"]):
        done = run_kap12(*command, knowledge=live, index=older, data=tmp_path / "data")
        assert done.returncode == 1
        line = only_line(done.stderr, live / "routing.yaml")
        assert line.startswith(f"kap12: {live / 'routing.yaml'}: 'flows' must be a list of rules")
    (live / "routing.yaml").write_bytes(good_routing)
    break_file(live, "flow-missing-step")
    done = run_kap12("chat", knowledge=live, index=older, data=tmp_path / "data")
    assert done.returncode == 1
    line = only_line(done.stderr, live / "flows")
    assert line.startswith(f"kap12: {live / 'flows' / (FLOW + '.yaml')}, step ") and "'finnes-ikke'" in line


# ------------------------------------------------------------------------------------------------ units


def test_a_multi_line_yaml_error_becomes_one_line_naming_the_file_in_knowledge(tmp_path):
    (tmp_path / "glossary.yaml").write_text("- canonical: [a\n  variants: b\n", encoding="utf-8")
    with pytest.raises(DocumentError) as caught:
        Content(tmp_path, None).load(lambda root: Glossary.load(root / "glossary.yaml"))
    assert str(caught.value).startswith(f"{tmp_path / 'glossary.yaml'}: cannot read the glossary")
    assert "\n" not in str(caught.value)


def test_a_good_copy_that_fails_too_is_reported_not_looped(tmp_path):
    live, kept = tmp_path / "live", tmp_path / "kept"
    for folder in (live, kept):
        (folder / "flows").mkdir(parents=True)
        (folder / "flows" / "a.yaml").write_text("id: [\n", encoding="utf-8")
    from bot.flows import load_flows

    with pytest.raises(Exception, match=r"a\.yaml.*its last good copy does not load either") as caught:
        Content(live, kept, announce=False).load(lambda root: load_flows(root / "flows"))
    assert not isinstance(caught.value, FlowError) and "\n" not in str(caught.value)


def test_the_shipped_catalogue_has_every_required_key():
    catalog = load_catalog(KNOWLEDGE)
    assert all(key in catalog for key in required_ui_keys())
