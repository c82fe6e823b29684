"""Sentence segmentation on the cases news copy throws at it."""

from __future__ import annotations

import pytest

from bot.corpus.segment import split_sentences

CASES = [
    (
        "“I said that Chinese officials are dangerous,” Bilash said. “They’re starting to accept my opinion now.”",
        ["“I said that Chinese officials are dangerous,” Bilash said.", "“They’re starting to accept my opinion now.”"],
    ),
    (
        "The U.S. economy grew 1.5 percent in the quarter. Growth slowed.",
        ["The U.S. economy grew 1.5 percent in the quarter.", "Growth slowed."],
    ),
    (
        "Dr. Smith met officials at No. 10 Downing Street. They talked.",
        ["Dr. Smith met officials at No. 10 Downing Street.", "They talked."],
    ),
    ("It could cost about ¥5.1 trillion ($47 billion). Analysts agree.", ["It could cost about ¥5.1 trillion ($47 billion).", "Analysts agree."]),
    ("The vote came at 3 p.m. Tuesday, officials said. Then they left.", ["The vote came at 3 p.m. Tuesday, officials said.", "Then they left."]),
    ("He landed at 9 a.m. on Monday. Crowds cheered.", ["He landed at 9 a.m. on Monday.", "Crowds cheered."]),
    ("J. R. R. Tolkien wrote it. Mr. Abe spoke.", ["J. R. R. Tolkien wrote it.", "Mr. Abe spoke."]),
    ("He was released on Dec. 24 but has not left. Relatives wait.", ["He was released on Dec. 24 but has not left.", "Relatives wait."]),
    ("Sales rose 2%.Profits fell to $3.36bn. Shares held.", ["Sales rose 2%.", "Profits fell to $3.36bn.", "Shares held."]),
    ("Is it over? Not yet! Officials said so.", ["Is it over?", "Not yet!", "Officials said so."]),
    ("First paragraph ends here\nSecond paragraph.", ["First paragraph ends here", "Second paragraph."]),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_split(text, expected):
    assert split_sentences(text) == expected


def test_whitespace_and_empty():
    assert split_sentences("") == []
    assert split_sentences("  \n\t \n") == []
    assert split_sentences("Non\u00a0breaking   spaces here.") == ["Non breaking spaces here."]
