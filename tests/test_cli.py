"""The batch CLI contract: JSON Lines in, one JSON line out per input line, same order."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from bot.adapters.cli import summarize
from tests.conftest import REPO, SAMPLE

KAZAKH_BODY = SAMPLE.read_text().split("ALMATY, Kazakhstan: ", 1)[1].split("\n\n\n")[0]


def _lines(tmp_path, rows):
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return f


def test_summarize_contract_in_process(tmp_path, settings_factory, embedder):
    from bot.app import Precis

    app = Precis(settings_factory(), embedder=embedder)
    f = _lines(
        tmp_path,
        [
            {"id": "kaz", "title": "Kazakhs", "text": KAZAKH_BODY},
            "{broken json",
            {"id": 7, "text": "One sentence only. And a second one here.", "sentences": 1},
            {"id": "no-text", "title": "x"},
            {"id": "bad-n", "text": "Some text.", "sentences": 0},
            {"id": "notitle", "text": "Rates rose again on Tuesday.\nMarkets fell sharply after the decision.\nTraders were surprised."},
        ],
    )
    out = io.StringIO()
    assert summarize(app, f, "extractive", 3, out) == 0
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [r.get("id") for r in rows] == ["kaz", None, 7, "no-text", "bad-n", "notitle"]
    kaz = rows[0]
    assert set(kaz) == {"id", "summary", "support"}
    assert len(kaz["summary"]) == 3 and len(kaz["support"]) == 3
    for sentence, support in zip(kaz["summary"], kaz["support"]):
        assert support == [{"index": support[0]["index"], "text": sentence, "score": support[0]["score"]}]
        assert isinstance(support[0]["index"], int) and isinstance(support[0]["score"], float)
    indices = [s[0]["index"] for s in kaz["support"]]
    assert indices == sorted(indices)  # article order
    assert "invalid JSON" in rows[1]["error"] and "line 2" in rows[1]["error"]
    assert len(rows[2]["summary"]) == 1  # the line's "sentences" wins over --sentences
    assert "text" in rows[3]["error"]
    assert "sentences" in rows[4]["error"]
    assert len(rows[5]["summary"]) == 3


def test_summarize_accepts_more_than_ten_sentences(tmp_path, settings_factory, embedder):
    """Discord's length stays 1-10; the batch CLI takes any count up to the article's sentence count."""
    from bot.app import Precis

    app = Precis(settings_factory(), embedder=embedder)
    body = "\n".join(f"Paragraph {i} reports that the council met on day {i} to discuss item {i}." for i in range(15))
    f = _lines(tmp_path, [{"id": "long", "text": body, "sentences": 13},
                          {"id": "short", "text": "One sentence. Two sentences. Three.", "sentences": 13},
                          {"id": "bad", "text": body, "sentences": 2.5}])
    out = io.StringIO()
    assert summarize(app, f, "extractive", 3, out) == 0
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(rows[0]["summary"]) == 13 and len(rows[0]["support"]) == 13
    assert len(set(rows[0]["summary"])) == 13
    assert len(rows[1]["summary"]) == 3  # the whole article: it has only three sentences
    assert "sentences" in rows[2]["error"]


@pytest.mark.slow
def test_summarize_command_end_to_end(tmp_path):
    """The exact command line of the contract, as a separate process."""
    f = _lines(tmp_path, [{"id": "a", "title": "Kazakhs", "text": KAZAKH_BODY, "sentences": 2}, "[1, 2]"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "CORPUS_"))}
    env["DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "summarize", "--input", str(f), "--mode", "extractive", "--sentences", "3", "--json"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert rows[0]["id"] == "a" and len(rows[0]["summary"]) == 2
    assert rows[1] == {"id": None, "error": "line 2: line is not a JSON object"}
    assert "Loading" not in proc.stdout  # logs and progress go to stderr only


def test_ask_contract_in_process(tmp_path, app_factory):
    from bot.adapters.cli import ask

    app = app_factory()
    f = _lines(
        tmp_path,
        [
            {"id": "q1", "question": "How many ethnic Kazakhs is China allowing to leave?"},
            {"id": "q2", "question": "Who won the 1998 World Cup?"},
            "not json",
            {"id": "q4"},
            {"id": "q5", "question": "x" * 301},
        ],
    )
    out = io.StringIO()
    assert ask(app, f, "extractive", 2, out) == 0
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [r.get("id") for r in rows] == ["q1", "q2", None, "q4", "q5"]
    q1 = rows[0]
    assert set(q1) >= {"id", "answer", "abstained", "support"} and q1["abstained"] is False
    assert "2,000 ethnic Kazakhs" in q1["answer"] and 1 <= len(q1["support"]) <= 2
    # The short answer leads the answer text and is word for word in the first supporting sentence.
    assert isinstance(q1["short_answer"], str) and "2,000" in q1["short_answer"]
    assert q1["answer"].splitlines()[0] == q1["short_answer"]
    assert q1["short_answer"] in q1["support"][0]["text"] and q1["support"][0]["text"] in q1["answer"]
    assert rows[1]["short_answer"] is None
    assert set(q1["support"][0]) == {"article_id", "title", "text", "score"}
    assert q1["support"][0]["title"].startswith("China allowing 2,000 ethnic Kazakhs")
    scores = [s["score"] for s in q1["support"]]
    assert scores == sorted(scores, reverse=True)
    assert rows[1]["abstained"] is True and rows[1]["support"] == []
    assert "invalid JSON" in rows[2]["error"]
    assert "question" in rows[3]["error"]
    assert "300" in rows[4]["error"]


def test_ask_honours_asked_at(tmp_path, app_factory):
    """A question replayed before an article's date never cites it; after, it may."""
    from bot.adapters.cli import ask

    app = app_factory()
    kazakh = next(a for a in app.snapshot.index.articles if "Kazakh" in a.title)
    assert kazakh.date == "09 January 2019"
    q = "How many ethnic Kazakhs is China allowing to leave?"
    f = _lines(tmp_path, [
        {"id": "before", "question": q, "asked_at": "2019-01-08"},
        {"id": "before-tz", "question": q, "asked_at": "2019-01-09T08:00:00+09:00"},  # 23:00 UTC the day before
        {"id": "after", "question": q, "asked_at": "2019-01-09T12:00:00Z"},
        {"id": "now", "question": q},
        {"id": "bad", "question": q, "asked_at": "last Tuesday"},
        {"id": "bad-type", "question": q, "asked_at": 20190109},
    ])
    out = io.StringIO()
    assert ask(app, f, "extractive", 3, out) == 0
    rows = {r["id"]: r for r in map(json.loads, out.getvalue().splitlines())}
    for rid in ("before", "before-tz"):
        assert all(s["article_id"] != kazakh.id for s in rows[rid]["support"]), rows[rid]
        assert "2,000" not in rows[rid]["answer"]
    assert rows["before"]["asked_at"] == "2019-01-08T00:00:00+00:00"
    for rid in ("after", "now"):
        assert rows[rid]["abstained"] is False and rows[rid]["support"][0]["article_id"] == kazakh.id
        assert "2,000" in rows[rid]["answer"]
    assert "asked_at" not in rows["now"]
    assert "ISO 8601" in rows["bad"]["error"] and "line 5" in rows["bad"]["error"]
    assert "ISO 8601" in rows["bad-type"]["error"]


def test_a_small_summarize_job_takes_the_quick_starting_embedder(tmp_path):
    from bot.__main__ import SMALL_JOB_BYTES, _small_job_embedder
    from bot.config import Settings

    small = tmp_path / "one.jsonl"
    small.write_text('{"id": 1, "text": "One short article. It has two sentences."}\n')
    big = tmp_path / "many.jsonl"
    big.write_text("x" * (SMALL_JOB_BYTES + 1))
    auto = Settings(_env_file=None)
    s = _small_job_embedder(auto, small)
    assert (s.embed_backend, s.embed_precision) == ("onnx", "float32")
    assert _small_job_embedder(auto, big) is auto and _small_job_embedder(auto, "-") is auto
    chosen = Settings(_env_file=None, embed_backend="torch")  # an explicit choice is kept
    assert _small_job_embedder(chosen, small) is chosen
