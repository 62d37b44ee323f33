"""Plain-word explanations of the terms a reply used (bot/explain.py, knowledge/explain.yaml)."""

from __future__ import annotations

import pytest
import yaml

from bot.errors import DocumentError
from bot.explain import Terms
from paths import KNOWLEDGE


def term(term_id, words, source="kapittel-12-forklart#§ 12-4", **texts):
    return {"id": term_id, "words": words, "source": source,
            **{lang: texts.get(lang, f"{term_id} ({lang})") for lang in ("nb", "nn", "en")}}


def load(tmp_path, terms):
    path = tmp_path / "explain.yaml"
    path.write_text(yaml.safe_dump({"terms": terms}, allow_unicode=True), encoding="utf-8")
    return Terms.load(path)


def test_terms_are_found_at_word_starts_in_the_files_order(tmp_path):
    terms = load(tmp_path, [
        term("tvangsmulkt", ["tvangsmulkt"]),
        term("skjerpet", ["skjerpet aktivitetsplikt"]),
        term("aktivitetsplikt", ["aktivitetsplikt", "duty to act"]),
        term("plan", ["plan"]),
    ])
    text = "Skolen har aktivitetsplikten. Hjelper ikke det, kan Statsforvalteren bruke tvangsmulkt."
    assert terms.named_in(text) == ["tvangsmulkt", "aktivitetsplikt"]  # the file's order, not the text's
    assert terms.named_in("Den skjerpede … nei: SKJERPET AKTIVITETSPLIKT gjelder") == ["skjerpet"]
    assert terms.named_in("The school's duty to act") == ["aktivitetsplikt"]
    # A short word matches only as a whole word: "planleggingsdag" is not "plan", and "aplan" is no word start.
    assert terms.named_in("planleggingsdag og aplan") == []
    assert terms.named_in("en skriftlig plan.") == ["plan"]


def test_the_shipped_explanations_load_and_name_terms_the_answers_use():
    terms = Terms.load(KNOWLEDGE / "explain.yaml")
    assert len(terms.terms) >= 15
    ids = terms.named_in("Skolen må undersøke snarest og lage en skriftlig plan; hjelper ikke det, kan dere melde "
                         "saken til Statsforvalteren.")
    assert {"snarest", "statsforvalteren"} <= set(ids)
    for item in terms.terms:  # every explanation is short enough to read on a phone
        assert all(len(text) <= 320 for text in item.text.values()), item.id


@pytest.mark.parametrize("message, term_id", [
    ("hva er en aktivitetsplan?", "aktivitetsplan"), ("kva er tvangsmulkt", "tvangsmulkt"),
    ("what is an activity plan?", "aktivitetsplan"), ("What does coercive fine mean?", "tvangsmulkt"),
    ("hva betyr tvangsmulkt og aktivitetsplan?", None),  # two terms: the normal answer covers both
    ("skolen har laget en aktivitetsplan, men den følges ikke opp", None),  # not asking what it is
    ("hva er en aktivitetsplan, og hva gjør vi når skolen ikke har laget noen etter tre uker?", None),  # a case
    ("hva er klokka?", None),
])
def test_a_short_question_for_a_terms_meaning_is_recognised(message, term_id):
    assert Terms.load(KNOWLEDGE / "explain.yaml").asked_for(message) == term_id


@pytest.mark.parametrize("change, message", [
    (lambda t: t[0].pop("en"), "lacks its explanation in en"),
    (lambda t: t[0].update(source="kapittel-12-forklart"), "needs a 'source'"),
    (lambda t: t[1].update(words=["tvangsmulkt"]), "names both"),
    (lambda t: t[1].update(id="tvangsmulkt"), "unique 'id'"),
    (lambda t: t[0].update(words="tvangsmulkt"), "needs 'words'"),
    (lambda t: t.append("bare tekst"), "must be a mapping"),
])
def test_a_broken_explanations_file_names_itself_and_the_problem(tmp_path, change, message):
    terms = [term("tvangsmulkt", ["tvangsmulkt"]), term("rektor", ["rektor"])]
    change(terms)
    with pytest.raises(DocumentError) as raised:
        load(tmp_path, terms)
    assert message in str(raised.value) and "explain.yaml" in str(raised.value)


def test_asking_phrases_that_are_not_lists_name_the_file(tmp_path):
    path = tmp_path / "explain.yaml"
    path.write_text(yaml.safe_dump({"asking": {"nb": "hva er"}, "terms": [term("rektor", ["rektor"])]}),
                    encoding="utf-8")
    with pytest.raises(DocumentError, match="asking"):
        Terms.load(path)


def test_no_file_means_no_terms(tmp_path):
    assert Terms.load(tmp_path / "explain.yaml").named_in("aktivitetsplikt") == []


def test_every_explanation_cites_a_passage_a_parent_and_a_pupil_may_see(hash_settings):
    from bot.answer import Answerer
    from bot.flows import passage_alternatives

    answerer = Answerer.from_settings(hash_settings)
    for item in Terms.load(KNOWLEDGE / "explain.yaml").terms:
        for key in passage_alternatives(item.source):
            assert answerer.resolve_passage_key(key), f"{item.id}: {key} names no passage"
        for role in ("parent", "pupil"):
            assert answerer.citations_for_keys(passage_alternatives(item.source)[:1], role), (item.id, role)


class _Core:
    """The little of the dialog core that explanations use."""

    def __init__(self, citations_for_keys):
        from types import SimpleNamespace

        self.answerer = SimpleNamespace(citations_for_keys=citations_for_keys)
        self.walk = SimpleNamespace(document_language=lambda doc_id: "nb")

    def retrieval_role(self, state):
        return "parent"


def test_explanations_cite_their_source_and_stay_silent_when_it_cannot_be_found(tmp_path):
    from types import SimpleNamespace

    from bot.explain import Explanations
    from bot.replies import Citation

    terms = load(tmp_path, [term("tvangsmulkt", ["tvangsmulkt"]), term("rektor", ["rektor"])])
    state = SimpleNamespace(user_id="u1")

    def cite(keys, role):
        return [Citation(1, keys[0], "Kapittel 12 forklart", "§ 12-4", ("§ 12-4",), None, None, "tekst")]

    working = Explanations(_Core(cite), terms)
    working.saw("u1", "Rektor kan få tvangsmulkt.")
    lines, citations = working.explain(state, "en")
    assert lines == ["tvangsmulkt (en) [1]", "rektor (en) [1]"] and len(citations) == 1  # one source, one mark

    def broken(keys, role):
        raise RuntimeError("index gone")

    failing = Explanations(_Core(broken), terms)
    failing.saw("u1", "Rektor kan få tvangsmulkt.")
    assert failing.explain(state, "nb") is None  # no explanation without its source, and no crash
    failing.forget_user("u1")
    assert failing.recent("u1") == ()
