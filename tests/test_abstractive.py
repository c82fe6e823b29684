"""Abstractive summaries: the invention guard, the copy constraint, the engine with a
fake generator, the tiny T5 through the real loader, and (slow) the bundled SmolLM2."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.corpus.article import Article
from bot.engines import abstractive as ab
from bot.engines.abstractive import (
    FALLBACK_NOTE,
    PROMPT,
    STRICT_PROMPT,
    AbstractiveConfig,
    AbstractiveResult,
    AbstractiveSummarizer,
    CopyConstraint,
    GeneratedLine,
)
from bot.engines.extractive import ExtractiveSummarizer, SentenceInfo
from bot.grounding.claims import check, claims, unsupported
from bot.engines.topic import topic_summary
from bot.index.sentence_index import SentenceIndex
from models.generator import Generator
from models.registry import DEFAULT_GENERATOR, ModelUnavailable
from tests.model_fixtures import tiny_t5_dir  # noqa: F401  (pytest fixture)

KAZAKH_SRC = [
    "China is allowing more than 2,000 ethnic Kazakhs to abandon their Chinese citizenship and leave the country, "
    "the Kazakh Foreign Ministry said on Tuesday.",
    "The country is due to repay a £330million loan to the International Monetary Fund on Thursday, "
    "a rise of 13 per cent.",
]


# ====================================================================== guard


def test_claims_lists_numbers_names_and_dates_as_written() -> None:
    got = claims("China let 2,000 Kazakhs leave on Tuesday, the Kazakh Foreign Ministry said last week.")
    assert {"2,000", "China", "Kazakhs", "Tuesday", "Kazakh Foreign Ministry", "last week"} <= got
    # sentence-initial common words and titles are not claims
    assert claims("The ministry said. But officials did not.") == set()
    assert "Mr" not in claims("Mr Yeaman was there.") and "Yeaman" in claims("Mr Yeaman was there.")


@pytest.mark.parametrize(
    "text",
    [
        "China is allowing 2000 ethnic Kazakhs to leave.",  # thousands separator
        "More than two thousand Kazakhs may leave.",  # written number
        "The loan is £330 million.",  # spacing, scale word
        "It is a rise of 13%.",  # percent sign for "per cent"
        "The International Monetary Fund will be repaid on Thursday.",
        "The IMF will be repaid.",  # acronym of a name in the support
        "Kazakhstan's ministry spoke.",  # Kazakh ~ Kazakhstan
    ],
)
def test_supported_claims_pass(text: str) -> None:
    assert unsupported(text, KAZAKH_SRC) == []


@pytest.mark.parametrize(
    ("text", "invented"),
    [
        ("China is allowing 2,500 ethnic Kazakhs to leave.", "2,500"),
        ("The loan is $47 billion.", "$47 billion"),
        ("Three thousand Kazakhs may leave.", "Three thousand"),
        ("It is a rise of 15 per cent.", "15 per cent"),
        ("Kazakhstan, China's eastern neighbor Mongolia, let them go.", "Mongolia"),
        ("The Kazakh Foreign Ministry said it on Monday.", "Monday"),
        ("The ministry said so yesterday.", "yesterday"),
        ("The loan goes to the World Bank.", "World Bank"),
        ("Dimitris Mardas spoke.", "Dimitris Mardas"),
    ],
)
def test_invented_claims_are_caught(text: str, invented: str) -> None:
    assert invented in unsupported(text, KAZAKH_SRC)


def test_negation_added_or_dropped_is_caught() -> None:
    src = ["The company said it would not cut jobs this year."]
    assert unsupported("The company said it would cut jobs.", src)
    assert unsupported("The company said it would not cut jobs.", src) == []
    assert any("negation" in u for u in unsupported("China is not allowing Kazakhs to leave.", KAZAKH_SRC))


def test_check_reports_each_claim() -> None:
    got = {c.text: ok for c, ok in check("China let 2,500 Kazakhs go.", KAZAKH_SRC)}
    assert got == {"China": True, "2,500": False, "Kazakhs": True}


# ====================================================================== copy constraint

SRC = "Leon Yeaman, 55, was not killed by Mr Smith on Friday, police said."
#      0    1     2 3  4 5   6   7      8  9  10    11 12    13 14    15  16


def _toy_encode():
    vocab: dict[str, int] = {}

    def encode(text: str) -> list[int]:
        # one token per unit; " word" and "word" are different tokens, like a BPE
        return [vocab.setdefault(text, len(vocab) + 10)]

    return encode


def _accepts(cons: CopyConstraint, units: list[int]) -> bool:
    gen: list[int] = []
    for i, k in enumerate(units):
        ids = cons.units[k].lead if i == 0 else cons.units[k].cont
        for t in ids:
            if t not in cons.allowed(gen):
                return False
            gen.append(t)
    return cons.eos[0] in cons.allowed(gen)


@pytest.fixture
def cons() -> CopyConstraint:
    c = CopyConstraint(_toy_encode(), SRC, eos_ids=[0])
    assert [u.text for u in c.units][:6] == ["Leon", "Yeaman", ",", "55", ",", "was"]
    return c


def test_constraint_allows_copying_and_safe_deletions(cons: CopyConstraint) -> None:
    full = list(range(len(cons.units)))
    assert _accepts(cons, full)
    assert _accepts(cons, [0, 1, *range(5, 17)])  # ", 55," dropped
    assert _accepts(cons, [0, 1, 5, 6, 7, 16])  # ends after a verb, at a clause boundary ("by")
    assert _accepts(cons, [*range(0, 11), *range(13, 17)])  # "on Friday" dropped up to the comma


def test_constraint_refuses_meaning_changing_deletions(cons: CopyConstraint) -> None:
    assert not _accepts(cons, [0, 1, 5, 7, 16])  # "not" skipped
    assert not _accepts(cons, [0, 1, 16])  # ends before any verb
    assert not _accepts(cons, [0, 1, 5, 6, 7, 8, 9, 16])  # "Mr" without "Smith"
    assert not _accepts(cons, [1, 2, 3, 4, 5, 6, 7, 16])  # first name dropped from the start: subject mangled
    assert not _accepts(cons, [3, 4, 5, 6, 7, 16])  # the subject dropped
    assert not _accepts(cons, [0, 2, 3])  # out of order / no end
    assert not _accepts(cons, [0, 1, 5, 6, 7, 8, 9, 10, 11])  # no closing punctuation


def test_constraint_never_cuts_off_a_hedge() -> None:
    claim = CopyConstraint(_toy_encode(), "Kunis stole her pet chicken when they were children, Karo claims.", [0])
    assert _accepts(claim, list(range(len(claim.units))))
    assert not _accepts(claim, [0, 1, 2, 3, 4, 12])  # "Kunis stole her pet chicken." as a fact
    plain = CopyConstraint(_toy_encode(), "Kunis stole her pet chicken when they were children, police said.", [0])
    assert _accepts(plain, [0, 1, 2, 3, 4, 12])


def test_strict_constraint_only_copies_and_cuts(cons: CopyConstraint) -> None:
    strict = CopyConstraint(_toy_encode(), SRC, eos_ids=[0], strict=True)
    assert _accepts(strict, list(range(len(strict.units))))
    assert _accepts(strict, [0, 1, 2, 3, 4, 5, 6, 7, 16])
    assert not _accepts(strict, [0, 1, *range(5, 17)])


def test_constraint_drops_a_leading_source_tag_and_may_drop_an_adverbial() -> None:
    c = CopyConstraint(_toy_encode(), "(CNN)The ship was found on Monday.", eos_ids=[0])
    assert [u.text for u in c.units][:4] == ["(", "CNN", ")", "The"]
    assert _accepts(c, list(range(3, len(c.units))))
    assert not _accepts(c, list(range(len(c.units))))  # the tag always goes
    c = CopyConstraint(_toy_encode(), "After a long search, the ship was found.", eos_ids=[0])
    start = [u.text for u in c.units].index("the")
    assert _accepts(c, list(range(start, len(c.units))))


@pytest.mark.parametrize(
    ("raw", "tidy"),
    [
        ("the 54-year-old , who spoke .", "The 54-year-old, who spoke."),
        ("Wil 'brings a light to our family.", "Wil 'brings a light to our family.'"),
        ("'Hillary Clinton got so much flak over the years,", "'Hillary Clinton got so much flak over the years.'"),
        ("He said “we will win", "He said “we will win.”"),
        ("The players' union said it was fine", "The players' union said it was fine."),
        ("he was shot with a .22 calibre gun , police said .", "He was shot with a .22 calibre gun, police said."),
    ],
)
def test_output_is_tidied_into_a_sentence(raw: str, tidy: str) -> None:
    assert ab._tidy(raw) == tidy


# ====================================================================== engine, fake generator


class FakeGenerator:
    """Canned, deterministic outputs: ``rule(source_sentence, strict) -> output``."""

    def __init__(self, rule) -> None:
        self.rule = rule
        self.prompts: list[str] = []

    def generate_batch(self, prompts, **kw):
        assert kw["max_new_tokens"] > 0
        self.prompts.extend(prompts)
        out = []
        for p in prompts:
            strict = p.startswith(STRICT_PROMPT.split("{")[0])
            source = p.split("\n", 1)[1]
            out.append(self.rule(source, strict))
        return out


@pytest.fixture(scope="module")
def sample_index(embedder) -> SentenceIndex:
    from bot.corpus.loader import load_corpus
    from tests.conftest import SAMPLE

    arts = load_corpus(SAMPLE).articles + [
        Article.build(
            title="Dam repair",
            text=(
                "Engineers began repairing the cracked Hoover dam on Monday after a week of heavy rain. "
                "The reservoir level was lowered by 3 metres to ease pressure on the wall. "
                "Nearby villages were told to prepare for evacuation. "
                "Officials said the work would take three weeks."
            ),
        )
    ]
    ix = SentenceIndex(embedder, None)
    ix.build(arts, progress=False)
    return ix


def _engine(ix, rule, **cfg) -> tuple[AbstractiveSummarizer, FakeGenerator]:
    gen = FakeGenerator(rule)
    return AbstractiveSummarizer(ix, ExtractiveSummarizer(ix), gen, AbstractiveConfig(**cfg)), gen


def _first_clause(source: str, strict: bool = False) -> str:
    """The first clause, keeping the attribution that follows it (", the Kazakh Foreign Ministry said")."""
    first, *rest = source.split(", ")
    if rest and re.fullmatch(r"[\w ]{0,40}\b(?:said|reported)\.?", rest[0]):
        first += ", " + rest[0]
    return first.rstrip(".") + "."


def _assert_grounded(ix, res: AbstractiveResult) -> None:
    for line in res.lines:
        assert isinstance(line, GeneratedLine)
        assert 1 <= len(line.support) <= 3
        for s in line.support:
            assert isinstance(s, SentenceInfo)
            assert ix.texts[ix.offsets[s.article] + s.index] == s.text
        assert unsupported(line.text, [s.text for s in line.support]) == []


def test_faithful_rewrites_are_kept_with_their_support(sample_index) -> None:
    eng, gen = _engine(sample_index, _first_clause)
    res = eng(0, 3)
    assert not res.fell_back and not res.dropped and res.notes == ()
    assert len(res.lines) == 3
    assert len(gen.prompts) == 3 and all(p.startswith(PROMPT.split("{")[0]) for p in gen.prompts)
    sources = eng.selector(0, 3)
    for line, src in zip(res.lines, sources):
        assert line.text == _first_clause(src.text)
        best = line.support[0]
        assert (best.article, best.index) == (0, src.index)  # the sentence it came from
        assert 0.6 <= best.score <= 1.0 + 1e-6
        scores = [s.score for s in line.support]
        assert scores == sorted(scores, reverse=True)
    _assert_grounded(sample_index, res)
    assert eng(0, 3) == res  # deterministic


def test_a_line_with_an_invented_number_falls_back_to_its_source_sentence_in_place(sample_index) -> None:
    def rule(source: str, strict: bool) -> str:
        if "2,000" in source:
            return "China is allowing 5,000 ethnic Kazakhs to leave the country."
        return _first_clause(source)

    eng, gen = _engine(sample_index, rule)
    res = eng(0, 3)
    sources = eng.selector(0, 3)
    assert not res.fell_back
    assert len(res.lines) == 3
    assert all("5,000" not in line.text for line in res.lines)
    # the failing line shows its own source sentence, where the generated line would have been (order kept)
    i = next(k for k, s in enumerate(sources) if "2,000" in s.text)
    assert res.lines[i].text == sources[i].text
    assert [(s.article, s.index) for s in res.lines[i].support] == [(sources[i].article, sources[i].index)]
    assert [line.support[0].index for line in res.lines] == [s.index for s in sources]
    assert all(res.lines[k].text == _first_clause(s.text) for k, s in enumerate(sources) if k != i)
    assert len(res.dropped) == 1
    text, reason = res.dropped[0]
    assert "5,000" in text and "5,000" in reason and "regenerated" in reason
    assert any(p.startswith(STRICT_PROMPT.split("{")[0]) for p in gen.prompts)  # it was regenerated once
    assert res.notes == (
        "1 line fell back to the article's own sentence: its generated version could not be verified against "
        "the article.",
    )
    assert not any("not shown" in n for n in res.notes)
    _assert_grounded(sample_index, res)


def test_regeneration_with_stricter_settings_can_save_a_line(sample_index) -> None:
    def rule(source: str, strict: bool) -> str:
        if "2,000" in source and not strict:
            return "Kazakhstan, China's eastern neighbor, is letting 2,000 people go."
        return _first_clause(source)

    res = _engine(sample_index, rule)[0](0, 3)
    assert len(res.lines) == 3 and res.dropped == () and res.notes == ()
    assert res.lines[0].text.startswith("China is allowing more than 2,000")


def test_all_lines_inventing_falls_back_to_the_extractive_summary(sample_index) -> None:
    eng, _ = _engine(sample_index, lambda s, strict: "China's eastern neighbor Mongolia let 5,000 people go on Monday.")
    res = eng(0, 3)
    assert res.fell_back
    assert res.notes == (FALLBACK_NOTE,)
    extractive = ExtractiveSummarizer(sample_index)(0, 3)
    assert [line.text for line in res.lines] == [s.text for s in extractive]
    assert all(line.support == (s,) for line, s in zip(res.lines, extractive))
    assert len(res.dropped) == 3
    assert all("Mongolia" in reason for _, reason in res.dropped)


def test_fragments_and_weak_lines_are_dropped(sample_index) -> None:
    def rule(source: str, strict: bool) -> str:
        if "2,000" in source:
            return "The weather in spring is usually pleasant for a picnic."
        if "trading partner" in source:
            return "China."
        return _first_clause(source)

    res = _engine(sample_index, rule)[0](0, 3)
    reasons = dict(res.dropped)
    assert "weak support" in reasons["The weather in spring is usually pleasant for a picnic."]
    assert "too short" in reasons["China."]
    assert len(res.lines) == 3 and not res.fell_back
    assert sum(line.text == line.support[0].text for line in res.lines) == 2  # both fell back in place
    assert res.notes == (
        "2 lines fell back to the article's own sentences: their generated versions could not be verified "
        "against the article.",
    )


def test_a_generated_sentence_maps_to_the_sentence_that_supports_it(sample_index) -> None:
    ix = sample_index
    row = len(ix.articles) - 1  # the dam article
    target = "Officials said the work would take three weeks."
    res = _engine(ix, lambda s, strict: target)[0](row, 1)
    assert [line.text for line in res.lines] == [target]
    best = res.lines[0].support[0]
    assert (best.article, best.index, best.text) == (row, 3, target)
    assert best.score == pytest.approx(1.0, abs=1e-3)


def test_a_generator_error_falls_back_with_a_note(sample_index) -> None:
    def rule(source: str, strict: bool) -> str:
        raise RuntimeError("out of memory")

    res = _engine(sample_index, rule)[0](0, 2)
    assert res.fell_back and len(res.lines) == 2
    assert "out of memory" in res.notes[-1] and "extractive summary" in res.notes[-1]


def test_a_too_long_sentence_is_cut_to_the_context_and_the_reply_says_so(embedder) -> None:
    long = "The council said " + " ".join(f"item{i}" for i in range(300)) + " were approved."
    ix = SentenceIndex(embedder, None)
    ix.build([Article.build(title="Budget", text=long + " The budget passed on Monday.")], progress=False)

    class Small(FakeGenerator):
        context_length = 200
        is_seq2seq = False

        def count_tokens(self, text: str) -> int:
            return len(text.split())

        def truncate_to_tokens(self, text: str, n: int) -> str:
            return " ".join(text.split()[:n])

    gen = Small(lambda s, strict: "The council said items were approved.")
    res = AbstractiveSummarizer(ix, ExtractiveSummarizer(ix), gen)(0, 2)
    assert ab.CUT_NOTE in res.notes
    assert all(len(p.split()) <= 200 for p in gen.prompts)


def test_topic_summary_across_articles(sample_index) -> None:
    ix = sample_index
    extractive = ExtractiveSummarizer(ix)
    _, picked = topic_summary(ix, extractive, "Kazakh citizens detained in China", 3)
    assert picked
    eng, _ = _engine(ix, _first_clause)
    res = eng.topic(picked, 3)
    assert not res.fell_back and len(res.lines) == len(picked)
    arts = {s.article for s in picked}
    assert all(s.article in arts for line in res.lines for s in line.support)
    _assert_grounded(ix, res)

    bad, _ = _engine(ix, lambda s, strict: "Mongolia let 9,999 people go.")
    res = bad.topic(picked, 3)
    assert res.fell_back and [line.text for line in res.lines] == [p.text for p in picked]
    assert "extractive sentences" in res.notes[-1]


def test_empty_inputs(sample_index) -> None:
    eng, _ = _engine(sample_index, _first_clause)
    assert eng.topic([], 3).lines == ()


# ====================================================================== tiny T5 through the real loader


@pytest.fixture(scope="module")
def t5(tiny_t5_dir: Path) -> Generator:  # noqa: F811
    return Generator(str(tiny_t5_dir), cache_dir=None)


@pytest.mark.parametrize("constrained", [True, False])
def test_tiny_t5_end_to_end_never_shows_an_unsupported_line(sample_index, t5: Generator, constrained: bool) -> None:
    assert t5.is_seq2seq
    config = AbstractiveConfig(constrained=constrained, max_new_tokens=32)
    eng = AbstractiveSummarizer(sample_index, ExtractiveSummarizer(sample_index), t5, config)
    res = eng(0, 3)
    assert res.lines
    if res.fell_back:
        assert res.notes[-1] == FALLBACK_NOTE
        assert all(len(line.support) == 1 and line.support[0].text == line.text for line in res.lines)
    else:
        _assert_grounded(sample_index, res)
        for line in res.lines:
            assert line.support[0].score >= eng.config.min_support
        if res.dropped:
            assert any(re.search(r"lines? fell back to the article's own|repeating an earlier", n) for n in res.notes)
    assert eng(0, 3) == res  # greedy: deterministic


def test_missing_or_corrupt_model_folder_gives_a_clear_message(tiny_t5_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(ModelUnavailable, match="no model folder"):
        Generator(str(tmp_path / "nowhere"))
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_t5_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelUnavailable, match="broken-model.*weights could not be loaded"):
        Generator(str(broken))


# ====================================================================== bundled SmolLM2 (slow)


@pytest.fixture
def one_thread():
    """torch on one thread for this test (two threads on a busy 2-core box run ~4x slower), then restored."""
    import torch

    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


@pytest.mark.slow
def test_bundled_smollm2_on_the_kazakh_article(
    sample_index, tmp_path_factory: pytest.TempPathFactory, one_thread: int
) -> None:
    gen = Generator(DEFAULT_GENERATOR, cache_dir=tmp_path_factory.mktemp("precis-models"), threads=one_thread)
    assert not gen.is_seq2seq and gen.loaded_from == "gguf"
    eng = AbstractiveSummarizer(sample_index, ExtractiveSummarizer(sample_index), gen)
    res = eng(0, 3)
    assert res.lines
    assert not res.fell_back
    for line in res.lines:
        assert line.support, line.text
        assert unsupported(line.text, [s.text for s in line.support]) == []
        assert line.support[0].score >= eng.config.min_support
    assert "Kazakhs" in " ".join(line.text for line in res.lines)
    assert eng.last_stats["seconds"] < 30


def test_a_rewrite_that_cuts_an_attribution_is_not_shown(sample_index) -> None:
    """"..., the Asahi newspaper reported" cut turns a report into a fact: the verifier stops it."""
    ix = sample_index
    g = next(i for i, t in enumerate(ix.texts) if "the Asahi newspaper reported" in t)
    src = SentenceInfo(int(ix.sent_article[g]), int(ix.sent_pos[g]), ix.texts[g], 1.0)

    def cut(source: str, strict: bool) -> str:
        return source.split(", the Asahi")[0] + "." if "Asahi" in source else _first_clause(source)

    res = _engine(ix, cut)[0].topic([src], 1)
    assert all("Asahi" in line.text or "banning" not in line.text for line in res.lines)
    assert any("attribution dropped" in why and "asahi newspaper reported" in why for _, why in res.dropped)

    def keep(source: str, strict: bool) -> str:
        return source.replace("TOKYO: ", "").replace(" on Monday", "")

    kept = _engine(ix, keep)[0].topic([src], 1)
    assert not kept.fell_back and len(kept.lines) == 1
    assert "the Asahi newspaper reported" in kept.lines[0].text
    assert kept.lines[0].support[0].text == ix.texts[g]


# ------------------------------------------------------------ "He said" names the person
def _pronoun_index(embedder, text: str) -> SentenceIndex:
    ix = SentenceIndex(embedder, None)
    ix.build([Article.build(title="Lockdown", text=text)], progress=False)
    return ix


def test_a_line_opening_he_names_the_person_from_the_sentence_before(embedder) -> None:
    ix = _pronoun_index(embedder, (
        "Tokyo may be locked down within days. "
        "“The possibility of a lockdown is rising,” said Hideo Kumano, chief economist at Dai-ichi Life. "
        "He estimated a lockdown of Tokyo for a month could shrink the economy by about 1 percent."
    ))
    src = SentenceInfo(0, 2, ix.texts[2], 1.0)
    text, row = ab.resolve_pronoun("He estimated a lockdown could shrink the economy by 1 percent.", ix, src)
    assert text == "Hideo Kumano estimated a lockdown could shrink the economy by 1 percent." and row == 1
    text, _ = ab.resolve_pronoun("His estimate was 1 percent.", ix, src)
    assert text == "Hideo Kumano's estimate was 1 percent."

    # Through the engine: the line names him and lists the naming sentence among its support.
    eng, _ = _engine(ix, lambda source, strict: source.split(" for a month")[0] + "." if source.startswith("He") else source)
    res = eng._run([src], np.arange(0, 3), lambda: [src], "fallback", ())
    assert [line.text for line in res.lines] == ["Hideo Kumano estimated a lockdown of Tokyo."]
    assert {s.index for s in res.lines[0].support} >= {1, 2}
    _assert_grounded(ix, res)


@pytest.mark.parametrize(
    "before",
    [
        "Officials met on Monday to discuss the plan.",  # names nobody
        "“It is rising,” said Hideo Kumano, while Taro Aso, the finance minister, disagreed.",  # two people
    ],
)
def test_he_is_left_alone_when_the_sentence_before_does_not_name_one_person(embedder, before) -> None:
    ix = _pronoun_index(embedder, f"Tokyo may be locked down. {before} He estimated the cost at 1 percent.")
    src = SentenceInfo(0, 2, ix.texts[2], 1.0)
    assert ab.resolve_pronoun("He estimated the cost at 1 percent.", ix, src) == ("He estimated the cost at 1 percent.", None)


# ------------------------------------------------------------ a line must stand alone
@pytest.mark.parametrize(
    ("line", "source", "why"),
    [
        ("These areas will be barred.", "These areas will be barred, officials said.", "these areas"),
        ("This was the first time.", "This was the first time since 2011.", "This"),
        ("The ministry did not respond.", "The ministry did not respond to a request.", "The ministry"),
        ("It said it would act.", "It said it would act within days.", "It"),
        ("Tokyo may ban travel from Africa, it said.", "Tokyo may ban travel from Africa, it said, citing sources.",
         "bare 'it said'"),
        ("People from these areas will be barred.", "People from these areas will be barred.", "these areas"),
        ("Japan will ban travellers from Europe.", "Japan will ban travellers from Europe, the Asahi newspaper reported.",
         "the Asahi newspaper reported"),
        ("Travellers will be barred.", "Travellers will be barred, the paper said.", "the paper said"),
        ("The ban starts on Monday.", "The ban starts on Monday, according to the ministry.", "according to the ministry"),
        ("“It would be a shock.”", "“It would be a shock,” he said.", "he said"),
    ],
)
def test_a_line_that_leans_on_context_is_caught(line: str, source: str, why: str) -> None:
    problem = ab.context_problem(line, source)
    assert problem and problem.startswith(ab.CONTEXT) and why.lower() in problem.lower()


@pytest.mark.parametrize(
    ("line", "source", "names_person"),
    [
        ("Japan will ban travellers from Europe, the Asahi newspaper reported.",
         "Japan will ban travellers from Europe, the Asahi newspaper reported on Monday.", False),
        ("Travellers will be barred, the paper said.", "Travellers who arrived will be barred, the paper said.", False),
        ("“It would be a shock,” he said.", "“It would be a shock,” he said, estimating the cost.", False),
        ("Hideo Kumano estimated the cost at 1 percent.", "He estimated the cost at 1 percent, he said.", True),
        ("“It is rising,” said Hideo Kumano.", "“It is rising,” said Hideo Kumano, chief economist.", False),
        ("Kumano said it is rising.", "“It is rising,” said Hideo Kumano.", False),
        ("The reservoir was lowered by 3 metres.", "The reservoir was lowered by 3 metres on Monday.", False),
        ("Japan asks those entering from China to stay home.", "Japan asks those entering from China to stay home.", False),
    ],
)
def test_a_line_that_stands_alone_passes(line: str, source: str, names_person: bool) -> None:
    assert ab.context_problem(line, source, names_person=names_person) is None


_BAN = (
    "Japan will ban the entry of travellers from the United States, China and most of Europe, "
    "the Asahi newspaper reported on Monday. "
    "Travellers who have been in these areas in the past two weeks will be barred, the paper said. "
    "Tokyo recorded 68 new coronavirus cases on Sunday, a record daily increase."
)


def _sources(ix) -> list[SentenceInfo]:
    return [SentenceInfo(0, i, ix.texts[i], 1.0) for i in range(len(ix.texts))]


def test_lines_that_drop_their_attribution_fall_back_in_place(embedder) -> None:
    """The lead never goes: cutting "the Asahi newspaper reported" or "the paper said" shows the article's sentence."""
    ix = _pronoun_index(embedder, _BAN)
    assert len(ix.texts) == 3
    srcs = _sources(ix)

    def cut(source: str, strict: bool) -> str:
        return re.split(r", the (?:Asahi newspaper|paper)|, a record", source)[0].rstrip(".") + "."

    eng, _ = _engine(ix, cut)
    res = eng._run(srcs, np.arange(0, 3), lambda: srcs, "fallback", ())
    assert not res.fell_back
    assert [line.text for line in res.lines] == [ix.texts[0], ix.texts[1], "Tokyo recorded 68 new coronavirus cases on Sunday."]
    assert res.lines[0].text.startswith("Japan will ban") and "the Asahi newspaper reported" in res.lines[0].text
    assert [line.support[0].index for line in res.lines] == [0, 1, 2]
    reasons = [why for _, why in res.dropped]
    assert len(reasons) == 2
    assert "attribution dropped" in reasons[0] and "asahi newspaper reported" in reasons[0].lower()
    assert "the paper said" in reasons[1] or "these areas" in reasons[1]
    assert len(res.notes) == 2 and all(n.startswith("1 line fell back to the article's own sentence") for n in res.notes)
    _assert_grounded(ix, res)


def test_a_line_opening_with_these_areas_falls_back(embedder) -> None:
    ix = _pronoun_index(embedder, (
        "Japan will ban the entry of travellers from the United States, China and most of Europe. "
        "These areas account for most of the imported coronavirus cases in the country. "
        "Tokyo recorded 68 new coronavirus cases on Sunday."
    ))
    srcs = _sources(ix)

    def rule(source: str, strict: bool) -> str:
        if source.startswith("These"):
            return "These areas account for most imported coronavirus cases."
        return source

    res = _engine(ix, rule)[0]._run(srcs, np.arange(0, 3), lambda: srcs, "fallback", ())
    assert not res.fell_back
    assert [line.text for line in res.lines] == list(ix.texts)
    assert len(res.dropped) == 1 and "opens with 'These areas'" in res.dropped[0][1]
    assert res.notes == (
        "1 line fell back to the article's own sentence: its generated version left out who reported it or leaned "
        "on words the summary does not explain.",
    )


def test_a_dropped_he_said_is_fine_when_the_line_names_the_speaker(embedder) -> None:
    ix = _pronoun_index(embedder, (
        "“The possibility of a lockdown is rising,” said Hideo Kumano, chief economist at Dai-ichi Life. "
        "Kumano estimated a lockdown of Tokyo for a month could shrink the economy by about 1 percent, he said."
    ))
    src = SentenceInfo(0, 1, ix.texts[1], 1.0)
    line = "Kumano estimated a lockdown of Tokyo could shrink the economy by about 1 percent."
    res = _engine(ix, lambda source, strict: line)[0]._run([src], np.arange(0, 2), lambda: [src], "fallback", ())
    assert [x.text for x in res.lines] == [line] and res.dropped == () and res.notes == ()
    # without the name, the same cut falls back
    anon = "A lockdown of Tokyo for a month could shrink the economy by about 1 percent."
    assert ab.context_problem(anon, ix.texts[1]) is not None


# ================================================================ standing alone (#21 item 2)
_JAPAN = (
    "Japan will ban the entry of travellers from the United States, China and most of Europe, "
    "the Asahi newspaper reported on Monday. "
    "Travellers who have been in these areas in the past two weeks will be barred, the paper said. "
    "Tokyo may also ban travel to and from some countries in Africa, it said, citing government sources. "
    "Shops in the capital stayed open on Sunday."
)


def test_a_bare_it_said_is_resolved_to_who_said_it(embedder) -> None:
    ix = _pronoun_index(embedder, _JAPAN)
    src = SentenceInfo(0, 2, ix.texts[2], 1.0)
    text, row = ab.resolve_attribution(ix.texts[2], ix, src)
    assert text == "Tokyo may also ban travel to and from some countries in Africa, the paper said, citing government sources."
    assert row == 1
    # an opening sentence or one with no attribution before it is left alone
    assert ab.resolve_attribution("It said so.", ix, SentenceInfo(0, 0, "It said so.", 1.0)) == ("It said so.", None)
    assert ab.resolve_attribution(ix.texts[3], ix, SentenceInfo(0, 3, ix.texts[3], 1.0)) == (ix.texts[3], None)


def test_the_japan_summary_keeps_the_lead_and_no_bare_it_said(embedder) -> None:
    """The rewrites drop the lead's attribution and shorten the rest; the lead comes back as the article's
    sentence, and no shown line ends up with a bare "it said" or an unexplained "these areas"."""
    from bot.grounding.references import count_unresolved

    ix = _pronoun_index(embedder, _JAPAN)
    srcs = _sources(ix)[:3]

    def rule(source: str, strict: bool) -> str:
        return re.split(r", the Asahi newspaper|, citing", source)[0].rstrip(".") + "."

    res = _engine(ix, rule)[0]._run(srcs, np.arange(0, 4), lambda: srcs, "fallback", ())
    texts = [line.text for line in res.lines]
    assert texts[0] == ix.texts[0]  # the lead with "the Asahi newspaper reported"
    assert texts[1] == ix.texts[1]
    assert texts[2] == "Tokyo may also ban travel to and from some countries in Africa, the paper said."
    assert not any(re.search(r"\bit said\b", t) for t in texts)
    assert count_unresolved([(line.text, (0, line.support[0].index)) for line in res.lines]) == [None] * 3
    # the line that now names "the paper" is supported by the sentence that says so, too
    assert {s.index for s in res.lines[2].support} >= {1, 2}
    _assert_grounded(ix, res)


def test_a_sentence_leaning_on_one_the_summary_skips_is_left_out(embedder) -> None:
    """Sources 0 and 2 (not 1): "these areas" in sentence 2 points at sentence 1, which is not shown and whose
    rewrite cannot help, so the line is left out with a note; the lead stays."""
    ix = _pronoun_index(embedder, (
        "Flooding closed roads across the north of the county on Friday, police said. "
        "Officials named Barton, Ellery and Moss as the worst hit villages. "
        "Residents of these villages were told to leave their homes by Saturday. "
        "A relief centre opened at the town hall."
    ))
    srcs = [SentenceInfo(0, i, ix.texts[i], 1.0) for i in (0, 2, 3)]
    res = _engine(ix, lambda source, strict: source)[0]._run(srcs, np.arange(0, 4), lambda: srcs, "fallback", ())
    texts = [line.text for line in res.lines]
    assert texts == [ix.texts[0], ix.texts[3]]
    assert any("these villages" in why for _, why in res.dropped)
    assert "1 line left out: it leans on a sentence the summary does not show." in res.notes


def test_a_rewrite_leaning_on_a_skipped_sentence_falls_back_to_its_own(embedder) -> None:
    """The rewrite opens "He"; the article's own sentence names the person, so it stands in."""
    ix = _pronoun_index(embedder, (
        "The council approved the new budget on Tuesday. "
        "Mayor Ann Lee said the plan would fund two new schools. "
        "Lee told reporters the vote was the most important of her term. "
        "Critics said the plan was too costly."
    ))
    srcs = [SentenceInfo(0, i, ix.texts[i], 1.0) for i in (0, 2)]

    def rule(source: str, strict: bool) -> str:
        return "She told reporters the vote was the most important of her term." if source.startswith("Lee") else source

    eng = _engine(ix, rule, resolve_pronouns=False)[0]
    res = eng._run(srcs, np.arange(0, 4), lambda: srcs, "fallback", ())
    assert [line.text for line in res.lines] == [ix.texts[0], ix.texts[2]]
    assert any("leans on 'She'" in why for _, why in res.dropped)


@pytest.mark.parametrize(
    ("line", "source", "earlier", "word"),
    [
        ("He said the club would appeal.", (0, 5), [("The club lost 2-1 on Saturday.", (0, 0))], "He"),
        ("These areas account for most cases.", (0, 4), [("Japan banned travel.", (0, 0))], "These areas"),
        ("The ministry denied the report.", (0, 6), [("Officials spoke on Monday.", (0, 0))], "The ministry"),
        ("Prices rose, it said.", (0, 3), [("Inflation is high.", (0, 0))], "it said"),
        ("Travellers from those countries must wait.", (0, 3), [], "those countries"),
    ],
)
def test_unresolved_reference_detector_flags(line, source, earlier, word) -> None:
    from bot.grounding.references import unresolved

    ref = unresolved(line, source, earlier)
    assert ref is not None and ref.word == word


@pytest.mark.parametrize(
    ("line", "source", "earlier"),
    [
        ("He said the club would appeal.", (0, 5), [("Coach Tom Hill was angry.", (0, 0))]),  # a person named
        ("These areas account for most cases.", (0, 1), [("Japan banned travel from three areas.", (0, 0))]),
        ("It said prices rose.", (0, 3), [("The bank spoke.", (0, 2))]),  # the sentence right before is shown
        ("The ministry denied it.", (1, 6), [("The health ministry spoke.", (1, 0))]),
        ("This week the council met.", (0, 4), []),  # a date, not a reference
        ("Japan banned travel.", (0, 0), []),
        ("Shares fell.", None, []),
    ],
)
def test_unresolved_reference_detector_passes(line, source, earlier) -> None:
    from bot.grounding.references import unresolved

    assert unresolved(line, source, earlier) is None


def test_the_place_of_a_left_out_line_goes_to_the_next_sentence_that_stands_alone(embedder) -> None:
    ix = _pronoun_index(embedder, (
        "Flooding closed roads across the north of the county on Friday, police said. "
        "Officials named Barton, Ellery and Moss as the worst hit villages. "
        "Residents of these villages were told to leave their homes by Saturday. "
        "A relief centre opened at the town hall. "
        "Its staff handed out blankets and food. "
        "The Red Cross sent forty volunteers to the county on Sunday."
    ))
    srcs = [SentenceInfo(0, i, ix.texts[i], 1.0) for i in (0, 2, 3)]
    res = _engine(ix, lambda source, strict: source)[0]._run(srcs, np.arange(0, 6), lambda: srcs, "fallback", ())
    # sentence 2 leans on the unshown sentence 1; sentence 4 ("Its staff") leans on 3, which is shown,
    # so it takes the place as it is
    assert [line.text for line in res.lines] == [ix.texts[0], ix.texts[3], ix.texts[4]]
    assert res.lines[2].own and res.lines[2].support[0].index == 4


# ====================================================================== several workers at once


class CopyFake:
    """A backend with ``generate_copy`` and ``concurrency`` workers: each request waits at a barrier
    for as many requests as there are workers, so a summary that sent its sentences one after another
    would break the barrier (and fall back) instead of getting its rewrites."""

    def __init__(self, rule, concurrency: int) -> None:
        import threading

        self.rule = rule
        self.concurrency = concurrency
        self.barrier = threading.Barrier(concurrency, timeout=10) if concurrency > 1 else None
        self.threads: set[str] = set()
        self.last_stats: dict[str, float] = {}
        self.lock = threading.Lock()
        self.calls = 0

    def generate_copy(self, prompt, support, **kw):
        import threading

        with self.lock:
            self.calls += 1
            first = self.calls <= self.concurrency
        if self.barrier is not None and first:  # the first ``concurrency`` requests must meet
            self.barrier.wait()
        self.threads.add(threading.current_thread().name)
        return self.rule(support, prompt.startswith(STRICT_PROMPT.split("{")[0]))


@pytest.mark.parametrize("workers", [2, 3])
def test_a_summarys_sentences_are_rewritten_at_once_on_several_workers(sample_index, workers: int) -> None:
    one = AbstractiveSummarizer(sample_index, ExtractiveSummarizer(sample_index), CopyFake(_first_clause, 1))
    gen = CopyFake(_first_clause, workers)
    many = AbstractiveSummarizer(sample_index, ExtractiveSummarizer(sample_index), gen)
    a, b = one(0, 3), many(0, 3)
    assert not b.fell_back and not b.notes and len(b.lines) == 3
    assert b == a  # the same lines, in the same order, as one request at a time
    assert len(gen.threads) == workers  # the requests really ran at once, each on its own thread
    assert many.last_stats["generations"] == 3


def test_warm_up_sends_one_short_rewrite_to_each_worker() -> None:
    from bot.engines.abstractive import WARM_SENTENCE, warm_up

    seen = []
    gen = CopyFake(lambda s, strict: seen.append(s) or s, 2)  # the barrier: both at once, or it breaks
    warm_up(gen)
    assert seen == [WARM_SENTENCE, WARM_SENTENCE]
    warm_up(object())  # a generator without generate_copy: nothing to warm, no error


def test_a_failing_line_is_regenerated_at_once_while_the_others_are_still_being_written(sample_index) -> None:
    """The strict rewrite of a line that fails its checks starts as soon as that line fails: the other
    lines' first rewrites wait here until it has been asked for, so a summary that regenerated only
    after every first rewrite would never get them (they fall back after the wait)."""
    import threading

    asked_again = threading.Event()

    def rule(source: str, strict: bool) -> str:
        if "2,000" in source:
            if strict:
                asked_again.set()
                return _first_clause(source)
            return "Kazakhstan, China's eastern neighbor, is letting 2,000 people go."  # invents: fails
        if not asked_again.wait(10):
            return "Mongolia let 5,000 people go on Monday."  # too late: this line fails too
        return _first_clause(source)

    class Plain(CopyFake):  # no barrier: the first line's rewrite must not wait for the others
        def __init__(self, concurrency: int) -> None:
            super().__init__(rule, 1)
            self.concurrency = concurrency

    res = AbstractiveSummarizer(sample_index, ExtractiveSummarizer(sample_index), Plain(3))(0, 3)
    assert len(res.lines) == 3 and res.dropped == () and res.notes == (), res.notes
    assert res.lines[0].text.startswith("China is allowing more than 2,000")
    # and the same summary as regenerating after every first rewrite, one request at a time
    asked_again.set()
    one = AbstractiveSummarizer(sample_index, ExtractiveSummarizer(sample_index), CopyFake(rule, 1))(0, 3)
    assert one == res
