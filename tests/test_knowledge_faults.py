"""Knowledge-folder and command-line faults: unreadable or huge files, interrupted builds, stray build folders,
invalid UTF-8 (D7, D11, D14). The index in service always keeps serving."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bot import cli, index
from bot.embed import HashEmbedder
from bot.errors import DocumentError
from bot.ingest import MAX_FILE_BYTES, load_documents

DOC = """---
title: Testdokument {n}
kind: guidance
audience: public
language: nb
updated: 2026-01-01
---

# Mobbing {n}

Skolen skal sørge for at elevene har et trygt og godt skolemiljø. Avsnitt nummer {n} om aktivitetsplikten.
"""


def knowledge(tmp_path: Path, documents: int = 3) -> Path:
    folder = tmp_path / "knowledge"
    folder.mkdir()
    for n in range(documents):
        (folder / f"dok-{n}.md").write_text(DOC.format(n=n), encoding="utf-8")
    return folder


def test_an_unreadable_file_is_named_not_a_traceback(tmp_path, monkeypatch):
    folder = knowledge(tmp_path)
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == "dok-1.md":  # as if run as another user (tests run as root, so chmod would not do)
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(DocumentError, match=r"dok-1\.md: cannot be read \(Permission denied\)"):
        load_documents(folder)


def test_a_huge_file_is_refused_at_once(tmp_path):
    folder = knowledge(tmp_path)
    (folder / "rapport.txt").write_bytes(b"mobbing og skolemiljo " * (MAX_FILE_BYTES // 20))
    with pytest.raises(DocumentError, match=r"rapport\.txt: is \d+ MB; a knowledge file may be at most 5 MB"):
        load_documents(folder)


class InterruptedEmbedder(HashEmbedder):
    """Embeds `budget` passages, then acts as if Ctrl-C (or SIGTERM through `kap12`) arrived."""

    def __init__(self, budget: int):
        super().__init__()
        self.budget = budget
        self.embedded = 0

    def embed_batch(self, texts, kind="passage"):
        if kind == "passage":
            if self.embedded >= self.budget:
                raise KeyboardInterrupt
            self.embedded += len(texts)
        return super().embed_batch(texts, kind)


def test_an_interrupted_build_keeps_its_embeddings_and_the_next_one_resumes(tmp_path, monkeypatch):
    folder = knowledge(tmp_path, documents=40)
    monkeypatch.setattr(index, "CHECKPOINT_CHUNK", 4)
    first = InterruptedEmbedder(budget=12)
    with pytest.raises(KeyboardInterrupt):
        index.build_index(folder, tmp_path / "index", first, batch_size=4)
    assert not (tmp_path / "index" / "current").exists()
    resumed = InterruptedEmbedder(budget=10_000)
    summary = index.build_index(folder, tmp_path / "index", resumed, batch_size=4)
    assert summary.reused >= 12 and summary.embedded == summary.passages - summary.reused
    assert resumed.embedded == summary.embedded


def test_the_cache_is_saved_during_a_long_build(tmp_path, monkeypatch):
    folder = knowledge(tmp_path, documents=12)
    monkeypatch.setattr(index, "CHECKPOINT_CHUNK", 4)
    monkeypatch.setattr(index, "CHECKPOINT_SECONDS", 0.0)
    saves = []
    real_save = index._save_cache
    monkeypatch.setattr(index, "_save_cache", lambda *a: (saves.append(len(a[2])), real_save(*a)))
    index.build_index(folder, tmp_path / "index", HashEmbedder(), batch_size=4)
    assert len(saves) >= 3 and saves[0] < saves[-1]  # checkpoints along the way, then the final save


def test_stray_build_folders_of_dead_builds_are_removed(tmp_path):
    folder = knowledge(tmp_path)
    index_dir = tmp_path / "index"
    index.build_index(folder, index_dir, HashEmbedder())
    builds = index_dir / "builds"
    dead = builds / ".tmp-20200101-000000-999999999-1"
    (dead / "lexical").mkdir(parents=True)
    (dead / "passages.jsonl").write_text("{}\n")
    alive = builds / f".tmp-20200101-000000-{os.getppid()}-2"  # a build still running in another process
    alive.mkdir()
    stale_link = index_dir / ".current-999999999"
    stale_link.symlink_to("builds/nowhere")
    index.build_index(folder, index_dir, HashEmbedder())
    assert not dead.exists() and not stale_link.is_symlink()
    assert alive.exists()
    assert len([p for p in builds.iterdir() if not p.name.startswith(".")]) == 1
    shutil.rmtree(alive)


def test_run_keeps_the_old_index_when_the_update_fails_in_any_way(tmp_path, monkeypatch, capsys):
    settings_dir = knowledge(tmp_path)
    monkeypatch.setenv("KAP12_KNOWLEDGE_DIR", str(settings_dir))
    monkeypatch.setenv("KAP12_INDEX_DIR", str(tmp_path / "index"))
    settings = cli.load_settings()
    index.build_index(settings_dir, tmp_path / "index", HashEmbedder())
    before = os.readlink(tmp_path / "index" / "current")

    def broken(*args, **kwargs):
        raise ValueError("mapping values are not allowed here (a broken YAML file)")

    monkeypatch.setattr(index, "build_index", broken)
    cli.refresh_index(settings)  # no exception
    assert "The previous index keeps serving" in capsys.readouterr().err
    assert os.readlink(tmp_path / "index" / "current") == before


def test_a_batch_file_with_invalid_utf8_answers_every_line(hash_settings, tmp_path, capsys):
    batch = tmp_path / "spm.txt"
    batch.write_bytes(b"\xff mobbing\nHva er aktivitetsplikten?\n\xc3\n")
    assert cli.main(["ask", "--json", "--batch", str(batch)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith('{"question": "\ufffd mobbing"')
    for line in lines:
        line.encode("utf-8")  # valid UTF-8 JSON lines


def test_invalid_bytes_in_argv_are_replaced(hash_settings, capsys):
    question = b"mobbing \xff".decode("utf-8", "surrogateescape")  # how Python hands over such argv bytes
    assert cli.main(["ask", "--json", question]) == 0
    assert '"question": "mobbing \ufffd"' in capsys.readouterr().out


def test_the_embedding_cache_round_trips(tmp_path):
    embedder = HashEmbedder()
    vectors = np.ones((2, embedder.dim), np.float32)
    index._save_cache(tmp_path, embedder, ["a", "b"], vectors)
    assert set(index._load_cache(tmp_path, embedder)) == {"a", "b"}
