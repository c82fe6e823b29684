"""models.decoding: one copy constraint, three forms (token mask, GBNF grammar, word-by-word check).

The token-level mask is what the transformers backend runs; the grammar and the check
must accept exactly the same word sequences. Checked here on random walks through the
automaton (sequences it allows) and random subsequences (mostly ones it refuses)."""

from __future__ import annotations

import random
import re
import zlib

import pytest

from bot.engines.abstractive import CopyConstraint as Reexported
from models.decoding import CopyConstraint, gbnf, satisfies, truncate

SOURCES = [
    "Leon Yeaman, 55, was not killed by Mr Smith on Friday, police said.",
    "China is allowing more than 2,000 ethnic Kazakhs to abandon their Chinese citizenship and leave the country, "
    "the Kazakh Foreign Ministry said on Tuesday.",
    "The country is due to repay a £330million loan to the International Monetary Fund on Thursday, "
    "a rise of 13 per cent.",
    "(CNN)After a long search, the ship, which sank in 1912, was found by divers off the coast of Ireland (near Cork).",
    "Kunis stole her pet chicken when they were children, Karo claims.",
    "“We will win,” he said, adding that the team had trained for months.",
]


def _toy_encode():
    vocab: dict[str, int] = {}

    def encode(text: str) -> list[int]:
        return [vocab.setdefault(text, len(vocab) + 10)]  # one token per unit, " w" != "w" like a BPE

    return encode


def _token_accepts(cons: CopyConstraint, units: list[int]) -> bool:
    gen: list[int] = []
    for i, k in enumerate(units):
        for t in cons.units[k].lead if i == 0 else cons.units[k].cont:
            if t not in cons.allowed(gen):
                return False
            gen.append(t)
    return cons.eos[0] in cons.allowed(gen)


def _text(cons: CopyConstraint, units: list[int]) -> str:
    return "".join((" " if i and cons.units[k].space else "") + cons.units[k].text for i, k in enumerate(units))


def _random_walk(cons: CopyConstraint, rng: random.Random) -> list[int] | None:
    path: list[int] = []
    k, vb = -1, False
    for _ in range(200):
        if k >= 0 and cons.may_stop(k, vb) and rng.random() < 0.3:
            return path
        nxt = cons.next_units(k, vb)
        if not nxt:
            return path if k >= 0 and cons.may_stop(k, vb) else None
        k = rng.choice(nxt)
        vb = vb or cons.verb[k]
        path.append(k)
    return None


@pytest.mark.parametrize("strict,span", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("source", SOURCES)
def test_check_agrees_with_the_token_mask(source: str, strict: bool, span: bool) -> None:
    cons = CopyConstraint(_toy_encode(), source, eos_ids=[0], strict=strict, span=span)
    rng = random.Random(zlib.crc32(source.encode()) + strict + 2 * span)  # stable across runs (hash() is salted)
    n = len(cons.units)
    allowed = refused = 0
    for _ in range(150):
        walk = _random_walk(cons, rng)
        if walk:
            assert _token_accepts(cons, walk), _text(cons, walk)
            assert satisfies(_text(cons, walk), source, strict=strict, span=span), _text(cons, walk)
            allowed += 1
        sub = sorted(rng.sample(range(n), rng.randint(1, n)))
        if span and rng.random() < 0.5:  # an unbroken run, allowed or not
            a = rng.randrange(n)
            sub = list(range(a, rng.randint(a + 1, n)))
        tok = _token_accepts(cons, sub)
        assert satisfies(_text(cons, sub), source, strict=strict, span=span) == tok, _text(cons, sub)
        refused += not tok
    assert allowed and refused


def test_the_engine_still_exports_the_one_constraint() -> None:
    assert Reexported is CopyConstraint


def test_check_refuses_what_changes_the_meaning() -> None:
    src = SOURCES[0]
    assert satisfies("Leon Yeaman was not killed by Mr Smith on Friday, police said.", src)
    assert satisfies("Leon Yeaman was not killed.", src)
    assert not satisfies("Leon Yeaman was killed by Mr Smith.", src)  # "not" dropped
    assert not satisfies("Leon Yeaman was not killed by Mr.", src)  # a name split
    assert not satisfies("Leon Yeaman was not killed by Mr Jones.", src)  # a word not in the source
    assert not satisfies("Yeaman was not killed.", src)  # the subject mangled
    assert not satisfies("Leon Yeaman was not killed by Mr Smith on Friday, police said", src)  # no closing "."
    assert not satisfies("Here is the sentence: Leon Yeaman was not killed.", src)
    assert not satisfies("", src) and not satisfies("Leon Yeaman was not killed.", "")
    # spacing does not matter; the first word may gain a capital ("the ship" -> "The ship")
    assert satisfies("Leon Yeaman was not killed .", src)
    assert satisfies("The ship was found by divers off the coast of Ireland.", SOURCES[3])
    # several supports: one of them must allow it
    assert satisfies("Kunis stole her pet chicken when they were children, Karo claims.", [src, SOURCES[4]])
    assert not satisfies("Kunis stole her pet chicken.", [src, SOURCES[4]])  # a claim stated as fact


def test_truncate_backs_up_to_the_last_place_it_may_end() -> None:
    src = SOURCES[0]
    assert truncate("Leon Yeaman was not killed by Mr", src) == "Leon Yeaman was not killed."
    assert truncate("Leon Yeaman was not killed by Mr Smith on Friday, police said.", src) == (
        "Leon Yeaman was not killed by Mr Smith on Friday, police said."
    )
    assert truncate("Leon Yeaman, 55", src) == ""  # no verb kept yet: nowhere to end
    assert truncate("Something else entirely", src) == ""


def _rules(grammar: str) -> dict[str, str]:
    rules = {}
    for line in grammar.strip().splitlines():
        name, _, body = line.partition(" ::= ")
        rules[name] = body
    return rules


def _gbnf_language(grammar: str, limit: int = 5000) -> set[str]:
    """Every string the grammar accepts (it is acyclic and finite): a small GBNF interpreter for
    exactly the subset :func:`gbnf` writes (alternatives of "literal" rule-ref, or "")."""
    rules = _rules(grammar)
    lit = r'"((?:[^"\\]|\\.)*)"'

    def expand(name: str) -> set[str]:
        out: set[str] = set()
        for alt in rules[name].split(" | "):
            if alt == '""':
                out.add("")
                continue
            m = re.fullmatch(lit + r"(?: (\S+))?", alt)
            assert m, alt
            text = re.sub(r"\\(.)", r"\1", m.group(1))
            tails = expand(m.group(2)) if m.group(2) else {""}
            out.update(text + t for t in tails)
            assert len(out) < limit
        return out

    return expand("root")


@pytest.mark.parametrize("source", SOURCES)
def test_grammar_accepts_exactly_what_the_check_accepts(source: str) -> None:
    grammar = gbnf(source)
    assert grammar is not None and grammar.startswith("root ::= ")
    rules = _rules(grammar)
    for body in rules.values():  # every rule it refers to is defined
        for ref in re.findall(r'(?:^|" )(s\d+-a\d+-[01])', body):
            assert ref in rules
    language = _gbnf_language(grammar)
    assert source.replace("(CNN)", "") in language or source in language
    cons = CopyConstraint(_toy_encode(), source, eos_ids=[0])
    for text in language:
        assert satisfies(text, source), text
    rng = random.Random(7)
    for _ in range(100):  # and every allowed compression is in the grammar's language
        walk = _random_walk(cons, rng)
        if walk:
            assert _text(cons, walk) in language


@pytest.mark.parametrize("source", SOURCES)
def test_span_grammar_is_exactly_the_runs_the_check_allows(source: str) -> None:
    language = _gbnf_language(gbnf(source, span=True))
    cons = CopyConstraint(_toy_encode(), source, eos_ids=[0], span=True)
    n = len(cons.units)
    runs = {_text(cons, list(range(a, b))) for a in range(n) for b in range(a + 1, n + 1)}
    assert language == {t for t in runs if satisfies(t, source, span=True)}
    assert language and all(t in runs for t in language)  # only unbroken runs of the source's words
    assert source not in language or source.endswith(".")  # the whole sentence may be one


@pytest.mark.parametrize(
    "answer,ok",
    [
        ("more than 2,000 ethnic Kazakhs", True),
        ("2,000 ethnic Kazakhs", False),  # "more than" cut off
        ("the Kazakh Foreign Ministry", True),  # may end before "said"
        ("on Tuesday", True),  # may start after "said"
        ("Foreign Ministry", False),  # half a name
        ("China is allowing more", False),  # ends on a quantifier's first word
        ("China allowing", False),  # not unbroken
        ("Chinese citizenship", True),
    ],
)
def test_a_span_answer_keeps_names_numbers_and_quantifiers_whole(answer: str, ok: bool) -> None:
    assert satisfies(answer, SOURCES[1], span=True) is ok


@pytest.mark.parametrize(
    "answer,ok",
    [("not killed", True), ("killed by Mr Smith", False), ("Smith", False), ("Mr Smith", True),
     ("Leon Yeaman, 55, was", False), ("Leon Yeaman", True)],
)
def test_a_span_answer_never_drops_a_negation(answer: str, ok: bool) -> None:
    assert satisfies(answer, SOURCES[0], span=True) is ok


def test_grammar_escapes_quotes_and_backslashes() -> None:
    src = 'He said "no" to the C:\\ drive deal.'
    grammar = gbnf(src)
    assert grammar is not None
    assert src in _gbnf_language(grammar)


def test_grammar_of_nothing_is_none() -> None:
    assert gbnf("") is None and gbnf([]) is None and gbnf("   ") is None


@pytest.mark.parametrize(
    "answer,ok",
    [
        ("the United States, China, South Korea and most of Europe", True),
        ("the United States", False),  # the list goes on: part of it is not the answer
        ("the United States, China, South Korea", False),
        ("the Asahi newspaper", True),
        ("Japan", True),
    ],
)
def test_a_span_answer_takes_a_list_of_names_whole(answer: str, ok: bool) -> None:
    src = ("Japan will step up its efforts by banning the entry of foreign citizens traveling from the United "
           "States, China, South Korea and most of Europe, the Asahi newspaper reported on Monday.")
    assert satisfies(answer, src, span=True) is ok


@pytest.mark.parametrize("answer", ["China is allowing more than 2,000 ethnic Kazakhs to", "their Chinese citizenship and",
                                    "China is", "ethnic Kazakhs to abandon their"])
def test_a_span_answer_does_not_end_on_a_function_word(answer: str) -> None:
    assert not satisfies(answer, SOURCES[1], span=True)
    assert satisfies("China", SOURCES[1], span=True)
