"""The verifier (bot/grounding/verifier.py) and `python -m bot verify`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.adapters.cli import verify
from bot.grounding.verifier import Article, Verifier

ROOT = Path(__file__).resolve().parents[1]

ARTICLE = (
    "Acme Corp hired 200 workers and closed 15 stores last year, the company said in its annual report. "
    "Police said Smith attacked Jones outside the bar on Friday night. "
    "Japan will send 500 troops to the region next month, the Asahi newspaper reported. "
    "The minister did not approve the plan to build a new airport near the capital. "
    "The airport could open in 2030 if the plan goes ahead. "
    "Local residents held a protest against the airport on Sunday."
)


@pytest.fixture(scope="module")
def verifier():
    return Verifier()


@pytest.fixture(scope="module")
def article():
    return Article(ARTICLE)


def _one(verifier, article, text):
    verdict = verifier(article, [text])
    assert len(verdict.sentences) == 1
    return verdict.sentences[0]


def _has(problems, prefix):
    return any(p.startswith(prefix) for p in problems)


@pytest.mark.parametrize(
    "faithful",
    [
        "Acme Corp hired 200 workers and closed 15 stores last year.",
        "Police said Smith attacked Jones outside the bar on Friday night.",
        "Japan will send 500 troops to the region next month, the Asahi newspaper reported.",
        "The minister did not approve the plan to build a new airport.",
    ],
)
def test_faithful_sentences_pass_with_their_support(verifier, article, faithful):
    s = _one(verifier, article, faithful)
    assert s.supported, s.problems
    assert s.problems == ()
    assert 0.0 <= s.score <= 1.0 and s.score >= verifier.threshold
    best = s.support[0]
    assert best.text in article.text and best.score > 0.8
    assert article.sentences[best.index].text == best.text


def test_number_moved_to_another_noun(verifier, article):
    s = _one(verifier, article, "Acme Corp hired 15 workers and closed 200 stores last year.")
    assert not s.supported
    assert _has(s.problems, "number bound to another noun"), s.problems
    assert any("15 worker" in p for p in s.problems)


def test_swapped_roles(verifier, article):
    s = _one(verifier, article, "Police said Jones attacked Smith outside the bar on Friday night.")
    assert not s.supported
    assert _has(s.problems, "roles swapped"), s.problems


def test_dropped_attribution(verifier, article):
    s = _one(verifier, article, "Japan will send 500 troops to the region next month.")
    assert not s.supported
    assert _has(s.problems, "attribution dropped"), s.problems
    assert any("asahi newspaper reported" in p for p in s.problems)


def test_flipped_negation(verifier, article):
    s = _one(verifier, article, "The minister approved the plan to build a new airport near the capital.")
    assert not s.supported
    assert _has(s.problems, "negation dropped"), s.problems
    added = _one(verifier, article, "Local residents did not hold a protest against the airport on Sunday.")
    assert not added.supported and _has(added.problems, "negation added")


def test_dropped_modality_and_invented_facts(verifier, article):
    s = _one(verifier, article, "The airport will open in 2030.")
    assert _has(s.problems, "modality dropped"), s.problems
    invented = _one(verifier, article, "Residents of Osaka protested against the airport on Sunday.")
    assert not invented.supported and _has(invented.problems, "unsupported 'Osaka'")
    unrelated = _one(verifier, article, "Volcanic ash grounded flights across northern Europe.")
    assert not unrelated.supported and _has(unrelated.problems, "content with no support")
    assert unrelated.score < s.score or not s.supported


def test_summary_score_is_its_weakest_sentence(verifier, article):
    good = "Acme Corp hired 200 workers and closed 15 stores last year."
    bad = "Police said Jones attacked Smith outside the bar on Friday night."
    v = verifier(article, f"{good} {bad}")
    assert [s.text for s in v.sentences] == [good, bad]
    assert v.score == min(s.score for s in v.sentences)
    assert not v.supported and v.sentences[0].supported


def test_ptb_tokenised_text_compares_like_plain_text(verifier):
    ptb = ("( CNN ) Donald Sterling 's racist remarks cost him an NBA team last year . `` I did n't say it , '' "
           "he told reporters . A Los Angeles judge ordered V. Stiviano to pay back $ 2.6 million .")
    summary = "donald sterling 's racist remarks cost him an nba team last year ."
    v = verifier(ptb, summary)
    assert v.supported, v.sentences[0].problems
    assert v.sentences[0].support[0].text.startswith("Donald Sterling's racist remarks cost him")
    wrong = verifier(ptb, "A Los Angeles judge ordered V. Stiviano to pay back $ 3.6 million .")
    assert not wrong.supported and _has(wrong.sentences[0].problems, "unsupported '$3.6 million'")


def _write(tmp_path, rows):
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return f


def test_verify_contract(tmp_path, verifier):
    rows = [
        {"id": "str", "text": ARTICLE, "summary": "Acme Corp hired 200 workers. Smith attacked Jones, police said."},
        {"id": 2, "text": ARTICLE, "summary": ["Acme Corp hired 15 workers and closed 200 stores last year."]},
        "{not json",
        {"id": "no-summary", "text": ARTICLE},
        {"id": "bad-list", "text": ARTICLE, "summary": [1, 2]},
        {"id": "no-text", "summary": "x"},
        {"id": "ptb", "text": "The team 's coach said `` we won '' . Fans cheered .", "summary": "the team 's coach said we won ."},
    ]
    out = io.StringIO()
    assert verify(_write(tmp_path, rows), verifier, out) == 0
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [r.get("id") for r in lines] == ["str", 2, None, "no-summary", "bad-list", "no-text", "ptb"]
    first = lines[0]
    assert set(first) == {"id", "score", "supported", "sentences"}
    assert isinstance(first["score"], float) and isinstance(first["supported"], bool)
    assert len(first["sentences"]) == 2
    for s in first["sentences"]:
        assert set(s) == {"text", "score", "supported", "problems", "support"}
        assert all(set(x) == {"index", "text", "score"} for x in s["support"])
        assert isinstance(s["support"][0]["index"], int)
    assert first["score"] == min(s["score"] for s in first["sentences"])
    assert lines[1]["supported"] is False and lines[1]["sentences"][0]["problems"]
    assert "invalid JSON" in lines[2]["error"] and "line 3" in lines[2]["error"]
    assert "summary" in lines[3]["error"] and "summary" in lines[4]["error"]
    assert "text" in lines[5]["error"]
    assert lines[6]["supported"] is True
    assert lines[6]["sentences"][0]["support"][0]["text"] == 'The team\'s coach said "we won".'


def test_verify_command_end_to_end(tmp_path):
    f = _write(tmp_path, [{"id": "a", "text": ARTICLE, "summary": "Japan will send 500 troops to the region."}, "[]"])
    res = subprocess.run(
        [sys.executable, "-m", "bot", "verify", "--input", str(f), "--threshold", "0.2", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert lines[0]["id"] == "a" and lines[0]["supported"] is False
    assert any(p.startswith("attribution dropped") for p in lines[0]["sentences"][0]["problems"])
    assert "error" in lines[1]
    bad = subprocess.run([sys.executable, "-m", "bot", "verify", "--input", str(f), "--threshold", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "threshold" in bad.stderr


@pytest.mark.slow
def test_likelihood_scorer_with_the_bundled_model(tmp_path_factory, article):
    from bot.grounding.likelihood import LikelihoodScorer
    from models.generator import Generator
    from models.registry import DEFAULT_GENERATOR

    gen = Generator(DEFAULT_GENERATOR, cache_dir=tmp_path_factory.mktemp("precis-models"), threads=1)
    scorer = LikelihoodScorer(gen)
    support = article.sentences[2].text  # Japan ... the Asahi newspaper reported.
    same, other = scorer.stats([support, support], ["Japan will send 500 troops to the region.",
                                                    "Brazil won the football match against Chile."])
    assert same["gain"] > other["gain"] and same["gain"] > 0
    assert set(same) == {"gain", "cond", "worst"}
    v = Verifier(scorer=scorer)
    assert "lm_gain" in v.features
    verdict = v(article, ["Japan will send 500 troops to the region next month, the Asahi newspaper reported."])
    assert "lm_gain" in verdict.sentences[0].features and 0.0 <= verdict.score <= 1.0


@pytest.mark.parametrize(
    "support, summary, flagged",
    [
        ("Henderson said his side could catch City.", "His side can catch City.", False),  # retold in the present
        ("Abe said Japan would ban travelers.", "Japan will ban travelers.", False),  # reported speech
        ("Japan would ban travelers if cases rose.", "Japan will ban travelers.", True),  # a condition made a fact
        ("Japan may ban travelers.", "Japan will ban travelers.", True),
    ],
)
def test_modal_retold_in_the_present_is_not_a_change(support, summary, flagged):
    problems = Verifier().sentence(support, summary).problems
    assert any(p.startswith("modality") for p in problems) is flagged
