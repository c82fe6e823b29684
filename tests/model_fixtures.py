"""Tiny, randomly initialised models built on the fly, so tests need no downloads.

Use from any test module with::

    from tests.model_fixtures import tiny_t5_dir  # noqa: F401  (pytest fixture)

``tiny_t5_dir`` is session-scoped: a 2-layer T5 (d_model 32) with a
sentencepiece unigram tokenizer trained on ``bot/data/sample_corpus.txt``,
saved with ``save_pretrained`` (config.json, model.safetensors, tokenizer.json)
in a temporary folder. Building it takes well under a second.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = REPO_ROOT / "bot" / "data" / "sample_corpus.txt"
TINY_VOCAB = 300


def train_sentencepiece(text: str, vocab_size: int = TINY_VOCAB, model_type: str = "unigram") -> bytes:
    """A sentencepiece model proto with T5's special ids: <pad>=0, </s>=1, <unk>=2, no BOS."""
    import sentencepiece as spm

    lines = [line.strip() for line in text.splitlines() if line.strip()]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type=model_type,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        hard_vocab_limit=False,  # a small corpus may not support the full vocab size
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


def t5_tokenizer_from_spm(model_proto: bytes):
    """Wrap a sentencepiece unigram model as a transformers ``T5Tokenizer``.

    The vocabulary and scores are read with the sentencepiece library itself, so
    no protobuf install is needed (transformers' own .model converter wants it).
    """
    import sentencepiece as spm
    from transformers import T5Tokenizer

    sp = spm.SentencePieceProcessor(model_proto=model_proto)
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_tiny_t5(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny random T5 + trained tokenizer under ``folder``; returns it."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = t5_tokenizer_from_spm(train_sentencepiece(SAMPLE_CORPUS.read_text(encoding="utf-8")))
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config).eval()
    # Random weights like to emit <pad> forever; keep it out of the output so
    # generations are visible text (real checkpoints never do this).
    model.generation_config.suppress_tokens = [tokenizer.pad_token_id]
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with a tiny random T5 seq2seq model and its sentencepiece tokenizer."""
    return build_tiny_t5(tmp_path_factory.mktemp("tiny-t5") / "model")
