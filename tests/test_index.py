"""Index builds: incremental by content hash, atomic swap, refusal to mix embedders."""

from pathlib import Path

import pytest

from bot.cli import main
from bot.embed import HashEmbedder
from bot.errors import DocumentError, EmbedderMismatchError, IndexMissingError
from bot.index import build_index, load_index

DOC = (
    "---\ntitle: {title}\nkind: guidance\naudience: public\nlanguage: nb\nupdated: 2025-01-01\nsources: []\n---\n{body}"
)


class CountingEmbedder(HashEmbedder):
    """Counts what it embeds, to prove unchanged passages are reused."""

    def __init__(self):
        super().__init__()
        self.embedded: list[str] = []

    def embed_batch(self, texts, kind):
        if kind == "passage":
            self.embedded.extend(texts)
        return super().embed_batch(texts, kind)


def make_knowledge(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a.md").write_text(
        DOC.format(
            title="A",
            body="## Del en\n\nSkolen skal snarast undersøke saken.\n\n"
            "## Del to\n\nRektor skal melde fra til kommunen i alvorlige saker.",
        ),
        encoding="utf-8",
    )
    (folder / "b.md").write_text(DOC.format(title="B", body="Statsforvalteren kan vedta tiltak."), encoding="utf-8")
    return folder


def test_rebuild_only_embeds_changed_passages(tmp_path):
    knowledge, index_dir = make_knowledge(tmp_path / "k"), tmp_path / "index"
    embedder = CountingEmbedder()
    first = build_index(knowledge, index_dir, embedder)
    assert (first.documents, first.passages, first.embedded, first.reused) == (2, 3, 3, 0)

    (knowledge / "b.md").write_text(
        DOC.format(title="B", body="Statsforvalteren kan vedta tiltak med frist."), encoding="utf-8"
    )
    embedder.embedded.clear()
    second = build_index(knowledge, index_dir, embedder)
    assert (second.embedded, second.reused) == (1, 2)
    assert len(embedder.embedded) == 1 and "med frist" in embedder.embedded[0]
    index = load_index(index_dir, embedder)
    assert any("med frist" in p.text for p in index.passages)
    assert len(list((index_dir / "builds").iterdir())) == 1  # the old build is gone after the swap


def test_failed_build_leaves_old_index_serving(tmp_path):
    knowledge, index_dir = make_knowledge(tmp_path / "k"), tmp_path / "index"
    build_index(knowledge, index_dir, HashEmbedder())
    before = load_index(index_dir).passages
    (knowledge / "c.md").write_text(
        "---\ntitle: C\nkind: guidance\naudience: everyone\nlanguage: nb\n---\nTekst.", encoding="utf-8"
    )
    with pytest.raises(DocumentError, match="c.md: unknown audience 'everyone'"):
        build_index(knowledge, index_dir, HashEmbedder())
    assert load_index(index_dir).passages == before
    assert not [p for p in (index_dir / "builds").iterdir() if p.name.startswith(".tmp")]


def test_embedding_failure_midway_keeps_old_index(tmp_path):
    class Exploding(HashEmbedder):
        def embed_batch(self, texts, kind):
            raise RuntimeError("model crashed")

    knowledge, index_dir = make_knowledge(tmp_path / "k"), tmp_path / "index"
    build_index(knowledge, index_dir, HashEmbedder())
    (knowledge / "b.md").write_text(DOC.format(title="B", body="Ny tekst."), encoding="utf-8")
    with pytest.raises(RuntimeError):
        build_index(knowledge, index_dir, Exploding())
    assert any("Statsforvalteren" in p.text for p in load_index(index_dir).passages)


def test_index_refuses_another_embedder(tmp_path):
    knowledge, index_dir = make_knowledge(tmp_path / "k"), tmp_path / "index"
    build_index(knowledge, index_dir, HashEmbedder(dim=256))
    with pytest.raises(EmbedderMismatchError, match="Run `kap12 index`"):
        load_index(index_dir, HashEmbedder(dim=128))


def test_missing_and_corrupt_index(tmp_path):
    with pytest.raises(IndexMissingError, match="Run `kap12 index`"):
        load_index(tmp_path / "none")
    knowledge, index_dir = make_knowledge(tmp_path / "k"), tmp_path / "index"
    build_index(knowledge, index_dir, HashEmbedder())
    (index_dir / "current" / "passages.jsonl").write_text("{not json\n")
    with pytest.raises(IndexMissingError, match="damaged"):
        load_index(index_dir)


def test_cli_index_exit_code_and_untouched_index(tmp_path, monkeypatch, capsys):
    knowledge = make_knowledge(tmp_path / "k")
    monkeypatch.setenv("KAP12_KNOWLEDGE_DIR", str(knowledge))
    assert main(["index", "-q"]) == 0
    assert "2 documents, 3 passages, 3 embedded, 0 reused" in capsys.readouterr().out
    (knowledge / "junk.pdf").write_bytes(b"\x00\x01 not a pdf")
    assert main(["index", "-q"]) == 1
    assert "junk.pdf" in capsys.readouterr().err
    assert len(load_index(tmp_path / "index").passages) == 3


def test_cli_empty_knowledge_says_where(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("KAP12_KNOWLEDGE_DIR", str(tmp_path / "empty"))
    assert main(["index", "-q"]) == 1
    assert f"No documents found in {tmp_path / 'empty'}" in capsys.readouterr().err
