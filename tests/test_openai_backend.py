"""models.openai_backend against a fake OpenAI-compatible server on 127.0.0.1 (tests/fakes/openai_server.py):
what a real server will not do on demand - 500s, 429 with Retry-After, a timeout, a trickled body,
malformed JSON, a reply that breaks the copy constraint - each gives a clear reply, and the rest of
the bot keeps answering."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from bot.handlers.core import Handlers
from models.chat import GenerationError
from models.generator import open_generator, pick_backend
from models.openai_backend import OpenAIGenerator
from models.registry import ModelUnavailable
from tests.fakes.openai_server import FakeOpenAI

KAZAKH_Q = "How many ethnic Kazakhs is China allowing to leave?"
SRC = "Leon Yeaman, 55, was not killed by Mr Smith on Friday, police said."
PROMPT = f"Shorten this sentence by deleting the less important words:\n{SRC}"


def _gen(url: str, **kw) -> OpenAIGenerator:
    kw.setdefault("retries", 0)
    kw.setdefault("connect_timeout", 0.5)
    kw.setdefault("read_timeout", 1.0)
    kw.setdefault("backoff", 0.01)
    return OpenAIGenerator(url, **kw)


def _app(app_factory, fake: FakeOpenAI, **kw):
    kw.setdefault("summary_retries", 1)
    kw.setdefault("summary_read_timeout", 1.0)
    kw.setdefault("summary_connect_timeout", 0.5)
    return app_factory(summary_model=fake.url, **kw)


def _bot_still_answers(h: Handlers) -> None:
    extractive = h.summary(article="Kazakhs")
    assert extractive.ok and len(extractive.lines) == 3
    ans = h.ask(KAZAKH_Q)
    assert ans.ok and not ans.abstained and "2,000" in ans.lines[0].text


# ---------------------------------------------------------------- the setting


def test_a_url_setting_picks_the_server_backend() -> None:
    assert pick_backend("http://127.0.0.1:8080/v1") == "openai"
    assert pick_backend("https://llm.example.org/v1") == "openai"
    gen = open_generator("http://127.0.0.1:9/v1", model_name="m")
    assert isinstance(gen, OpenAIGenerator) and gen.model_name == "m"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080/api", "must end in /v1"),
        ("ftp://127.0.0.1/v1", "not an http"),
        ("http://user:secret@127.0.0.1:8080/v1", "SUMMARY_API_KEY"),
        ("http:///v1", "not an http"),
    ],
)
def test_bad_server_urls_are_refused_clearly(url: str, why: str) -> None:
    with pytest.raises(ModelUnavailable, match=why):
        OpenAIGenerator(url)


# ---------------------------------------------------------------- failures, one by one


def test_500s_are_retried_then_reported() -> None:
    with FakeOpenAI([("status", 500)]) as fake:
        gen = _gen(fake.url, retries=2)
        with pytest.raises(GenerationError, match=r"answered HTTP 500 after 3 tries"):
            gen.generate("Hi")
        assert len(fake.posts) == 3
        assert "UNREACHABLE or failing" in gen.describe()


def test_a_500_then_success_is_retried_quietly() -> None:
    with FakeOpenAI([("status", 503), ("ok", "Fine.")]) as fake:
        gen = _gen(fake.url, retries=2)
        assert gen.generate("Hi") == "Fine."
        assert len(fake.posts) == 2 and "answering" in gen.describe()


def test_429_waits_as_long_as_retry_after_says() -> None:
    with FakeOpenAI([("status", 429, {"Retry-After": "1"}), ("ok", "After the wait.")]) as fake:
        gen = _gen(fake.url, retries=2, backoff=0.01)
        t0 = time.monotonic()
        assert gen.generate("Hi") == "After the wait."
        assert time.monotonic() - t0 >= 0.95  # Retry-After: 1, not the 0.01 s back-off
        assert len(fake.posts) == 2


def test_a_retry_after_longer_than_worth_waiting_fails_at_once() -> None:
    with FakeOpenAI([("status", 429, {"Retry-After": "3600"}), ("ok", "Never.")]) as fake:
        t0 = time.monotonic()
        with pytest.raises(GenerationError, match="asks to wait 3600 s"):
            _gen(fake.url, retries=3, max_wait=5).generate("Hi")
        assert time.monotonic() - t0 < 2 and len(fake.posts) == 1


def test_429_for_ever_is_reported_as_too_many_requests() -> None:
    with FakeOpenAI([("status", 429, {"Retry-After": "0"})]) as fake:
        with pytest.raises(GenerationError, match="HTTP 429 .too many requests. after 2 tries"):
            _gen(fake.url, retries=1).generate("Hi")


def test_a_server_that_does_not_answer_in_time() -> None:
    with FakeOpenAI([("sleep", 3.0, "Late.")]) as fake:
        t0 = time.monotonic()
        with pytest.raises(GenerationError, match=r"did not answer within 1 s"):
            _gen(fake.url).generate("Hi")
        assert time.monotonic() - t0 < 2.5


def test_a_trickled_body_is_cut_off_at_the_deadline() -> None:
    with FakeOpenAI([("trickle", 0.05)]) as fake:  # ~250 bytes at 20 bytes/s: ~12 s; each read is quick
        t0 = time.monotonic()
        with pytest.raises(GenerationError, match="did not answer within"):
            _gen(fake.url).generate("Hi")
        assert time.monotonic() - t0 < 3.0


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"choices": []}', b'{"choices": [{"message": {}}]}'])
def test_malformed_replies_are_reported(body: bytes) -> None:
    with FakeOpenAI([("raw", body)]) as fake:
        with pytest.raises(GenerationError, match="malformed|without choices"):
            _gen(fake.url).generate("Hi")


def test_an_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(GenerationError, match="is unreachable"):
        _gen(f"http://127.0.0.1:{port}/v1").generate("Hi")


def test_an_unreachable_server_is_not_probed_on_every_sentence() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = _gen(f"http://127.0.0.1:{port}/v1")
    assert gen.count_tokens("one two three four five") == 8  # the words' estimate
    first = gen._probe_failed_at
    assert first > 0 and not gen._probed
    gen.count_tokens("again")
    assert gen._probe_failed_at == first  # not asked again within PROBE_RETRY_SECONDS


def test_a_reply_that_breaks_the_constraint_is_not_used() -> None:
    with FakeOpenAI([("ok", "Leon Yeaman was killed by Mr Smith.")]) as fake:  # "not" dropped
        gen = _gen(fake.url)
        assert gen.generate_copy(PROMPT, SRC) == ""
        assert gen.rejected == 1
        assert "grammar" not in fake.posts[0]["body"]  # the fake is no llama.cpp: no grammar sent


def test_a_reply_that_keeps_the_constraint_is_used() -> None:
    with FakeOpenAI([("ok", "Leon Yeaman was not killed, police said.")]) as fake:
        gen = _gen(fake.url)
        assert gen.generate_copy(PROMPT, SRC) == "Leon Yeaman was not killed, police said."
        assert gen.rejected == 0


def test_a_llamacpp_server_gets_the_grammar() -> None:
    with FakeOpenAI([("echo_grammar",)], llamacpp=True) as fake:
        gen = _gen(fake.url)
        assert gen.generate_copy(PROMPT, SRC) == SRC
        body = fake.posts[0]["body"]
        assert body["grammar"].startswith("root ::= ") and body["temperature"] == 0
        assert gen.server_kind == "llama.cpp server" and "GBNF" in gen.describe()


def test_the_key_and_model_name_are_sent_and_the_key_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sk-test-do-not-log-1234"
    with FakeOpenAI([("status", 500), ("ok", "Yes.")]) as fake:
        gen = _gen(fake.url, api_key=secret, model_name="qwen2.5:1.5b", retries=1)
        assert gen.generate("Hi") == "Yes."
        post = fake.posts[-1]
        assert post["headers"]["Authorization"] == f"Bearer {secret}"
        assert post["body"]["model"] == "qwen2.5:1.5b"
        assert post["path"] == "/v1/chat/completions"
        assert secret not in caplog.text and secret not in gen.describe() and secret not in repr(gen.__dict__.get("url"))


def test_the_api_key_setting_is_a_secret(settings_factory) -> None:
    s = settings_factory(summary_api_key="sk-hidden", summary_model="http://127.0.0.1:1/v1")
    assert "sk-hidden" not in repr(s) and s.summary_api_key.get_secret_value() == "sk-hidden"
    assert settings_factory(summary_api_key="  ").summary_api_key is None


# ---------------------------------------------------------------- through the bot


@pytest.mark.parametrize(
    ("script", "why"),
    [
        ([("status", 500)], "HTTP 500"),
        ([("sleep", 3.0, "Late.")], "did not answer within"),
        ([("trickle", 0.05)], "did not answer within"),
        ([("raw", b"{oops")], "malformed"),
    ],
)
def test_failing_server_gives_a_clear_reply_and_the_bot_keeps_answering(app_factory, script, why) -> None:
    with FakeOpenAI(script) as fake:
        app = _app(app_factory, fake)
        h = Handlers(app)
        reply = h.summary(article="Kazakhs", mode="abstractive")
        assert reply.ok and reply.lines  # the extractive summary, with a note that says why
        assert reply.meta["mode"] == "extractive (fallback)"
        assert any("summary model failed" in n and why in n for n in reply.notes), reply.notes
        ans = h.ask(KAZAKH_Q, mode="abstractive")
        assert ans.ok and not ans.abstained and ans.lines
        assert any("summary model failed" in n and why in n for n in ans.notes), ans.notes
        _bot_still_answers(h)
        about = h.about().text
        assert fake.url in about and "UNREACHABLE or failing" in about


def test_constraint_breaking_server_through_the_bot(app_factory) -> None:
    with FakeOpenAI([("echo_grammar",)]) as fake:  # no grammar support: it rewrites freely
        app = _app(app_factory, fake)
        h = Handlers(app)
        reply = h.summary(article="Kazakhs", mode="abstractive")
        assert reply.ok and reply.lines
        text = " ".join(line.text for line in reply.lines)
        assert "invented" not in text  # the free rewrite never reaches the user
        assert app.generator.peek().rejected >= 1
        # /ask's answer takes the same constraint (one run of words of support [1]): refused too
        rejected = app.generator.peek().rejected
        ans = h.ask(KAZAKH_Q, mode="abstractive")
        assert ans.ok and not ans.abstained and "invented" not in " ".join(line.text for line in ans.lines)
        assert any("own words" in n for n in ans.notes), ans.notes
        assert app.generator.peek().rejected == rejected + 1
        _bot_still_answers(h)
