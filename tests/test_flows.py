"""Flows: the six real walkthroughs, the loader's validation, cross-file checks and the Mermaid diagrams."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from bot.errors import FlowError
from bot.flows import LANGS, Flow, check_flows, flow_to_mermaid, load_flow, load_flows, reachable_steps

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"
FLOWS_DIR = KNOWLEDGE / "flows"

EXPECTED_ROLES = {
    "forelder-utrygg": ("parent",),
    "statsforvalteren": ("parent",),
    "ansatt-melde": ("staff", "new_teacher"),
    "kollega-krenker": ("staff", "new_teacher"),
    "rektor-sak": ("staff",),
    "nyutdannet": ("new_teacher",),
}

# A fixed day count stated as a rule ("5 dager", "fem virkedager"): the law only says «snarast» / «straks».
DAY_COUNT = re.compile(
    r"\b(\d+|en|én|to|tre|fire|fem|seks|sju|syv|åtte|ti|one|two|three|five|seven|ten)\s+"
    r"(dager|dagar|virkedager|virkedagar|arbeidsdager|arbeidsdagar|days|working days)\b",
    re.IGNORECASE,
)
# Words that only exist in bokmål (nn text must not use them) and only in nynorsk (nb text must not use them).
BOKMAL_ONLY = {"ikke", "jeg", "hva", "hvem", "hvordan", "hvorfor", "hvor", "også", "bare", "noe", "noen", "fra",
               "være", "gjøre", "dere", "mye", "hennes", "deres"}
NYNORSK_ONLY = {"ikkje", "eg", "kva", "kven", "korleis", "kvifor", "kvar", "òg", "berre", "noko", "nokon", "frå",
                "vere", "gjere", "mykje", "dykk"}


@pytest.fixture(scope="module")
def flows() -> dict[str, Flow]:
    return load_flows(FLOWS_DIR)


def all_texts(flow: Flow):
    """Every user-facing text of a flow as (where, lang-dict)."""
    yield "title", flow.title
    yield "summary", flow.summary
    for step in flow.steps.values():
        yield f"{step.id}.text", step.text
        if step.advice:
            yield f"{step.id}.advice", step.advice
        for button in step.buttons:
            yield f"{step.id}.button", button.label


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-zæøåòé]+", text.lower()))


# --- the real flows -------------------------------------------------------------------------------------------


def test_all_six_flows_load_with_roles_and_enough_steps(flows):
    assert set(flows) == set(EXPECTED_ROLES)
    for flow_id, flow in flows.items():
        assert flow.roles == EXPECTED_ROLES[flow_id]
        assert len(flow.steps) >= 3, flow_id
        assert flow.start in flow.steps
        assert flow.path.name == f"{flow_id}.yaml"


def test_every_text_in_three_languages_and_nynorsk_is_not_bokmal(flows):
    for flow in flows.values():
        for where, texts in all_texts(flow):
            assert set(texts) == set(LANGS), (flow.id, where)
            assert all(texts[lang].strip() for lang in LANGS), (flow.id, where)
            nb_words, nn_words = words(texts["nb"]), words(texts["nn"])
            assert not nn_words & BOKMAL_ONLY, (flow.id, where, nn_words & BOKMAL_ONLY)
            assert not nb_words & NYNORSK_ONLY, (flow.id, where, nb_words & NYNORSK_ONLY)
            if where.endswith(".text"):
                assert texts["nn"] != texts["nb"] and texts["en"] != texts["nb"], (flow.id, where)


def test_no_text_states_a_fixed_day_limit(flows):
    for flow in flows.values():
        for where, texts in all_texts(flow):
            for lang, text in texts.items():
                assert not DAY_COUNT.search(text), (flow.id, where, lang, DAY_COUNT.search(text))


def test_day_count_pattern_catches_what_it_should():
    assert DAY_COUNT.search("innen 5 dager")
    assert DAY_COUNT.search("within five working days")
    assert DAY_COUNT.search("fem virkedagar")
    assert not DAY_COUNT.search("ingen fast frist i antall dager")


def test_every_step_is_reachable_and_every_cited_step_has_passages(flows):
    assert check_flows(flows, lambda key: True) == []
    for flow in flows.values():
        assert reachable_steps(flow) == set(flow.steps)
        for step in flow.steps.values():
            assert step.refs, (flow.id, step.id)  # every step rests on a rule
            assert len(step.passages) <= 4, (flow.id, step.id)  # a few precise citations, not a wall


def test_advice_is_kept_out_of_the_law_text(flows):
    for flow in flows.values():
        for step in flow.steps.values():
            for lang in LANGS:
                assert not re.search(r"\b(Råd|Tips|Advice)\b|\(råd\)", step.text[lang]), (flow.id, step.id, lang)
                if step.advice:  # one paragraph, so the core's «Råd:» label covers all of it
                    assert "\n\n" not in step.advice[lang], (flow.id, step.id, lang)


def test_parent_flow_key_steps(flows):
    flow = flows["forelder-utrygg"]
    first = flow.steps[flow.start]
    assert first.advice is not None
    for lang in LANGS:
        assert "112" in first.advice[lang] and "112" not in first.text[lang]
    assert "barnevern" in first.advice["nb"]

    plan = flow.steps["plan"]
    assert "§ 12-4" in plan.refs
    nb = plan.text["nb"]
    for letter, content in zip("abcde", ["problem", "tiltak", "når", "hvem", "evalueres"], strict=True):
        line = next(line for line in nb.splitlines() if line.startswith(f"{letter})"))
        assert content in line, (letter, line)

    assert "snarast" in flow.steps["skolen-plikt"].text["nb"]
    assert {"§ 10-1", "§ 10-2"} <= set(flow.steps["bli-hort"].refs)
    last = flow.steps["ingenting"]
    assert "§ 12-6" in last.refs
    assert [button.flow for button in last.buttons] == ["statsforvalteren"]


def test_statsforvalteren_flow_cites_12_6_and_sends_unconfirmed_points_to_be_checked(flows):
    flow = flows["statsforvalteren"]
    for step in flow.steps.values():
        assert "§ 12-6" in step.refs, step.id
    assert "rektor" in flow.steps["vilkar"].text["nb"]
    assert "§ 12-8" in flow.steps["vedtak"].refs and "tvangsmulkt" in flow.steps["vedtak"].text["nb"]
    # Waiting period and appeal rules are only known from the old law: say so, and say to check.
    for step_id in ("ventetid", "klage"):
        nb = flow.steps[step_id].text["nb"]
        assert "gamle" in nb and "ikke bekreftet" in nb, step_id
        assert re.search(r"(Sjekk|Spør) .*Statsforvalteren", nb), step_id
    assert "advokat" in flow.steps["melde"].text["nb"]


def test_staff_flows_key_steps(flows):
    report = flows["ansatt-melde"]
    assert "straks" in report.steps["melde"].text["nb"]
    assert "forvaltningsloven § 13" in report.steps["taushet"].refs
    assert "hemmelighet" in report.steps["taushet"].advice["nb"]  # never promise secrecy: advice, not law
    to_colleague = [b.flow for s in report.steps.values() for b in s.buttons if b.flow]
    assert "kollega-krenker" in to_colleague

    colleague = flows["kollega-krenker"]
    for step_id in ("meld-straks", "ledelsen"):
        assert "§ 12-5" in colleague.steps[step_id].refs
    for lang in LANGS:
        assert "straks" in colleague.steps["meld-straks"].text[lang]
    assert "kommunen" in colleague.steps["ledelsen"].text["nb"]
    assert colleague.steps["diskret"].advice is not None


def test_principal_flow_key_steps(flows):
    flow = flows["rektor-sak"]
    assert {"§ 12-4", "§ 12-5"} <= set(flow.steps["vurder"].refs)
    assert "snarast" in flow.steps["undersok"].text["nb"] and "aldersgrense" in flow.steps["undersok"].text["nb"]
    assert "§ 12-4" in flow.steps["plan"].refs
    assert "§ 10-8" in flow.steps["informer"].refs
    assert {"§ 12-6", "§ 12-8"} <= set(flow.steps["statsforv"].refs)
    assert "kommuneloven § 25-1" in flow.steps["system"].refs


def test_new_teacher_course_ends_with_three_check_questions(flows):
    flow = flows["nyutdannet"]
    assert "vefsn-orientering-psykososialt-skolemiljo#Vefsn" in flow.steps["rutiner"].passages
    assert "mentor" in flow.steps["rutiner"].text["nb"]
    questions = [step for step in flow.steps.values() if re.fullmatch(r"q\d", step.id)]
    assert len(questions) == 3
    for question in questions:
        targets = {button.next for button in question.buttons}
        assert len(question.buttons) >= 2
        assert targets == {f"{question.id}-riktig", f"{question.id}-feil"}, question.id
        right, wrong = flow.steps[f"{question.id}-riktig"], flow.steps[f"{question.id}-feil"]
        assert right.text["nb"].startswith("Riktig") and wrong.text["nb"].startswith("Ikke riktig")
        assert right.refs and wrong.refs
        assert right.buttons and wrong.buttons  # feedback always leads on
    end = flow.steps["slutt"]
    assert not any(button.next for button in end.buttons)


def test_loaded_texts_are_stripped_and_steps_keep_file_order(flows):
    flow = flows["forelder-utrygg"]
    assert list(flow.steps)[0] == flow.start == "noter"
    for step in flow.steps.values():
        for text in step.text.values():
            assert text == text.strip()


# --- passage keys against the knowledge documents ---------------------------------------------------------------


def knowledge_headings() -> dict[str, list[str]]:
    """Document id -> title and headings, read the way the index builds section paths."""
    docs: dict[str, list[str]] = {}
    for path in KNOWLEDGE.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        front = yaml.safe_load(text.split("---")[1]) if text.startswith("---") else {}
        headings = re.findall(r"^#{1,3}\s+(.+?)\s*$", text, re.MULTILINE)
        docs[path.stem] = [str(front.get("title", ""))] + headings
    for meta in KNOWLEDGE.glob("*.meta.yaml"):
        doc_id = meta.name.removesuffix(".meta.yaml").rsplit(".", 1)[0]
        docs[doc_id] = [str(yaml.safe_load(meta.read_text(encoding="utf-8")).get("title", ""))]
    return docs


def test_every_passage_key_matches_a_knowledge_heading(flows):
    docs = knowledge_headings()

    def exists(key: str) -> bool:
        doc_id, heading = key.split("#", 1)
        return any(h.lower().startswith(heading.lower()) for h in docs.get(doc_id, []))

    assert check_flows(flows, exists) == []


# --- Mermaid ----------------------------------------------------------------------------------------------------


def test_committed_mermaid_files_are_up_to_date(flows):
    for flow in flows.values():
        mmd = flow.path.with_suffix(".mmd")
        assert mmd.exists(), f"missing {mmd.name}: regenerate with bot.flows.write_mermaid"
        assert mmd.read_text(encoding="utf-8") == flow_to_mermaid(flow), f"{mmd.name} is stale: regenerate it"


def test_mermaid_has_a_node_per_step_and_an_edge_per_button(flows):
    flow = flows["forelder-utrygg"]
    text = flow_to_mermaid(flow, lang="en")
    assert text.splitlines()[1].startswith('title: "My child is not safe at school')
    for step in flow.steps.values():
        assert f"s_{step.id.replace('-', '_')}" in text
    edges = [line for line in text.splitlines() if "-->" in line or "-.->" in line]
    assert len(edges) == sum(len(step.buttons) for step in flow.steps.values())
    assert '-.->|"Go to Statsforvalteren"| f_statsforvalteren' in text
    assert 'f_statsforvalteren[["flow: statsforvalteren"]]' in text


# --- validation of bad files --------------------------------------------------------------------------------------

VALID = {
    "id": "demo",
    "roles": ["parent"],
    "title": {"nb": "Tittel", "nn": "Tittel", "en": "Title"},
    "summary": {"nb": "Kort", "nn": "Kort", "en": "Short"},
    "start": "en",
    "steps": [
        {
            "id": "en",
            "text": {"nb": "Første", "nn": "Første", "en": "First"},
            "refs": ["§ 12-4"],
            "passages": ["kapittel-12-forklart#§ 12-4"],
            "advice": {"nb": "Råd", "nn": "Råd", "en": "Advice"},
            "buttons": [{"label": {"nb": "Neste", "nn": "Neste", "en": "Next"}, "next": "to"}],
        },
        {"id": "to", "text": {"nb": "Andre", "nn": "Andre", "en": "Second"}},
    ],
}


def write_flow(folder: Path, data, name: str = "demo") -> Path:
    path = folder / f"{name}.yaml"
    text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def mutated(change) -> dict:
    data = copy.deepcopy(VALID)
    change(data)
    return data


def first_step(data) -> dict:
    return data["steps"][0]


def first_button(data) -> dict:
    return data["steps"][0]["buttons"][0]


def test_the_valid_example_loads(tmp_path):
    flow = load_flow(write_flow(tmp_path, VALID))
    assert flow.steps["en"].buttons[0].next == "to"
    assert flow.steps["en"].refs == ("§ 12-4",)
    assert flow.steps["to"].advice is None and flow.steps["to"].buttons == ()


BAD_FLOWS = [
    # (case, data or change, step named in the error, words in the problem)
    ("not yaml", "id: [demo\nsteps: {", None, "not valid YAML"),
    ("not a mapping", "- just\n- a list\n", None, "mapping"),
    ("duplicate yaml key", "id: demo\nid: demo\n", None, "appears twice"),
    ("missing id", lambda d: d.pop("id"), None, "missing: id"),
    ("missing roles", lambda d: d.pop("roles"), None, "missing: roles"),
    ("missing title", lambda d: d.pop("title"), None, "missing: title"),
    ("missing summary", lambda d: d.pop("summary"), None, "missing: summary"),
    ("missing start", lambda d: d.pop("start"), None, "missing: start"),
    ("missing steps", lambda d: d.pop("steps"), None, "missing: steps"),
    ("unknown field", lambda d: d.update(step=[]), None, "unknown fields: step"),
    ("id not the file name", lambda d: d.update(id="annen"), None, "must equal the file name"),
    ("bad id characters", lambda d: d.update(id="Demo_1"), None, "a-z, 0-9"),
    ("bad role", lambda d: d.update(roles=["teacher"]), None, "unknown role 'teacher'"),
    ("no roles", lambda d: d.update(roles=[]), None, "roles must be"),
    ("role twice", lambda d: d.update(roles=["parent", "parent"]), None, "twice"),
    ("title missing nn", lambda d: d["title"].pop("nn"), None, "title is missing or empty in 'nn'"),
    ("summary empty en", lambda d: d["summary"].update(en="  "), None, "summary is missing or empty in 'en'"),
    ("title extra language", lambda d: d["title"].update(se="x"), None, "unknown languages: se"),
    ("no steps", lambda d: d.update(steps=[]), None, "non-empty list"),
    ("unknown start", lambda d: d.update(start="tre"), None, "start names the step 'tre'"),
    ("step without id", lambda d: first_step(d).pop("id"), "#1", "missing: id"),
    ("step not a mapping", lambda d: d["steps"].append("tre"), "#3", "must be a mapping"),
    ("step id bad characters", lambda d: first_step(d).update(id="Steg 1"), "Steg 1", "a-z, 0-9"),
    ("step id too long", lambda d: first_step(d).update(id="a" * 17), "a" * 17, "1-16 characters"),
    ("step id a number", lambda d: first_step(d).update(id=1), "#1", "must be text"),
    ("step id yes", lambda d: d["steps"][1].update(id=True), "#2", "must be text"),
    ("duplicate step id", lambda d: d["steps"][1].update(id="en"), "en", "used twice"),
    ("step unknown field", lambda d: first_step(d).update(passage=[]), "en", "unknown fields: passage"),
    ("text missing", lambda d: first_step(d).pop("text"), "en", "missing: text"),
    ("text missing nb", lambda d: first_step(d)["text"].pop("nb"), "en", "text is missing or empty in 'nb'"),
    ("text empty nn", lambda d: first_step(d)["text"].update(nn=""), "en", "text is missing or empty in 'nn'"),
    ("text not a mapping", lambda d: first_step(d).update(text="bare tekst"), "en", "text must be a mapping"),
    ("advice missing en", lambda d: first_step(d)["advice"].pop("en"), "en", "advice is missing or empty in 'en'"),
    ("label missing nn", lambda d: first_button(d)["label"].pop("nn"), "en", "label is missing or empty in 'nn'"),
    ("label too long", lambda d: first_button(d)["label"].update(nb="x" * 31), "en", "longer than 30"),
    ("button with next and flow", lambda d: first_button(d).update(flow="annen"), "en", "exactly one of next"),
    ("button with neither", lambda d: first_button(d).pop("next"), "en", "exactly one of next"),
    ("button to unknown step", lambda d: first_button(d).update(next="tre"), "en", "step 'tre', which does not"),
    ("button flow bad id", lambda d: first_button(d).update(next=None, flow="Ny Flyt"), "en", "flow 'Ny Flyt'"),
    ("buttons not a list", lambda d: first_step(d).update(buttons={"next": "to"}), "en", "buttons must be a list"),
    ("refs not a list", lambda d: first_step(d).update(refs="§ 12-4"), "en", "refs must be a list"),
    ("ref without space", lambda d: first_step(d).update(refs=["§12-4"]), "en", "malformed ref '§12-4'"),
    ("ref without §", lambda d: first_step(d).update(refs=["12-4"]), "en", "malformed ref '12-4'"),
    ("ref with §§", lambda d: first_step(d).update(refs=["§§ 10-1, 10-2"]), "en", "malformed ref"),
    ("ref unknown law", lambda d: first_step(d).update(refs=["straffeloven § 1"]), "en", "malformed ref"),
    ("ref law without §", lambda d: first_step(d).update(refs=["forvaltningsloven"]), "en", "malformed ref"),
    ("passage without #", lambda d: first_step(d).update(passages=["kapittel-12-forklart"]), "en", "malformed passage"),
    ("passage without doc", lambda d: first_step(d).update(passages=["#§ 12-4"]), "en", "malformed passage"),
    ("passage without heading", lambda d: first_step(d).update(passages=["doc#"]), "en", "malformed passage"),
    ("passage doc with space", lambda d: first_step(d).update(passages=["kap 12#§ 12-4"]), "en", "malformed passage"),
]


@pytest.mark.parametrize("case, change, step, problem", BAD_FLOWS, ids=[case[0] for case in BAD_FLOWS])
def test_bad_flow_file_names_file_step_and_problem(tmp_path, case, change, step, problem):
    data = change if isinstance(change, str) else mutated(change)
    path = write_flow(tmp_path, data)
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path)
    error = caught.value
    assert error.path == str(path)
    assert error.step == step
    assert problem in error.problem
    assert str(path) in str(error) and (step is None or f"step '{step}'" in str(error))


def test_flow_id_longer_than_24_characters(tmp_path):
    long_id = "a" * 25
    path = write_flow(tmp_path, mutated(lambda d: d.update(id=long_id)), name=long_id)
    with pytest.raises(FlowError, match="1-24 characters") as caught:
        load_flows(tmp_path)
    assert caught.value.path == str(path)


def test_accepted_ref_forms(tmp_path):
    refs = ["§ 12-4", "§ 10-1", "kommuneloven § 25-1", "forvaltningsloven § 13"]
    flow = load_flow(write_flow(tmp_path, mutated(lambda d: first_step(d).update(refs=refs))))
    assert flow.steps["en"].refs == tuple(refs)


def test_unreadable_file_and_missing_folder(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_bytes(b"id: \xff\xfe demo\n")
    with pytest.raises(FlowError, match="cannot read") as caught:
        load_flows(tmp_path)
    assert caught.value.path == str(path) and caught.value.step is None
    with pytest.raises(FlowError, match="does not exist"):
        load_flows(tmp_path / "nowhere")


# --- cross-file checks ----------------------------------------------------------------------------------------------


def test_check_flows_finds_unknown_passage_unreachable_step_unknown_flow_and_refs_without_passages(tmp_path):
    def change(d):
        first_button(d).update(next=None, flow="finnes-ikke")  # step "to" is now unreachable too
        d["steps"][1].update(refs=["§ 12-5"])
    write_flow(tmp_path, mutated(change))
    flows = load_flows(tmp_path)
    known = {"kapittel-12-forklart#§ 12-5"}
    problems = check_flows(flows, lambda key: key in known)
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    assert "demo.yaml, step 'en': no passage matches the key 'kapittel-12-forklart#§ 12-4'" in text
    assert "demo.yaml, step 'en': a button starts the flow 'finnes-ikke', which does not exist" in text
    assert "demo.yaml, step 'to': cannot be reached from the start step" in text
    assert "demo.yaml, step 'to': cites § 12-5 but has no passages to show" in text


def test_check_flows_accepts_a_link_to_an_existing_flow(tmp_path):
    write_flow(tmp_path, mutated(lambda d: first_button(d).update(next=None, flow="annen")))
    write_flow(tmp_path, mutated(lambda d: (d.update(id="annen"), first_button(d).update(next=None, flow="demo"),
                                            d["steps"].pop())), name="annen")
    flows = load_flows(tmp_path)
    problems = check_flows(flows, lambda key: True)
    assert problems == ["demo.yaml, step 'to': cannot be reached from the start step"]
