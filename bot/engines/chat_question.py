"""The question a member typed, without the chat around it.

Members ask in Discord the way they talk: ``@everyone what did Japan decide
about travelers?``, ``hey, what did Japan decide about travelers?``,
``anyone know who won the election pls``, ``hi all, when does the rail line
reopen? thanks``. Mentions and chat filler are not question terms, and the
retriever must never see them. :func:`clean_question` removes them and
collapses whitespace; it never changes case and never touches the words of
the real question. The rules:

* Mentions, anywhere: ``<@id>``, ``<@!id>``, ``<@&id>``, ``<#id>``,
  ``@everyone``, ``@here``; at the start also a plain ``@name`` (addressing
  the bot by name). A comma or colon after a leading mention goes with it.
* At the START only, repeatedly:
    - phrases that only introduce a question: ``quick question:``,
      ``question:``, ``(does|do) anyone/anybody/someone know (if|whether)``,
      ``can/could someone/anyone/you tell me (if|whether)``,
      ``I was wondering (if|whether)``;
    - greetings and interjections (``hey``, ``hi``, ``hello``, ``yo``,
      ``lol`` ..., optionally with ``all``/``guys``/``everyone``/``there``
      ...), but only when followed by punctuation (``hey, what``), by the end
      of the message, by another filler or mention, or by a wh-/auxiliary
      question word (``hey what``, ``hi did``). ``Hello Fresh shares fell
      why?`` keeps its ``Hello``: before a name it may be part of the
      question.
* At the END only, repeatedly: ``pls``, ``plz``, ``please``, ``thanks``,
  ``thank you``, ``thx``, ``ty``, ``tia``, ``lol``, ``cheers`` ... (with
  trailing ``!`` or ``.``), and emoticons/emoji such as ``:)``. A filler word
  directly after a word of the question (no punctuation between) is taken
  only when written in lower case and not followed by ``?``: ``who won pls``
  loses ``pls``, but ``Who is Ty`` and ``Why did he say thank you?`` stay.
* Nothing in the middle: ``Who said 'hey' to the president?`` and ``What did
  Thank You Industries announce?`` come back unchanged.

The steps repeat until nothing changes, so cleaning twice is cleaning once.
A message that is only filler (``hey @everyone``) cleans to ``""``; the
caller refuses it as it refuses an empty question.
"""

from __future__ import annotations

import re

__all__ = ["clean_question"]

# Discord's mention syntax: users, nicknamed users, roles, channels, and the two
# broadcast mentions.
_MENTION = r"(?:<@[!&]?\d+>|<#\d+>|@everyone\b|@here\b)"
_MENTION_ANYWHERE = re.compile(r"\s*" + _MENTION)
# Mentions closing the question take the comma before them: "Who won, <@1>?".
_MENTION_AT_END = re.compile(r",?(?:\s*" + _MENTION + r")+(?=[?!.]*\s*$)")

# What may follow a removed leading piece: spaces and the punctuation that
# tied it to the question ("hey, ", "<@1>: ", "hi! ").
_LEAD_PUNCT = r"[\s,:;.!]*(?:(?<=\s)[-–—]+\s*)?"

_SOMEONE = r"(?:any\s*one|any\s*body|some\s*one|some\s*body)"
_IF = r"(?:\s+(?:if|whether))?"
# Phrases that only introduce a question; removed whenever they open it.
_INTRO = (
    r"(?:quick\s+q(?:uestion|n)?\b\s*[:,]?|question\s*:"
    rf"|(?:(?:does|do)\s+)?{_SOMEONE}\s+knows?\b{_IF}"
    rf"|(?:can|could|would)\s+(?:{_SOMEONE}|you)\s+(?:please\s+)?(?:tell|remind)\s+me\b{_IF}"
    rf"|i\s+(?:was\s+|am\s+|'m\s+)?wonder(?:ing)?\b{_IF})"
)
_GREETING = (
    r"(?:hey+|hi+|hello|hiya|heya|howdy|yo|sup|greetings|lol|lmao|um+|uh+|oh)"
    r"(?:\s+(?:all|guys|everyone|everybody|folks|people|team|there|y'?all))?"
)
_QUESTION_WORD = (
    r"(?:what|who|whom|whose|when|where|why|how|which|did|does|do|is|are|was|were"
    r"|can|could|will|would|has|have|had|should|shall)"
)
# A greeting counts as filler only when something shows it is not part of the
# question: punctuation, the end, another filler, a mention or a question word.
_GREETING_ENDS = (
    rf"(?=[,:;.!]|\s+[-–—]|\s*$|\s+(?:{_GREETING}|{_INTRO}|{_QUESTION_WORD}(?:'?s)?)\b|\s*@|\s*<[@#])"
)
_LEAD = re.compile(
    rf"^(?:{_MENTION}|@[\w.\-]+|{_INTRO}|{_GREETING}\b{_GREETING_ENDS}){_LEAD_PUNCT}",
    re.IGNORECASE,
)

# Sign-offs at the end. The look-behind keeps "pretty" from losing its "ty".
_SIGN_OFF = re.compile(
    r"(?:(?<=[\s?!.,;:])|^)"
    r"(?P<word>(?:thanks?|thank\s+you|thankyou|thx|thnx|ty|tia|cheers)"
    r"(?:\s+(?:so\s+much|a\s+lot|in\s+advance|all|guys|everyone|folks))?"
    r"|pl[sz]|please|lol|lmao|haha+)"
    r"(?P<tail>[\s!.]*)$",
    re.IGNORECASE,
)
_EMOTICON = re.compile(
    r"(?:[:;=]-?[)(DPp]|<3|<a?:\w+:\d+>|[\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F\u200D]+)[\s!.]*$"
)
_TRAIL_PUNCT = re.compile(r"[\s,;:\-–—]+$")
_SPACES = re.compile(r"\s+")


def _strip_start(text: str) -> str:
    while True:
        m = _LEAD.match(text)
        if not m or not m.group(0):
            return text
        text = text[m.end():]


def _strip_end(text: str) -> str:
    while True:
        m = _EMOTICON.search(text)
        if not m:
            m = _SIGN_OFF.search(text)
            if m:
                before = text[: m.start()].rstrip()
                glued = before[-1:].isalnum()
                # After a word of the question a sign-off must look like chat:
                # lower case, nothing but spaces after it.
                if glued and (not m.group("word").islower() or m.group("tail").strip()):
                    return text
        if not m:
            return text
        text = _TRAIL_PUNCT.sub("", text[: m.start()])


def _clean_once(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    text = _strip_start(text)
    text = _MENTION_AT_END.sub("", text)
    text = _MENTION_ANYWHERE.sub("", text)
    text = _strip_end(text)
    return _SPACES.sub(" ", text).strip()


def clean_question(text: str) -> str:
    """The question in ``text`` without mentions and chat filler; ``""`` if nothing is left."""
    while True:
        cleaned = _clean_once(text)
        if cleaned == text:
            return cleaned
        text = cleaned
