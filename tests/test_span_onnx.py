"""The span reader on ONNX Runtime (models/onnx_span.py): the same spans as torch float32, the same word
pieces from the ``tokenizers`` library as from transformers, the graph exported once and cached (a
corrupt one rebuilt), int8 close to float32, and a process with EMBED_BACKEND=onnx that answers /ask
with the span reader without importing torch or transformers.

The shipped weights (models/weights/span/) load offline from the clone. No network, no ../shared data.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.registry import ModelUnavailable, resolve
from tests.conftest import REPO

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime")

# (question, sentence, title, sentence before): answers of each kind, context that holds a distractor,
# and sentences about something else ("no answer here")
PAIRS = [
    ("What percentage of the vote did Macron win?",
     "Emmanuel Macron won 58.5 percent of the vote in Sunday's runoff, official results showed.", "", ""),
    ("Who was named Time's Person of the Year?",
     "Time magazine named Taylor Swift its Person of the Year on Wednesday.", "Time names its Person of the Year", ""),
    ("What is the name of the new Prime Minister of Britain?",
     "Rishi Sunak became Britain's new prime minister on Tuesday, the third this year.", "", ""),
    ("How many people died in the earthquake?",
     "The earthquake killed at least 2,000 people and injured thousands more, officials said.",
     "Earthquake strikes Turkey", "The quake struck before dawn."),
    ("Which golfer won the 2022 US Women's Open?",
     "Buses will replace trains until the line reopens in March.", "", ""),
    ("Who won the US Women's Open?",
     "Minjee Lee won the US Women's Open on Sunday, four strokes ahead of Mina Harigae.", "", ""),
    ("How much was the record prize?", "The Australian took home a record prize of $1.8 million.",
     "Minjee Lee wins US Women's Open", "Minjee Lee has won the US Women's Open."),
    ("When will the new bridge open?",
     "The city council said the new bridge would open to traffic in May 2025.", "", ""),
    ("Where was the final round played?", "Lee had led by three strokes going into the final round at Pine Needles.",
     "", ""),
    ("How many Kazakh citizens had China detained?",
     "Kazakhstan's foreign ministry said 29 Kazakh citizens had been detained in Xinjiang.", "", ""),
    ("Which company bought Twitter?", "Elon Musk completed his $44 billion takeover of Twitter in October.", "", ""),
    ("What did the central bank raise?",
     "The European Central Bank raised interest rates by half a percentage point on Thursday.", "", ""),
    ("Who directed the film?", "The film, directed by Greta Gerwig, earned more than $1 billion worldwide.", "", ""),
    ("What is the capital of Australia?", "Canberra, not Sydney, has been Australia's capital since 1913.", "", ""),
    ("How tall is the tower?",
     "At 828 metres, the Burj Khalifa in Dubai is the tallest building in the world.", "", ""),
    ("Which team won the World Cup?", "Argentina beat France on penalties to win the World Cup in Qatar.", "", ""),
    ("What vaccine did the agency approve?",
     "The agency approved an updated Covid-19 vaccine from Pfizer for people over 12.", "", ""),
    ("Who resigned as chief executive?",
     "The airline's chief executive, Alan Joyce, stepped down two months early amid mounting criticism.", "", ""),
    ("How long will the strike last?", "Rail workers will strike for 48 hours from Monday, the union said.", "", ""),
    ("Why was the flight cancelled?", "The morning flight was cancelled because of heavy fog at the airport.", "", ""),
    ("What did the museum return?", "Weather forecasters expect rain across the north on Friday.", "", ""),
    ("Who is the mayor of Paris?",
     "Anne Hidalgo, the mayor of Paris, said the Seine would be clean enough to swim in by the summer.",
     "Paris Olympics swimming in the Seine", "Organisers have spent 1.4 billion euros on the river."),
]
LONG_CONTEXT = " ".join(f"Paragraph {i} of the report went on about other matters entirely." for i in range(20))
LONG_SENTENCE = "The council, " + ", ".join(f"meeting in hall {i}" for i in range(40)) + ", approved the budget."


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory) -> Path:
    """A cache folder (``cache_dir`` as the app passes it) holding the float32 and int8 span graphs, built once."""
    from models.onnx_span import OnnxSpanReader

    folder = tmp_path_factory.mktemp("span-cache")
    fp32 = OnnxSpanReader("precis-span", cache_dir=folder / "onnx", precision="float32")
    int8 = OnnxSpanReader("precis-span", cache_dir=folder / "onnx", precision="int8")
    assert fp32.graph.exported and int8.graph.int8_built and not int8.graph.exported
    return folder


@pytest.fixture(scope="module")
def torch_fp32():
    from models.span_reader import SpanReader

    return SpanReader("precis-span", precision="float32")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------ the same word pieces
def test_the_tokenizers_encoding_is_the_transformers_one(torch_fp32):
    from models import onnx_span
    from models.span_reader import encode

    tok, max_length = onnx_span.load_tokenizer(resolve("precis-span", "reader"))
    assert max_length == torch_fp32.max_length
    batches = [
        ("Who won?", [(p[1], p[2], p[3]) for p in PAIRS[:6]]),  # padded to the longest
        ("Which golfer won the 2022 US Women's Open?", [("She finished four strokes ahead.", "Golf", LONG_CONTEXT)]),
        ("What did the council approve?", [(LONG_SENTENCE, "Budget", "Before."), ("Short.", "", "")]),
        ("Qu'a dit la ministre à Zürich?", [("La ministre a dit « non » — “deux fois” à Zürich.", "é ü", "")]),
        ("  Why?  ", [("  Spaces around the sentence.  ", "  ", "  ")]),
    ]
    truncated = 0
    for question, items in batches:
        want, want_masks = encode(torch_fp32.tokenizer, question, items, torch_fp32.max_length)
        got, got_masks = onnx_span.encode(tok, question, items)
        for key in ("input_ids", "attention_mask", "token_type_ids", "offset_mapping"):
            assert np.array_equal(np.asarray(want[key]), got[key]), (question, key)
        assert len(got_masks) == len(want_masks) == len(items)
        for w, g in zip(want_masks, got_masks):
            assert np.array_equal(w, g), question
        truncated += int(got["attention_mask"].sum(axis=1).max() == max_length)
    assert truncated == 2  # the long context and the long sentence were cut at the reader's length
    # a question too long to leave room for the sentence: both refuse it alike
    with pytest.raises(Exception, match="Truncation error"):
        encode(torch_fp32.tokenizer, "word " * 120, [("A sentence.", "", "")], torch_fp32.max_length)
    with pytest.raises(Exception, match="Truncation error"):
        onnx_span.encode(tok, "word " * 120, [("A sentence.", "", "")])


# ------------------------------------------------------------------ the same spans
def test_onnx_float32_reads_the_spans_torch_float32_reads(graph_cache, torch_fp32):
    from models.onnx_span import OnnxSpanReader

    onnx = OnnxSpanReader("precis-span", cache_dir=graph_cache / "onnx", precision="float32")
    assert onnx.path == "onnx-float32" and not onnx.graph.exported and onnx.describe().startswith("precis-span (onnx")
    shown = 0
    for q, *item in PAIRS:
        want, got = torch_fp32.read(q, *item, always=True), onnx.read(q, *item, always=True)
        assert want is not None and got is not None, q
        assert (got.start, got.end, got.text) == (want.start, want.end, want.text), (q, want, got)
        assert abs(got.margin - want.margin) < 0.05 and abs(got.prob - want.prob) < 0.01, (q, want, got)
        assert (onnx.read(q, *item) is None) == (torch_fp32.read(q, *item) is None), q  # the same decision
        shown += got.margin > 0
    assert 10 <= shown < len(PAIRS)  # the pairs hold answers and sentences about something else
    # a batch reads as its items one by one (padding changes nothing)
    items = [tuple(p[1:]) for p in PAIRS[:5]] + [(LONG_SENTENCE, "", LONG_CONTEXT)]
    batch = onnx.read_many("Who won?", items, always=True)
    alone = [onnx.read("Who won?", *it, always=True) for it in items]
    assert [s and s.text for s in batch] == [s and s.text for s in alone]
    assert all(abs(a.margin - b.margin) < 1e-3 for a, b in zip(batch, alone) if a and b)
    assert onnx.read_many("Who?", []) == []


def test_onnx_int8_reads_mostly_the_same_spans(graph_cache, torch_fp32):
    from models.onnx_span import OnnxSpanReader

    int8 = OnnxSpanReader("precis-span", cache_dir=graph_cache / "onnx", precision="int8")
    assert int8.path == "onnx-int8" and not int8.graph.int8_built  # read from the cache, not quantised again
    same_span = same_call = 0
    for q, *item in PAIRS:
        want, got = torch_fp32.read(q, *item, always=True), int8.read(q, *item, always=True)
        same_span += got is not None and got.text == want.text
        same_call += got is not None and (got.margin > 0) == (want.margin > 0)
    # measured: 22 of 22 on both (SQuAD 2.0 dev, 400 pairs: 95.5 % the same shown-or-not span as float32)
    assert same_span >= 0.9 * len(PAIRS) and same_call >= 0.9 * len(PAIRS), (same_span, same_call)


# ------------------------------------------------------------------ the cached graph
def test_the_graph_is_exported_once_and_keyed_apart_from_the_embedders(graph_cache, monkeypatch, tmp_path):
    from models import onnx_embed, onnx_span

    folder = _copy(graph_cache, tmp_path / "cache")
    spec = resolve("precis-span", "reader")
    graph = onnx_embed.graph_path(spec, folder / "onnx", onnx_span.EXPORT_VERSION)
    assert graph.is_file() and graph.name.startswith("precis-span-")
    assert graph != onnx_embed.graph_path(spec, folder / "onnx")  # not the embedder's export code
    with monkeypatch.context() as m:
        m.setattr(onnx_span, "EXPORT_VERSION", "span-999")
        assert onnx_embed.graph_path(spec, folder / "onnx", onnx_span.EXPORT_VERSION) != graph
    before = graph.stat().st_mtime_ns

    def no_build(*a, **k):
        raise AssertionError("a cached graph must not be built again")

    monkeypatch.setattr(onnx_span, "export", no_build)
    monkeypatch.setattr(onnx_embed, "quantize", no_build)
    for precision in ("float32", "int8"):
        reader = onnx_span.OnnxSpanReader(spec, cache_dir=folder / "onnx", precision=precision)
        assert not reader.graph.exported and not reader.graph.int8_built
        assert reader.read(*PAIRS[0]).text == "58.5"
    assert graph.stat().st_mtime_ns == before
    assert sorted(p.name for p in (folder / "onnx").iterdir()) == sorted(
        p.name for p in (graph_cache / "onnx").iterdir())  # no temporary files left


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_a_corrupt_graph_is_moved_aside_and_rebuilt(graph_cache, torch_fp32, tmp_path, caplog, precision):
    from models.onnx_span import OnnxSpanReader

    folder = _copy(graph_cache, tmp_path / "cache")
    first = OnnxSpanReader("precis-span", cache_dir=folder / "onnx", precision=precision)
    path = first.graph.path
    path.write_bytes(path.read_bytes()[:4096])  # a torn write
    with caplog.at_level(logging.WARNING, logger="models.onnx_embed"):
        reader = OnnxSpanReader("precis-span", cache_dir=folder / "onnx", precision=precision)
    assert reader.graph.rebuilt and "will not load" in caplog.text
    assert list((folder / "onnx").glob("*.corrupt-*")) and path.stat().st_size > 1_000_000
    q, *item = PAIRS[1]
    assert reader.read(q, *item).text == torch_fp32.read(q, *item).text == "Taylor Swift"


def test_a_torn_float32_graph_found_while_quantising_is_moved_aside_and_rebuilt(graph_cache, tmp_path, caplog):
    """int8 asked, no int8 graph yet, and the float32 graph it is quantised from is torn: quantising
    fails; the torn graph is moved aside and exported again (it used to make every start fall back)."""
    from models.onnx_span import OnnxSpanReader

    folder = _copy(graph_cache, tmp_path / "cache")
    first = OnnxSpanReader("precis-span", cache_dir=folder / "onnx", precision="int8")
    first.graph.path.unlink()
    torn = first.graph.float_path
    torn.write_bytes(torn.read_bytes()[:4096])
    with caplog.at_level(logging.WARNING, logger="models.onnx_embed"):
        reader = OnnxSpanReader("precis-span", cache_dir=folder / "onnx", precision="int8")
    assert reader.graph.rebuilt and reader.graph.exported and "will not load" in caplog.text
    assert list((folder / "onnx").glob("*.corrupt-*")) and torn.stat().st_size > 1_000_000
    q, *item = PAIRS[1]
    assert reader.read(q, *item).text == "Taylor Swift"


# ------------------------------------------------------------------ choosing the runtime
@pytest.mark.parametrize(
    "backend, precision, cache, expected",
    [
        ("auto", "auto", True, ("torch", "auto")),  # today's path: bf16 or dynamic int8, chosen at load
        ("auto", "float32", True, ("torch", "float32")),
        ("torch", "int8", True, ("torch", "int8")),
        ("onnx", "auto", True, ("onnx", "int8")),  # as the embedder under EMBED_BACKEND=onnx
        ("ORT", "fp32", True, ("onnx", "float32")),
        ("onnx", "int8", True, ("onnx", "int8")),
        ("onnx", "bfloat16", True, ("onnx", "float32")),  # ONNX runs float32 or int8
        ("onnx", "auto", False, ("torch", "auto")),  # nowhere to cache a graph
    ],
)
def test_path_selection(backend, precision, cache, expected, tmp_path):
    from models.span_reader import pick_path

    got_backend, got_precision, why = pick_path(backend, precision, tmp_path if cache else None)
    assert (got_backend, got_precision) == expected and why


def test_unknown_backend_or_precision_is_a_clear_error(tmp_path):
    from models.span_reader import open_span_reader

    with pytest.raises(ModelUnavailable, match="backend 'tensorrt'"):
        open_span_reader("precis-span", backend="tensorrt", cache_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="precision 'int4'"):
        open_span_reader("precis-span", backend="onnx", precision="int4", cache_dir=tmp_path)


def test_open_span_reader_loads_onnx_once_and_falls_back_to_torch_when_the_export_fails(
        graph_cache, monkeypatch, tmp_path, caplog):
    from models import onnx_span
    from models.span_reader import open_span_reader

    folder = _copy(graph_cache, tmp_path / "cache")
    reader = open_span_reader("precis-span", backend="onnx", precision="float32", cache_dir=folder)
    assert reader.path == "onnx-float32" and reader.graph.path.parent == folder / "onnx"
    assert open_span_reader("precis-span", backend="onnx", precision="float32", cache_dir=folder) is reader

    def broken(*a, **k):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(onnx_span, "export", broken)
    empty = tmp_path / "empty"
    with caplog.at_level(logging.WARNING, logger="models.span_reader"):
        fallback = open_span_reader("precis-span", backend="onnx", precision="float32", cache_dir=empty)
    assert fallback.path == "torch-float32" and "exporter exploded" in caplog.text
    assert not list((empty / "onnx").glob("*.onnx"))
    assert open_span_reader("precis-span", backend="onnx", precision="float32", cache_dir=empty) is fallback


# ------------------------------------------------------------------ a process without torch
PROBE = """
import json, sys
from bot.app import Precis
from bot.config import Settings

app = Precis(Settings(_env_file=None))
app.load(progress=False)
got = app.answerer.answer("How many Kazakh citizens had China detained?", k=3)
reader = app.span_reader.peek()
print(json.dumps({"path": reader.path, "short": got.short, "support": got.support[0].text,
                  "torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}))
"""


def test_embed_backend_onnx_answers_with_the_span_reader_without_torch(graph_cache, tmp_path):
    """EMBED_BACKEND=onnx: the embedder and the span reader both run on ONNX Runtime (graphs cached),
    and a process that loads the sample corpus and answers /ask imports neither torch nor transformers."""
    from models.embedder import Embedder

    data = tmp_path / "data"
    cache = _copy(graph_cache, data / "cache")
    emb = Embedder("minilm", device="cpu", precision="float32", backend="onnx", cache_dir=cache)
    assert emb.path == "onnx-float32"  # the embedder's graph, cached beside the span reader's
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EMBED_", "MODEL_", "SUMMARY_", "ASK_", "DATA_DIR", "CORPUS_PATH"))}
    env.update({"DATA_DIR": str(data), "EMBED_BACKEND": "onnx", "EMBED_PRECISION": "float32",
                "ASK_PHRASE": "precis-span", "PYTHONPATH": str(REPO), "LOG_LEVEL": "WARNING"})
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["path"] == "onnx-float32"
    assert report["short"] and "29" in report["short"] and report["short"] in report["support"]
    assert not report["torch"] and not report["transformers"], report


def test_without_native_bf16_the_span_reader_runs_where_the_embedder_runs(graph_cache, tmp_path):
    """A CPU without native bf16 (NO_BF16 stands in for one): EMBED_BACKEND=auto puts the embedder on ONNX
    Runtime int8, and the span reader follows it there (issue 30: the embedder's runtime paths), so
    no torch is loaded either."""
    from models.embedder import Embedder
    from models.runtime import disable_bf16

    data = tmp_path / "data"
    cache = _copy(graph_cache, data / "cache")
    disable_bf16()
    try:
        Embedder("minilm", device="cpu", precision="int8", backend="onnx", cache_dir=cache)  # cache its graph
    finally:
        disable_bf16(False)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EMBED_", "MODEL_", "SUMMARY_", "ASK_", "DATA_DIR", "CORPUS_PATH"))}
    env.update({"DATA_DIR": str(data), "NO_BF16": "1", "ASK_PHRASE": "precis-span", "PYTHONPATH": str(REPO),
                "LOG_LEVEL": "WARNING"})
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["path"] == "onnx-int8" and report["short"] and "29" in report["short"], report
    assert not report["torch"] and not report["transformers"], report


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_an_over_long_question_is_clipped_not_refused(graph_cache, backend):
    """A question of more word pieces than the window leaves the sentence room for used to make the
    tokenizer refuse the pair (and the answerer then stopped using the span reader): it is read cut
    after max_question word pieces, on both runtimes alike; a long question that fits is read whole."""
    from models.span_reader import open_span_reader

    reader = open_span_reader("precis-span", backend=backend, precision="float32", cache_dir=graph_cache)
    assert reader.max_question == reader.max_length - 3 - 16
    long_q = "Which " + " ".join(f"item{i} 12,345.67" for i in range(40)) + " did the council approve?"
    assert len(reader.question_offsets(long_q)) > reader.max_length
    clipped = reader.clip(long_q)
    assert long_q.startswith(clipped) and len(reader.question_offsets(clipped)) == reader.max_question
    span = reader.read(long_q, "The council approved a new bridge for 40 million euros.", "Bridge", always=True)
    assert span is not None and span.text in "The council approved a new bridge for 40 million euros."
    fits = ("After the 2024 floods in Valencia (Paiporta, Catarroja, Alfafar), when protesters threw mud at "
            "Felipe VI and the Generalitat's 20:11 alert came hours late, how many soldiers did Madrid send?")
    assert 48 < len(reader.question_offsets(fits)) <= reader.max_question and reader.clip(fits) == fits
