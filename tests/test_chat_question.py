"""The question a member typed (bot.engines.chat_question): mentions and chat filler
removed, the real question's words and casing kept. Plain rules, no model."""

from __future__ import annotations

import pytest

from bot.engines.chat_question import clean_question

JAPAN = "what did Japan decide about travelers?"

CLEANED = [
    (f"@everyone {JAPAN}", JAPAN),
    (f"@here {JAPAN}", JAPAN),
    (f"<@400> {JAPAN}", JAPAN),
    (f"<@!400> {JAPAN}", JAPAN),
    (f"<@&77> {JAPAN}", JAPAN),
    (f"<#12> {JAPAN}", JAPAN),
    (f"<@400>, {JAPAN}", JAPAN),
    (f"<@400>: {JAPAN}", JAPAN),
    (f"@Precis {JAPAN}", JAPAN),
    (f"@Precis, {JAPAN}", JAPAN),
    (f"hey, {JAPAN}", JAPAN),
    (f"hey {JAPAN}", JAPAN),
    (f"hey @everyone {JAPAN}", JAPAN),
    (f"hey <@400>, {JAPAN}", JAPAN),
    (f"hi {JAPAN} <@400>", JAPAN),
    (f"yo {JAPAN}", JAPAN),
    (f"hello! {JAPAN}", JAPAN),
    (f"hey guys {JAPAN}", JAPAN),
    (f"hey guys, quick question: {JAPAN}", JAPAN),
    ("<@400> What did Japan decide about travelers? thanks!", "What did Japan decide about travelers?"),
    ("What did Japan decide about travelers? Thank you!", "What did Japan decide about travelers?"),
    ("What did Japan decide about travelers? thx :)", "What did Japan decide about travelers?"),
    ("What did Japan decide about travelers? ty", "What did Japan decide about travelers?"),
    ("What did Japan decide about travelers?? lol", "What did Japan decide about travelers??"),
    ("What did Japan decide about travelers? 🙏", "What did Japan decide about travelers?"),
    ("quick question: who won?", "who won?"),
    ("Quick question - who won?", "who won?"),
    ("anyone know who won the election pls", "who won the election"),
    ("does anyone know who won the election?", "who won the election?"),
    ("Does anybody know if the rail line reopened?", "the rail line reopened?"),
    ("can someone tell me who won the election", "who won the election"),
    ("Can someone tell me whether the rail line reopened?", "the rail line reopened?"),
    ("hi all, when does the rail line reopen? thanks", "when does the rail line reopen?"),
    ("hi all when does the rail line reopen please", "when does the rail line reopen"),
    ("who won the election, plz", "who won the election"),
    ("who won the election thanks in advance", "who won the election"),
    ("  who   won\tthe election?  ", "who won the election?"),
    ("Who won the election <@400>?", "Who won the election?"),
    ("Who won, <@400>?", "Who won?"),
    ("Who won, <@400> <@!401>?", "Who won?"),
    ("Did <@400> say who won?", "Did say who won?"),
    ("lol who won the election", "who won the election"),
    ("Hey whats up with Japan?", "whats up with Japan?"),
    ("sup what happened in Ohio today?? thanks guys!", "what happened in Ohio today??"),
]

UNCHANGED = [
    "Who said 'hey' to the president?",
    "What did Thank You Industries announce?",
    "Who is Ty Lue?",
    "Who is Ty",
    "Why did hello Fresh shares fall",
    "Why did HelloFresh shares fall?",
    "Hello Fresh shares fell, why?",
    "Hey Jude was written by whom?",
    "Yo-Yo Ma played where on Sunday?",
    "Why did Biden say thank you?",
    "Why did the mayor say 'please'?",
    "What did Japan decide about travelers?",
    "what did Japan decide about travelers?",
    "How many people (roughly) voted?",
    "Who won the 2024 U.S. election — and by how much?!",
    "Is the pretty city of Kyoto open?",
    "What does TIA stand for?",
    "Which team won: Lakers or Celtics?",
]

EMPTY = [
    "",
    "   ",
    "hey @everyone",
    "hey",
    "hi all!",
    "<@400>",
    "<@400> thanks!",
    "@Precis",
    "thanks",
    "thank you :)",
    "pls",
    "lol",
    "hey guys, quick question:",
    "@everyone @here",
]


@pytest.mark.parametrize("raw, question", CLEANED)
def test_filler_and_mentions_are_removed(raw, question):
    assert clean_question(raw) == question


@pytest.mark.parametrize("question", UNCHANGED)
def test_a_question_without_filler_comes_back_unchanged(question):
    assert clean_question(question) == question


@pytest.mark.parametrize("raw", EMPTY)
def test_pure_filler_cleans_to_nothing(raw):
    assert clean_question(raw) == ""


@pytest.mark.parametrize("raw", [raw for raw, _ in CLEANED] + UNCHANGED + EMPTY)
def test_cleaning_twice_is_cleaning_once(raw):
    once = clean_question(raw)
    assert clean_question(once) == once


def test_case_is_never_changed():
    assert clean_question("hey, WHO WON?") == "WHO WON?"
    assert clean_question("hey, who won the Election?") == "who won the Election?"


# --------------------------------------------------------------------- through /ask, on the sample corpus
BARE = "What did Japan decide about travelers?"
CHAT_FORMS = (
    "@everyone what did Japan decide about travelers?",
    "<@400> what did Japan decide about travelers?",
    "hey, what did Japan decide about travelers?",
)


@pytest.mark.slow
def test_chat_forms_answer_like_the_bare_question(app_factory):
    """Mentions and greetings are not question terms: the three chat forms of the issue answer with the same
    lead sentence as the bare question."""
    from bot.handlers.core import Handlers

    handlers = Handlers(app_factory())
    bare = handlers.ask(BARE)
    assert bare.ok and bare.kind != "error"
    lead = bare.lines[-1].text
    assert "Japan will step up its efforts" in lead or "banning the entry" in lead, lead
    for form in CHAT_FORMS:
        reply = handlers.ask(form)
        assert [line.text for line in reply.lines] == [line.text for line in bare.lines], form
        assert reply.title.lower() == bare.title.lower()  # the question as read: no mention, no greeting echoed


@pytest.mark.slow
def test_a_message_of_only_mentions_and_greetings_is_refused_politely(app_factory):
    from bot.handlers.core import Handlers

    reply = Handlers(app_factory(ask_reranker="off")).ask("hey <@400> @everyone")
    assert not reply.ok and reply.kind == "error"
    assert "Please ask a question" in reply.text
