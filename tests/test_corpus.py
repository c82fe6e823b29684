"""Corpus parsing: the seed format, JSONL, txt/md, bad files, duplicates, empty corpus."""

from __future__ import annotations

import json

import pytest

from bot.corpus.article import content_id
from bot.corpus.loader import load_corpus, load_file
from bot.corpus.store import Corpus
from tests.conftest import SAMPLE

KAZAKH_TITLE = "China allowing 2,000 ethnic Kazakhs to leave Xinjiang region"
JAPAN_TITLE = "Japan to ban US, China, Europe travelers as coronavirus spread stokes Tokyo lockdown fears"


@pytest.fixture(scope="module")
def seed():
    res = load_corpus(SAMPLE)
    assert res.issues == []
    return res.articles


def test_seed_article_count_titles_dates(seed):
    assert [a.title for a in seed] == [KAZAKH_TITLE, JAPAN_TITLE]
    # "Updated 5 min 9 sec ago" dated the saved page, not the article: no date is shown for it
    assert [a.date for a in seed] == ["09 January 2019", None]


def test_seed_datelines_are_metadata_not_text(seed):
    kaz, jap = seed
    assert kaz.dateline == "ALMATY, Kazakhstan"
    assert jap.dateline == "TOKYO"
    assert kaz.sentences[0].startswith("China is allowing more than 2,000 ethnic Kazakhs")
    assert jap.sentences[0].startswith("Japan will step up its efforts")


def test_seed_highlights_kept_apart_from_body(seed):
    kaz, jap = seed
    assert len(kaz.highlights) == 2 and len(jap.highlights) == 2
    assert kaz.highlights[0].startswith("The detention of Uighur, Kazakh")
    assert jap.highlights[1] == "68 new coronavirus cases were reported in the capital for Sunday, a record daily increase"
    assert not any(s.startswith("•") for a in seed for s in a.sentences)
    # the repeated title and the photo caption are not body text
    assert not any(KAZAKH_TITLE in s or "(AP/Dake Kang)" in s for s in kaz.sentences)


def test_seed_sentences_not_cut_wrongly(seed):
    kaz, jap = seed
    assert len(kaz.sentences) == 33
    assert len(jap.sentences) == 15
    for s in (x for a in seed for x in a.sentences):
        assert s[-1] in ".?!”\"’", s  # every sentence ends as a sentence does
        assert s[0].isupper() or s[0].isdigit() or s[0] in "“\"‘", s  # and starts as one does
    joined = set(kaz.sentences) | set(jap.sentences)
    assert (
        "“I said that Chinese officials are dangerous for Central Asia, for Kazakhstan,” Bilash said." in joined
    )
    assert any("released on Dec. 24 but hasn’t been able to leave China." in s for s in kaz.sentences)
    assert any("¥5.1 trillion ($47 billion) — nearly 1 percent." in s for s in jap.sentences)


def test_ids_are_stable_and_from_content(seed):
    again = load_corpus(SAMPLE).articles
    assert [a.id for a in again] == [a.id for a in seed]
    assert len({a.id for a in seed}) == 2
    assert seed[0].id == content_id(KAZAKH_TITLE, "\n".join(seed[0].sentences)) or len(seed[0].id) == 12


def test_jsonl_loading_skips_bad_lines_with_reason(tmp_path):
    f = tmp_path / "news.jsonl"
    lines = [
        json.dumps({"id": "a1", "title": "Rates rise", "text": "The bank raised rates. Markets fell.", "date": "2024-01-02"}),
        "{not json",
        json.dumps({"title": "No text"}),
        json.dumps(["a", "list"]),
        json.dumps({"title": "Given highlights", "text": "Dr. Who arrived at 9 a.m. on Monday. He left.", "highlights": ["x"]}),
    ]
    f.write_text("\n".join(lines) + "\n")
    res = load_file(f)
    assert [a.title for a in res.articles] == ["Rates rise", "Given highlights"]
    assert res.articles[0].id == "a1" and res.articles[0].date == "2024-01-02"
    assert res.articles[1].sentences == ("Dr. Who arrived at 9 a.m. on Monday.", "He left.")
    assert [(i.line, i.reason.split(" ")[0]) for i in res.issues] == [(2, "invalid"), (3, "missing"), (4, "not")]
    assert all(str(f) in str(i) for i in res.issues)


def test_txt_and_md_first_line_is_title(tmp_path):
    (tmp_path / "a.txt").write_text("\n\nBudget approved\n\nLONDON: Parliament approved the budget. It passed 300-200.\n")
    (tmp_path / "b.md").write_text("# Storm hits coast\n\nThe storm hit at dawn.\n")
    res = load_corpus(tmp_path)
    by_title = {a.title: a for a in res.articles}
    assert set(by_title) == {"Budget approved", "Storm hits coast"}
    assert by_title["Budget approved"].dateline == "LONDON"
    assert by_title["Budget approved"].sentences == ("Parliament approved the budget.", "It passed 300-200.")


def test_corrupt_files_are_skipped_while_the_rest_loads(tmp_path):
    (tmp_path / "good.txt").write_text("Good title\nA fine body sentence. Another one.\n")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 title\nBody.\n".encode("latin-1"))
    (tmp_path / "empty.md").write_text("   \n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.jsonl").write_text('{"title": "Nested", "text": "Deep file. Loads too."}\n{oops\n')
    (tmp_path / "ignored.pdf").write_bytes(b"%PDF")
    res = load_corpus(tmp_path)
    assert sorted(a.title for a in res.articles) == ["Good title", "Nested"]
    reasons = {i.file.split("/")[-1]: i.reason for i in res.issues}
    assert "NUL" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "no article" in reasons["empty.md"]
    assert "invalid JSON" in reasons["more.jsonl"]


def test_missing_path_and_empty_corpus(tmp_path):
    res = load_corpus(tmp_path / "nope")
    assert res.articles == [] and "does not exist" in res.issues[0].reason
    (tmp_path / "empty").mkdir()
    res = load_corpus(tmp_path / "empty")
    assert res.articles == [] and res.files == 0


def test_duplicates_load_once(tmp_path, seed):
    (tmp_path / "copy1.txt").write_text(SAMPLE.read_text())
    (tmp_path / "copy2.txt").write_text(SAMPLE.read_text())
    corpus = Corpus(load_corpus(tmp_path).articles)
    assert len(corpus) == 2 and corpus.duplicates == 2
    # the same body under another id is a duplicate too
    assert corpus.add([seed[0].__class__.build(id="other", title="x", text=seed[0].text)]) == []
