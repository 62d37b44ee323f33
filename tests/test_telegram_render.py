"""Rendering of the core's replies as Telegram HTML: escaping, splitting, keyboards, callback data."""

import pytest
from telegram.constants import InlineKeyboardButtonLimit, MessageLimit

from bot.i18n import Catalog
from bot.replies import Button, Citation, Reply
from bot.telegram_render import (
    Labels,
    build_keyboard,
    feedback_data,
    parse_feedback,
    render_citation,
    render_reply,
    split_plain,
    tg_len,
    without_feedback_row,
)
from botapi_emulator import ApiError, check_reply_markup, check_text, parse_html
from paths import KNOWLEDGE

LABELS = Labels.from_catalog(Catalog.load(KNOWLEDGE / "ui"), "nb")


def citation(n=1, **overrides) -> Citation:
    fields = dict(
        n=n, passage_id=f"kapittel-12-forklart#{n}", document="Kapittel 12 forklart",
        section="Kapittel 12 forklart › § 12-4 Aktivitetsplikt", refs=("§ 12-4",),
        url="https://example.no/kap12?a=1&b=2", updated="2024-08-01", text="…", score=0.9,
    )
    fields.update(overrides)
    return Citation(**fields)


def assert_valid(html: str) -> str:
    """What Telegram would accept: the emulator's parser and limits; returns the visible text."""
    visible, _ = check_text(html, "HTML")
    return visible


def test_user_and_knowledge_text_is_escaped():
    reply = Reply('Skriv <b>ikke</b> & "sitat" <script>x</script>', citations=[citation(document="A <i>", section="")])
    [message] = render_reply(reply, LABELS)
    visible = assert_valid(message.html)
    assert '<b>ikke</b> & "sitat" <script>x</script>' in visible
    assert "A <i>" in visible
    assert "<script>" not in message.html


def test_markdown_is_shown_as_typed():
    [message] = render_reply(Reply("*fet* _kursiv_ `kode` [lenke](https://x.no)"), LABELS)
    assert assert_valid(message.html) == "*fet* _kursiv_ `kode` [lenke](https://x.no)"


def test_citations_are_numbered_links_with_section_and_refs():
    reply = Reply("Svar [1] og [2].", citations=[citation(1), citation(2, url=None, refs=("§ 12-2", "§ 12-3"))])
    [message] = render_reply(reply, LABELS)
    visible, entities = parse_html(message.html)
    # The heading names § 12-4 already, so it is not said again.
    assert "Kilder\n1. Kapittel 12 forklart › § 12-4 Aktivitetsplikt (oppdatert 2024-08-01)" in visible
    assert "2. Kapittel 12 forklart › § 12-4 Aktivitetsplikt (§ 12-2, § 12-3; oppdatert 2024-08-01)" in visible
    links = [e for e in entities if e["type"] == "text_link"]
    assert [link["url"] for link in links] == ["https://example.no/kap12?a=1&b=2"]  # href escaped, then decoded


def test_citation_joins_document_and_its_own_heading_without_tags():
    line = render_citation(citation(section="Rutiner › Melde til rektor (§ 12-4)", document="Rutiner for ansatte"),
                           LABELS)
    assert parse_html(line)[0] == "1. Rutiner for ansatte › Melde til rektor (§ 12-4; oppdatert 2024-08-01)"
    advice = citation(section="Veiledning for foreldre: x › Skriv ned det som skjer (råd)", refs=(),
                      document="Veiledning for foreldre: x", url=None, updated=None)
    assert parse_html(render_citation(advice, LABELS))[0] == "1. Veiledning for foreldre: x › Skriv ned det som skjer"
    compact = render_citation(citation(section="Kapittel 12 forklart › § 12-4 Plikt › Skriftlig plan (aktivitetsplan)",
                                       refs=("§ 12-4", "§ 12-4")), LABELS, compact=True)
    assert parse_html(compact)[0] == "• Kapittel 12 forklart › Skriftlig plan (aktivitetsplan), § 12-4"


def test_a_link_several_sources_share_is_given_once_and_steps_show_compact_lines():
    reply = Reply("Svar.", citations=[citation(1), citation(2, section="Kapittel 12 forklart › Annet")])
    html = render_reply(reply, LABELS)[0].html
    assert html.count('href="https://example.no/kap12?a=1&amp;b=2"') == 1
    step = Reply("Steg.", citations=[citation(1)], kind="flow_step")
    visible = parse_html(render_reply(step, LABELS)[0].html)[0]
    assert "• Kapittel 12 forklart › § 12-4 Aktivitetsplikt" in visible and "oppdatert" not in visible


def test_unsafe_link_schemes_are_not_linked():
    line = render_citation(citation(url="javascript:alert(1)"), LABELS)
    assert "<a " not in line
    assert_valid(line)


@pytest.mark.parametrize("limit", [MessageLimit.MAX_TEXT_LENGTH, 200])
def test_long_replies_split_on_paragraphs_and_every_part_is_valid(limit):
    paragraphs = [f"Avsnitt {i}: " + "Skolen skal handle <straks> & følge opp. " * 12 for i in range(40)]
    reply = Reply("\n\n".join(paragraphs), citations=[citation(i) for i in range(1, 4)],
                  buttons=[[Button("Neste", "s|flow|step|0")]], feedback_id="abc123")
    messages = render_reply(reply, LABELS, limit=limit)
    assert len(messages) > 1
    visible = []
    for message in messages:
        assert tg_len(message.html) <= limit
        visible.append(assert_valid(message.html))
    # Nothing lost and no paragraph cut in two when it fits in one message.
    joined = "\n\n".join(visible)
    if limit == MessageLimit.MAX_TEXT_LENGTH:
        for paragraph in paragraphs:
            assert paragraph.strip() in joined
    assert joined.count("Skolen skal handle <straks>") == 40 * 12
    # The keyboard rides on the last part only.
    assert all(m.keyboard is None for m in messages[:-1])
    assert messages[-1].keyboard is not None


def test_a_single_huge_paragraph_is_split_on_sentences_then_words():
    sentence = "Elevene har rett til et trygt og godt skolemiljø & det gjelder alle. "
    paragraph = sentence * 200  # ~14,000 characters, no blank lines
    messages = render_reply(Reply(paragraph), LABELS)
    assert len(messages) >= 3
    for message in messages:
        assert tg_len(message.html) <= MessageLimit.MAX_TEXT_LENGTH
        text = assert_valid(message.html)
        assert text.endswith("alle.")  # cut at a sentence end, not mid-sentence
    assert sum(assert_valid(m.html).count("alle.") for m in messages) == 200


def test_an_endless_word_is_cut_without_breaking_entities():
    word = "&<>" * 3000  # escapes to 5 times its length: naive cutting would split "&amp;"
    pieces = split_plain(word, limit=1000)
    assert "".join(pieces) == word
    for message in render_reply(Reply(word), LABELS, limit=1000):
        assert tg_len(message.html) <= 1000
        assert_valid(message.html)


def test_emoji_count_as_two_utf16_units():
    text = "😀" * 3000  # 3000 characters, 6000 UTF-16 units: more than one message
    messages = render_reply(Reply(text), LABELS)
    assert len(messages) == 2
    for message in messages:
        assert_valid(message.html)


def test_empty_text_with_buttons_still_sends_something():
    [message] = render_reply(Reply("", buttons=[[Button("Meny", "k|meny")]]), LABELS)
    assert message.html == LABELS.choose
    assert render_reply(Reply("   "), LABELS) == []


def test_keyboard_from_rows_plus_feedback_row():
    markup = build_keyboard([[Button("A", "s|f|x|0")], [Button("B", "a"), Button("C", "q")]], "id_42",
                            LABELS)
    rows = [[(b.text, b.callback_data) for b in row] for row in markup.inline_keyboard]
    assert rows == [[("A", "s|f|x|0")], [("B", "a"), ("C", "q")],
                    [(LABELS.vote_up, "fb|+|id_42"), (LABELS.vote_down, "fb|-|id_42")]]
    assert check_reply_markup(markup.to_dict()) is not None  # Telegram's structure rules


def test_callback_data_over_the_limit_is_refused():
    too_long = "x" * (InlineKeyboardButtonLimit.MAX_CALLBACK_DATA + 1)
    with pytest.raises(ValueError):
        build_keyboard([[Button("A", too_long)]])
    multibyte = "ø" * 33  # 66 bytes although only 33 characters
    with pytest.raises(ValueError):
        build_keyboard([[Button("A", multibyte)]])
    assert build_keyboard([[Button("A", "x" * InlineKeyboardButtonLimit.MAX_CALLBACK_DATA)]]) is not None


def test_emulator_rejects_what_telegram_rejects():
    for bad in ("<b>x", "x</b>", "<div>x</div>", "a & b", '<a href="javascript:x">y</a>', "<b><i>x</b></i>"):
        with pytest.raises(ApiError):
            check_text(bad, "HTML")
    with pytest.raises(ApiError):
        check_text("x" * (MessageLimit.MAX_TEXT_LENGTH + 1), None)
    with pytest.raises(ApiError):
        check_reply_markup({"inline_keyboard": [[{"text": "x", "callback_data": "y" * 65}]]})
    with pytest.raises(ApiError):
        check_reply_markup({"inline_keyboard": [{"text": "x", "callback_data": "y"}]})


def test_feedback_data_round_trip_and_forgeries():
    data = feedback_data("AbC-12_x", up=False)
    assert parse_feedback(data) == ("AbC-12_x", False)
    assert parse_feedback(feedback_data("z", True)) == ("z", True)
    for forged in ("fb|x|abc", "fb|+|", "fb|+|a b", "fb|+|" + "a" * 60, "v|+|abc", "fb|+|abc|extra", ""):
        assert parse_feedback(forged) is None
    with pytest.raises(ValueError):
        feedback_data("has space", True)


def test_removing_the_feedback_row_after_a_vote():
    markup = build_keyboard([[Button("Meny", "k|meny")]], "abc", LABELS)
    remaining = without_feedback_row(markup)
    assert [[b.callback_data for b in row] for row in remaining.inline_keyboard] == [["k|meny"]]
    assert without_feedback_row(build_keyboard([], "abc", LABELS)) is None
    assert without_feedback_row(None) is None
