"""Flows: the seven real walkthroughs, the loader's validation, cross-file checks and the Mermaid diagrams."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from bot.errors import FlowError
from bot.flows import (
    COMMANDS,
    LANGS,
    MAX_STEP_CHARS,
    Flow,
    check_flows,
    flow_to_mermaid,
    load_flow,
    load_flows,
    passage_alternatives,
    passage_keys_for,
    reachable_steps,
    steps_that_can_end,
)

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"
FLOWS_DIR = KNOWLEDGE / "flows"

EXPECTED_ROLES = {
    "forelder-utrygg": ("parent",),
    "elev-utrygg": ("pupil",),
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


def test_all_seven_flows_load_with_roles_and_enough_steps(flows):
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


def test_every_step_is_reachable_can_finish_and_has_a_source(flows):
    assert check_flows(flows, lambda key: True) == []
    for flow in flows.values():
        assert reachable_steps(flow) == set(flow.steps)
        assert steps_that_can_end(flow) == set(flow.steps)
        assert any(step.is_end for step in flow.steps.values()), flow.id
        for step in flow.steps.values():
            assert step.refs or step.passages, (flow.id, step.id)  # every step rests on a source
            assert len(step.passages) <= 4, (flow.id, step.id)  # a few precise citations, not a wall


def test_every_step_fits_a_phone_and_labels_are_short(flows):
    for flow in flows.values():
        for step in flow.steps.values():
            for lang in LANGS:
                shown = len(step.text[lang]) + (len(step.advice[lang]) if step.advice else 0)
                assert shown <= MAX_STEP_CHARS, (flow.id, step.id, lang, shown)
                for button in step.buttons:
                    assert len(button.label[lang]) <= 30, (flow.id, step.id, button.label[lang])


def test_back_links_lead_to_the_start_without_circles(flows):
    for flow in flows.values():
        assert flow.steps[flow.start].back is None
        for step in flow.steps.values():
            if step.id == flow.start:
                continue
            assert step.back in flow.steps, (flow.id, step.id)
            seen, current = {step.id}, step.back
            while current is not None:
                assert current not in seen, (flow.id, step.id, current)
                seen.add(current)
                current = flow.steps[current].back
            assert flow.start in seen, (flow.id, step.id)
            leads_here = {s.id for s in flow.steps.values() if any(b.next == step.id for b in s.buttons)}
            if not step.back_declared:  # derived: the one step that leads here
                assert leads_here == {step.back}, (flow.id, step.id)
            else:
                assert len(leads_here) > 1 or step.back not in leads_here, (flow.id, step.id)


def test_advice_is_kept_out_of_the_law_text(flows):
    for flow in flows.values():
        for step in flow.steps.values():
            for lang in LANGS:
                assert not re.search(r"\b(Råd|Tips|Advice)\b|\(råd\)", step.text[lang]), (flow.id, step.id, lang)
                if step.advice:  # one paragraph, so the core's «Råd:» label covers all of it
                    assert "\n\n" not in step.advice[lang], (flow.id, step.id, lang)


def test_violence_is_never_said_to_be_outside_chapter_12(flows):
    outside = re.compile(r"(hører ikke|høyrer ikkje|ikke en del av|utenfor|utanfor|outside|not part of)\s+"
                         r"(under\s+)?(kapittel|chapter)\s+12", re.IGNORECASE)
    for flow in flows.values():
        for where, texts in all_texts(flow):
            for lang, text in texts.items():
                assert not outside.search(text), (flow.id, where, lang)


def test_english_never_says_violate_and_straks_is_never_same_day(flows):
    for flow in flows.values():
        for where, texts in all_texts(flow):
            assert "violat" not in texts["en"].lower(), (flow.id, where)
            for lang, text in texts.items():
                for sentence in re.split(r"(?<=[.!?])\s+", text):
                    if "straks" in sentence:
                        assert not re.search(r"samme dag|same dag|same day", sentence), (flow.id, where, lang)


def test_at_most_one_hedge_per_step_and_never_lovdata_for_parents_and_pupils(flows):
    hedge = re.compile(r"ikke bekreftet|ikkje stadfesta|not confirmed|ifølge flere kilder|ifølgje fleire kjelder|"
                       r"according to several sources|several sources say", re.IGNORECASE)
    for flow in flows.values():
        for step in flow.steps.values():
            for lang in LANGS:
                shown = step.text[lang] + " " + (step.advice[lang] if step.advice else "")
                assert len(hedge.findall(shown)) <= 1, (flow.id, step.id, lang)
                if set(flow.roles) & {"parent", "pupil"}:
                    assert not re.search(r"lovdata|\bsjekk", shown, re.IGNORECASE), (flow.id, step.id, lang)


def test_the_school_owner_is_named_for_every_kind_of_school(flows):
    for flow_id, step_id in [("forelder-utrygg", "skolen-plikt"), ("ansatt-melde", "videre"),
                             ("rektor-sak", "vurder"), ("kollega-krenker", "ledelsen")]:
        step = flows[flow_id].steps[step_id]
        assert "fylkeskommune" in step.text["nb"] and "styret" in step.text["nb"], (flow_id, step_id)
        assert "county" in step.text["en"] and "board" in step.text["en"], (flow_id, step_id)


def test_parent_flow_starts_where_the_family_is(flows):
    flow = flows["forelder-utrygg"]
    first = flow.steps[flow.start]
    assert flow.start == "hvor" and first.back is None
    targets = [button.next for button in first.buttons]
    # A parent who has talked with the child already does not have to start there.
    assert targets[0] == "snakk" and {"skolen-plikt", "mote", "etter-plan", "uker", "andre"} <= set(targets)
    situations = {button.next for button in flow.steps["andre"].buttons}
    assert situations == {"vold", "voksen", "konflikt", "beskyldt"}

    violence = flow.steps["vold"]
    for lang in LANGS:
        assert "112" in violence.text[lang] and "02800" in violence.text[lang], lang
        assert re.search(r"(kapittel|chapter) 12", violence.text[lang]), lang
    assert "barnevern" in violence.text["nb"]
    assert "fare" in {button.command for button in violence.buttons}

    plan = flow.steps["plan"]
    assert "§ 12-4" in plan.refs
    nb = plan.text["nb"]
    for letter, content in zip("abcde", ["problem", "tiltak", "når", "hvem", "evalueres"], strict=True):
        line = next(line for line in nb.splitlines() if line.startswith(f"{letter})"))
        assert content in line, (letter, line)

    assert "snarast" in flow.steps["skolen-plikt"].text["nb"]
    assert {"§ 10-1", "§ 10-2"} <= set(flow.steps["bli-hort"].refs)
    assert "§ 12-5" in flow.steps["voksen"].refs and "straks" in flow.steps["voksen"].text["nb"]
    assert "konflikt" in flow.steps["konflikt"].text["nb"]
    assert "enkeltvedtak" in flow.steps["beskyldt"].text["nb"]
    assert "referat" in flow.steps["mote"].text["nb"] and "tolk" in flow.steps["mote"].advice["nb"]
    assert "evaluer" in flow.steps["etter-plan"].text["nb"]
    weeks = flow.steps["uker"]
    assert "§ 12-6" in weeks.refs and weeks.is_end
    assert "Normalt" in weeks.text["nb"]
    assert {b.flow for b in weeks.buttons if b.flow} == {"statsforvalteren"}
    assert {b.command for b in weeks.buttons if b.command} == {"brev", "kontakt"}
    assert "notat" in {b.command for b in flow.steps["snakk"].buttons}


def test_statsforvalteren_flow_says_normally_and_gives_a_step_that_is_right_either_way(flows):
    flow = flows["statsforvalteren"]
    for step in flow.steps.values():
        assert "§ 12-6" in step.refs, step.id
    conditions = flow.steps["vilkar"].text
    assert "Normalt" in conditions["nb"] and "Normally" in conditions["en"]
    assert "særlige grunner" in conditions["nb"] and "rektor" in conditions["nb"]
    assert "§ 12-8" in flow.steps["vedtak"].refs and "tvangsmulkt" in flow.steps["vedtak"].text["nb"]
    # Waiting period and appeal rules are only known from the old law: say so once, then what to do anyway.
    for step_id in ("ventetid", "klage"):
        for lang, marker in (("nb", "uansett"), ("nn", "uansett"), ("en", "either way")):
            text = flow.steps[step_id].text[lang]
            assert marker in text, (step_id, lang)
        assert "gamle" in flow.steps[step_id].text["nb"] and "ikke bekreftet" in flow.steps[step_id].text["nb"]
    assert "advokat" in flow.steps["melde"].text["nb"]
    assert "kontakt" in {b.command for s in flow.steps.values() for b in s.buttons}
    assert not any("Vefsn" in text for _, texts in all_texts(flow) for text in texts.values())


def test_pupil_flow_in_plain_words_with_help_now(flows):
    flow = flows["elev-utrygg"]
    assert flow.title == {"nb": "Jeg har det ikke bra på skolen", "nn": "Eg har det ikkje bra på skulen",
                          "en": "I'm not OK at school"}
    commands = {b.command for s in flow.steps.values() for b in s.buttons if b.command}
    assert {"fare", "kontakt"} <= commands
    assert "fare" in {b.command for b in flow.steps[flow.start].buttons}
    assert "helsesykepleier" in flow.steps["voksen"].text["nb"]
    assert "§ 12-5" in flow.steps["voksen-problem"].refs
    assert "§ 12-6" in flow.steps["statsforv"].refs and "selv" in flow.steps["statsforv"].text["nb"]
    jargon = re.compile(r"aktivitetsplikt|enkeltvedtak|skjerpa|skjerpet|hjemmel|forvaltning", re.IGNORECASE)
    for where, texts in all_texts(flow):
        for lang, text in texts.items():
            assert not jargon.search(text), (where, lang)
            for sentence in re.split(r"(?<=[.!?:])\s+", text):
                assert len(sentence.split()) <= 30, (where, lang, sentence)


def test_staff_flows_cover_police_child_welfare_and_prevention_duty(flows):
    for flow_id, step_ids in [("ansatt-melde", ("politi", "barnevern")), ("kollega-krenker", ("politi",)),
                              ("rektor-sak", ("politi",)), ("nyutdannet", ("politi",))]:
        steps = [flows[flow_id].steps[step_id] for step_id in step_ids]
        nb = " ".join(step.text["nb"] for step in steps)
        refs = {ref for step in steps for ref in step.refs}
        assert "112" in nb and "barnevern" in nb, flow_id
        assert "straffeloven § 196" in refs, flow_id
        assert "02800" in nb or flow_id == "kollega-krenker" and "02800" in steps[0].text["en"]
    assert "barnevernsloven § 13-2" in flows["ansatt-melde"].steps["barnevern"].refs


def test_staff_flows_key_steps(flows):
    report = flows["ansatt-melde"]
    assert "straks" in report.steps["melde"].text["nb"]
    assert "forvaltningsloven § 13" in report.steps["taushet"].refs
    assert "hemmelighet" in report.steps["taushet"].advice["nb"]  # never promise secrecy: advice, not law
    assert {"§ 13-4"} <= set(report.steps["gripe-inn"].refs)
    to_colleague = [b.flow for s in report.steps.values() for b in s.buttons if b.flow]
    assert "kollega-krenker" in to_colleague

    colleague = flows["kollega-krenker"]
    for step_id in ("meld-straks", "ledelsen"):
        assert "§ 12-5" in colleague.steps[step_id].refs
    for lang in LANGS:
        assert "straks" in colleague.steps["meld-straks"].text[lang]
    assert "skoleeieren" in colleague.steps["ledelsen"].text["nb"]


def test_colleague_flow_buttons_lead_to_what_they_say(flows):
    flow = flows["kollega-krenker"]
    says = {  # label (nb) -> a word the step it opens must contain (nb text or advice)
        "Hvem melder jeg til?": "rektor", "Hvis det er ledelsen?": "ledelsen", "Hva skjer så?": "undersøke",
        "Kan det være straffbart?": "politi", "Neste: vær diskret": "diskret",
    }
    seen = set()
    for step in flow.steps.values():
        for button in step.buttons:
            label = button.label["nb"]
            assert label in says, label
            target = flow.steps[button.next]
            assert says[label] in target.text["nb"] + (target.advice["nb"] if target.advice else ""), label
            seen.add(label)
    assert seen == set(says)


def test_principal_flow_key_steps(flows):
    flow = flows["rektor-sak"]
    assert {"§ 12-4", "§ 12-5"} <= set(flow.steps["vurder"].refs)
    assert "snarast" in flow.steps["undersok"].text["nb"] and "aldersgrense" in flow.steps["undersok"].text["nb"]
    talk = flow.steps["samtale"]
    assert "krenker" in talk.text["nb"] and "Foreldrene" in talk.text["nb"]
    assert "§ 12-4" in flow.steps["plan"].refs
    assert "§ 10-8" in flow.steps["informer"].refs
    assert {"§ 12-6", "§ 12-8"} <= set(flow.steps["statsforv"].refs)
    assert "kommuneloven § 25-1" in flow.steps["system"].refs
    assert not any(key.startswith("mal-plan-trygt-skolemiljo#") for s in flow.steps.values() for key in s.passages)


def test_new_teacher_course_has_physical_intervention_and_a_scored_quiz(flows):
    flow = flows["nyutdannet"]
    assert {"§ 13-3", "§ 13-4"} <= set(flow.steps["fysisk"].refs)
    assert "mentor" in flow.steps["rutiner"].text["nb"]
    questions = [step for step in flow.steps.values() if re.fullmatch(r"q\d", step.id)]
    assert len(questions) == 3 and all(question.is_question for question in questions)
    for question in questions:
        targets = {button.next for button in question.buttons}
        assert len(question.buttons) >= 2
        assert targets == {f"{question.id}-riktig", f"{question.id}-feil"}, question.id
        correct = [button for button in question.buttons if button.correct]
        assert [button.next for button in correct] == [f"{question.id}-riktig"], question.id
        right, wrong = flow.steps[f"{question.id}-riktig"], flow.steps[f"{question.id}-feil"]
        assert right.text["nb"].startswith("Riktig") and wrong.text["nb"].startswith("Ikke riktig")
        assert right.refs and wrong.refs
        assert right.buttons and wrong.buttons  # feedback always leads on
    end = flow.steps["slutt"]
    assert end.is_end and end.score
    assert [step.id for step in flow.steps.values() if step.score] == ["slutt"]


def test_flows_steps_and_buttons_can_be_set_members(flows):
    assert len(set(flows.values())) == len(flows) == len(dict.fromkeys(flows.values()))
    steps = {step for flow in flows.values() for step in flow.steps.values()}
    assert len(steps) == sum(len(flow.steps) for flow in flows.values())
    assert {button for step in steps for button in step.buttons}


def test_loaded_texts_are_stripped_and_steps_keep_file_order(flows):
    flow = flows["forelder-utrygg"]
    assert list(flow.steps)[0] == flow.start == "hvor"
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
    assert not exists("kapittel-12-forklart#Finnes ikke")


def test_a_citation_slot_gives_the_reader_the_section_in_their_language(flows):
    step = flows["elev-utrygg"].steps["voksen"]
    languages = {"elevguide": "nb", "elevguide-nynorsk": "nn", "pupil-guide-en": "en", "kapittel-12-forklart": "nb"}
    for lang, doc in (("nb", "elevguide"), ("nn", "elevguide-nynorsk"), ("en", "pupil-guide-en")):
        keys = passage_keys_for(step, lang, languages.get)
        assert len(keys) == len(step.passages)
        assert keys[0].startswith(doc + "#") and keys[-1].startswith("kapittel-12-forklart#"), (lang, keys)
    # staff routines: the English twin for an English reader, the bokmål routine for nynorsk
    staff = flows["ansatt-melde"].steps["melde"]
    languages.update({"rutiner-for-ansatte": "nb", "staff-routines-en": "en"})
    assert passage_keys_for(staff, "en", languages.get)[0].startswith("staff-routines-en#")
    assert passage_keys_for(staff, "nn", languages.get)[0].startswith("rutiner-for-ansatte#")
    # A language no alternative has falls back to the first one.
    assert passage_keys_for(step, "se", languages.get)[0].startswith("elevguide#")
    assert passage_alternatives("a#X | b#Y") == ["a#X", "b#Y"] and passage_alternatives("a#X") == ["a#X"]


# --- Mermaid ----------------------------------------------------------------------------------------------------


def test_committed_mermaid_files_are_up_to_date(flows):
    for flow in flows.values():
        mmd = flow.path.with_suffix(".mmd")
        assert mmd.exists(), f"missing {mmd.name}: regenerate with bot.flows.write_mermaid"
        assert mmd.read_text(encoding="utf-8") == flow_to_mermaid(flow), f"{mmd.name} is stale: regenerate it"


def test_mermaid_has_a_node_per_step_and_an_edge_per_button_and_declared_back_link(flows):
    flow = flows["forelder-utrygg"]
    text = flow_to_mermaid(flow, lang="en")
    assert text.splitlines()[1].startswith('title: "My child is not safe at school')
    for step in flow.steps.values():
        assert f"s_{step.id.replace('-', '_')}" in text
    edges = [line for line in text.splitlines() if "-->" in line or "-.->" in line]
    declared = sum(step.back_declared for step in flow.steps.values())
    assert declared >= 3
    assert len(edges) == sum(len(step.buttons) for step in flow.steps.values()) + declared
    # Branches: the first step fans out to several steps.
    assert sum(line.startswith("    s_hvor -->") for line in edges) == len(flow.steps["hvor"].buttons)
    assert '-.->|"Go to Statsforvalteren"| f_statsforvalteren' in text
    assert 'f_statsforvalteren[["flow: statsforvalteren"]]' in text
    assert 's_mote -.->|"↩"| s_hvor' in text  # a declared back link
    assert 'c_brev{{"/brev"}}' in text and '-.->|"Draft an e-mail to rektor"| c_brev' in text
    assert '(["hvor: ' in text and '(["uker: ' in text  # start and end steps are drawn round


def test_mermaid_marks_correct_quiz_answers(flows):
    text = flow_to_mermaid(flows["nyutdannet"], lang="nb")
    assert '-->|"Snarast ✓"| s_q3_riktig' in text
    assert '-->|"Når det finnes bevis"| s_q3_feil' in text


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
        {"id": "to", "text": {"nb": "Andre", "nn": "Andre", "en": "Second"},
         "passages": ["kapittel-12-forklart#§ 12-2"]},
    ],
}


# Two more steps: "en" → "fire" and "en" → "tre" → "fire", so "fire" is reached from two steps.
THIRD_AND_FOURTH = [
    {"id": "tre", "text": {"nb": "Tre", "nn": "Tre", "en": "Three"}, "refs": ["§ 12-4"],
     "passages": ["kapittel-12-forklart#§ 12-4"],
     "buttons": [{"label": {"nb": "Til fire", "nn": "Til fire", "en": "To four"}, "next": "fire"}]},
    {"id": "fire", "text": {"nb": "Fire", "nn": "Fire", "en": "Four"}, "refs": ["§ 12-4"],
     "passages": ["kapittel-12-forklart#§ 12-4"]},
]


def with_branches(d) -> None:
    """The first step gets buttons to "tre" and "fire" as well (used by the back-link cases)."""
    first_step(d)["buttons"] += [
        {"label": {"nb": "Tre", "nn": "Tre", "en": "Three"}, "next": "tre"},
        {"label": {"nb": "Fire", "nn": "Fire", "en": "Four"}, "next": "fire"},
    ]


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
    ("ref unknown law", lambda d: first_step(d).update(refs=["arbeidsmiljøloven § 1"]), "en", "malformed ref"),
    ("ref law without §", lambda d: first_step(d).update(refs=["forvaltningsloven"]), "en", "malformed ref"),
    ("passage without #", lambda d: first_step(d).update(passages=["kapittel-12-forklart"]), "en", "malformed passage"),
    ("passage without doc", lambda d: first_step(d).update(passages=["#§ 12-4"]), "en", "malformed passage"),
    ("passage without heading", lambda d: first_step(d).update(passages=["doc#"]), "en", "malformed passage"),
    ("passage doc with space", lambda d: first_step(d).update(passages=["kap 12#§ 12-4"]), "en", "malformed passage"),
    ("passage alternative bad", lambda d: first_step(d).update(passages=["a#X | b"]), "en", "malformed passage key"),
    ("step without source", lambda d: d["steps"][1].pop("passages"), "to", "has no source"),
    ("text too long", lambda d: first_step(d)["text"].update(en="x" * 595), "en", "within 600"),
    ("button with next and command", lambda d: first_button(d).update(command="brev"), "en", "exactly one of next"),
    ("unknown command", lambda d: first_button(d).update(next=None, command="slett"), "en", "unknown command 'slett'"),
    ("correct not a bool", lambda d: first_button(d).update(correct="yes"), "en", "must be true or false"),
    ("correct without next", lambda d: first_button(d).update(next=None, flow="annen", correct=True), "en",
     "has no next step"),
    ("score not a bool", lambda d: d["steps"][1].update(score="ja"), "to", "score must be true or false"),
    ("score without a question", lambda d: d["steps"][1].update(score=True), None, "no button is marked correct"),
    ("same label twice", lambda d: first_step(d)["buttons"].append(
        {"label": {"nb": "neste", "nn": "X", "en": "Y"}, "command": "brev"}), "en", "same label in 'nb'"),
    ("button to its own step", lambda d: first_button(d).update(next="en"), "en", "its own step"),
    ("back on the start step", lambda d: first_step(d).update(back="to"), "en", "start step cannot have back"),
    ("back to an unknown step", lambda d: d["steps"][1].update(back="tre"), "to", "step 'tre', which does not"),
    ("back to itself", lambda d: d["steps"][1].update(back="to"), "to", "cannot name the step itself"),
    ("back not an id", lambda d: d["steps"][1].update(back=2), "to", "back must be text"),
    ("reached from several", lambda d: (d["steps"].extend(copy.deepcopy(THIRD_AND_FOURTH)), with_branches(d)), "fire",
     "reached from en, tre; add back:"),
    ("back links in a circle", lambda d: (d["steps"].extend(copy.deepcopy(THIRD_AND_FOURTH)), with_branches(d),
                                          d["steps"][3].update(back="tre"), d["steps"][2].update(back="fire")),
     "tre", "circle (tre → fire → tre)"),
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
        d["steps"][1].pop("passages")
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


def test_back_links_default_declared_and_drawn(tmp_path):
    def change(d):
        d["steps"].extend(copy.deepcopy(THIRD_AND_FOURTH))
        with_branches(d)
        d["steps"][3]["back"] = "tre"
    flow = load_flow(write_flow(tmp_path, mutated(change)))
    assert flow.steps["en"].back is None
    assert flow.steps["to"].back == "en" and not flow.steps["to"].back_declared  # the one step leading here
    assert flow.steps["tre"].back == "en"
    assert flow.steps["fire"].back == "tre" and flow.steps["fire"].back_declared
    text = flow_to_mermaid(flow)
    assert 's_fire -.->|"↩"| s_tre' in text and 's_to -.->' not in text


def test_commands_and_quiz_fields_load(tmp_path):
    def change(d):
        first_step(d)["buttons"] = [
            {"label": {"nb": "Riktig", "nn": "Rett", "en": "Right"}, "next": "to", "correct": True},
            {"label": {"nb": "Brev", "nn": "Brev", "en": "Letter"}, "command": "brev"},
        ]
        d["steps"][1]["score"] = True
    flow = load_flow(write_flow(tmp_path, mutated(change)))
    first = flow.steps["en"]
    assert first.is_question and not first.is_end
    assert [b.correct for b in first.buttons] == [True, False]
    assert first.buttons[1].command == "brev" and first.buttons[1].next is None
    assert flow.steps["to"].score and flow.steps["to"].is_end
    assert set(COMMANDS) == {"brev", "kontakt", "notat", "fare"}


def test_a_step_with_only_command_buttons_ends_the_flow(tmp_path):
    flow = load_flow(write_flow(tmp_path, mutated(lambda d: first_button(d).update(next=None, command="fare"))))
    assert flow.steps["en"].is_end
    problems = check_flows({flow.id: flow}, lambda key: True)
    assert problems == ["demo.yaml, step 'to': cannot be reached from the start step"]


def test_check_flows_finds_a_loop_that_never_ends(tmp_path):
    def change(d):
        d["steps"][1]["buttons"] = [{"label": {"nb": "Tilbake", "nn": "Tilbake", "en": "Back"}, "next": "en"}]
    flows = load_flows_from(tmp_path, mutated(change))
    problems = check_flows(flows, lambda key: True)
    assert sorted(problems) == [
        "demo.yaml, step 'en': no path from here reaches an end step (a step without next buttons), "
        "so the walkthrough could never finish",
        "demo.yaml, step 'to': no path from here reaches an end step (a step without next buttons), "
        "so the walkthrough could never finish",
    ]


def load_flows_from(folder: Path, data) -> dict[str, Flow]:
    write_flow(folder, data)
    return load_flows(folder)
