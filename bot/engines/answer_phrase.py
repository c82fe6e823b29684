"""The short answer: a phrase taken word for word from a supporting sentence.

Rules only (no tagger model): the question says what kind of thing it asks
for (:func:`question_kind`), each sentence offers candidate phrases of those
kinds (:func:`candidates`: quantities with their unit and noun, dates,
capitalised names with their titles), and a candidate is kept only when it
brings something the question does not already say. :func:`best_phrase`
picks the candidate of the right kind nearest to the question's words in the
sentence, preferring phrases that other retrieved sentences repeat. A
quantity must count what "how many X" asks about (:func:`counts_the_same`:
"68 new cases" is no answer to "how many people died"), and "which country"
wants a country name (:func:`is_country`), not a city or a leader.

Kinds: ``number`` (how many / how much / what percentage / cost ...), ``date``
(when / what year ...), ``place`` (where / which city, country ...), ``person``
(who / which golfer, actor ...), ``name`` (which / what X: a team, company,
country ...), ``other`` (no short answer: the best sentence leads).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

KINDS = ("number", "date", "place", "person", "name", "other")

_MONTHS = (
    r"January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan\.?|Feb\.?|Mar\.?|Apr\.?|Jun\.?|Jul\.?|Aug\.?|Sept?\.?|Oct\.?|Nov\.?|Dec\.?"
)
_DAYS = r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_DATE = re.compile(
    rf"\b(?:(?:{_DAYS}),?\s+)?(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+(?:19|20)\d\d)?(?!\w)|"
    rf"\b\d{{1,2}}\s+(?:{_MONTHS})(?:\s+(?:19|20)\d\d)?(?!\w)|"
    rf"\b(?:(?:early|late|mid-?)\s*)?(?:{_MONTHS})(?:\s+(?:19|20)\d\d)?(?!\w)|"
    rf"\b(?:on\s+)?(?:{_DAYS})\b|"
    r"\b(?:in\s+)?(?:19|20)\d\d(?:s)?\b|"
    r"\b(?:last|next|this)\s+(?:week|month|year|spring|summer|autumn|fall|winter)\b"
)
_QUALIFIER = (
    r"(?:about|around|roughly|nearly|almost|some|over|under|more than|less than|fewer than|at least|"
    r"at most|up to|as many as|as much as|approximately|an estimated|just over|just under)\s+"
)
_SCALE = r"(?:hundred|thousand|million|billion|trillion|bn|m|k)\b"
_NUMWORD = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    r"hundreds|thousands|millions|billions|dozens|a dozen|a hundred|a thousand|a million|a billion|half)"
)
_CURRENCY = r"(?:[$€£¥₹]|US\$|C\$|A\$|Rs\.?\s?)"
_AMOUNT = (
    rf"(?:{_CURRENCY}\s?)?(?:\d+(?:[.,]\d+)*|{_NUMWORD}\b)(?:-plus)?(?:\s*(?:%|percent|per cent)|\s+{_SCALE})?"
)
_NUMBER = re.compile(
    rf"(?i)(?<![\w$€£¥])(?:{_QUALIFIER})?{_AMOUNT}(?:\s*\((?:{_QUALIFIER})?{_AMOUNT}\))?",
)
# Words that end a quantity's noun phrase.
_STOP = frozenset(
    """a an the and or but of to in on at for from by with as is are was were be been being has have had
    that which who whom whose this these those it its their his her they them he she we you i
    will would could should may might can than then since so if when where while after before
    over under into onto about per each said says according also just only more most less
    not no nor up down out off s""".split()
)
_TITLES = (
    r"(?:President|Prime Minister|Minister|Chancellor|King|Queen|Prince|Princess|Pope|Senator|Sen\.|Rep\.|"
    r"Representative|Governor|Gov\.|Mayor|Judge|Justice|General|Gen\.|Chief|Secretary|Dr\.|Mr\.|Mrs\.|Ms\.|"
    r"Sir|Dame|Lord|Lady|Coach|Captain|Commissioner|Ambassador|Speaker|CEO|Chairman|Chairwoman|Director)"
)
_CAPWORD = r"(?:[A-Z][\w'’.-]*[\w]|[A-Z]\.?|[A-Z]{2,})"
_NAME = re.compile(rf"(?:{_CAPWORD})(?:(?:\s+(?:of|de|del|da|van|von|al|bin|the|and|&)\s+|\s+|-)(?:{_CAPWORD}))*")
_PERSON_CUE = re.compile(
    r"(?i)^\s*,?\s*(?:said|says|told|added|wrote|who|announced|stated|argued|tweeted|,\s*(?:a|an|the)\s)"
)
_PLACE_CUE = re.compile(r"(?i)\b(?:in|at|from|to|near|across|into|outside|inside)\s*$")
_ORG_WORDS = re.compile(
    r"\b(?:Inc|Corp|Co|Ltd|Group|Company|Bank|University|Institute|Party|Ministry|Department|Agency|"
    r"Association|Council|Committee|Court|Office|Club|League|Union|Organization|Organisation|Commission|"
    r"Foundation|Fund|Network|News|Times|Post|Journal|Airlines|Motors|Technologies|Systems)\b"
)
_PLACE_WORDS = re.compile(
    r"\b(?:City|County|State|Province|Island|Islands|Republic|Kingdom|Valley|River|Sea|Ocean|Mountains?|"
    r"Street|Square|Park|Region|Coast|Bay|Lake|Peninsula)\b"
)
# Nationality, language and faith words: on their own ("Chinese citizenship", "Kazakh citizens")
# they describe a noun; they are never the place, person or name a question asks for.
_DEMONYM = re.compile(
    r"^(?:Chinese|Japanese|Kazakhs?|Uighurs?|Uyghurs?|Americans?|British|French|German|Russians?|Indian|"
    r"Iranian|Israeli|Palestinian|Ukrainian|Korean|Turkish|Syrian|Iraqi|Afghan|Pakistani|Saudi|Egyptian|"
    r"Mexican|Canadian|Australian|Italian|Spanish|European|African|Asian|Muslims?|Christians?|Jewish|Arabs?|"
    r"Arabic|Kurdish|Kurds?|Brazilian|Dutch|Swedish|Polish|Greek|Irish|Scottish|Welsh|English|Vietnamese|"
    r"Thai|Filipino|Indonesian|Nigerian|Kenyan|Ethiopian|Venezuelan|Colombian|Argentine|Chilean|Cuban|"
    r"Belgian|Swiss|Austrian|Norwegian|Danish|Finnish|Hungarian|Czech|Romanian|Serbian|Lebanese|Jordanian|"
    r"Yemeni|Qatari|Emirati|Taiwanese|Tibetan|Hindu|Sikh|Western|Eastern|Northern|Southern)$"
)
_SENT_START_SKIP = frozenset(
    """The A An In On At For But And Or As If When While After Before This That These Those It Its He She They
    We I You His Her Their Our My Your There Here Some Many Most All Any No One Two Three Last Next Such
    According Meanwhile However Although Though Since Because Under Over With Without From By To Of Yet So
    Also Still Even Only Now Then What Which Who Where Why How Earlier Later""".split()
)
_Q_NUMBER = re.compile(
    r"(?i)\bhow (?:many|much|old|long|far|big|tall|large|often|high|fast)\b|"
    r"\bwhat (?:percentage|percent|share|number|amount|age|price|cost|rate|sum|fraction|figure|total)\b|"
    r"\b(?:number|percentage|amount|sum|total) of\b|"
    r"\bby how\b|\braised to\b|\bto:?\s*$|\bwhat is the (?:population|death toll|toll|score|temperature)\b"
)
_Q_WHAT = re.compile(r"(?i)^\s*(?:what|how)\b")
_Q_AMOUNT_VERB = re.compile(
    r"(?i)\b(?:cost|costs|worth|price|priced|spend|spent|pay|paid|raise|raised|value|valued|shrink|grow|fall|rise)\s*\??\s*$"
)
_Q_DATE = re.compile(
    r"(?i)^when\b|\bwhen (?:did|does|do|was|is|will|were|are|has|had)\b|"
    r"\b(?:what|which|in what) (?:year|month|day|date|decade)\b"
)
_Q_PLACE = re.compile(
    r"(?i)^where\b|\bwhere (?:did|does|do|was|is|will|were|are|has|had)\b|"
    r"\b(?:which|what|in which|in what) (?:city|cities|country|countries|state|states|nation|region|town|"
    r"island|continent|province|county|capital|place|location|venue|stadium|airport|port)\b"
)
_Q_PERSON = re.compile(
    r"(?i)\bwho(?:m|se)?\b|"
    # "which coach", "which head coach", "which NFL team's quarterback" (up to two words between, not verbs)
    r"\b(?:which|what) (?:(?!(?:is|are|was|were|will|would|did|does|do|has|have|had|can|could|should|to)\b)"
    r"[\w'’]+ ){0,2}(?:person|people|man|woman|actor|actress|singer|rapper|musician|artist|player|golfer|"
    r"athlete|star|celebrity|politician|senator|governor|president|leader|candidate|judge|justice|author|"
    r"writer|director|ceo|executive|founder|billionaire|coach|quarterback|pitcher|footballer|tennis player|"
    r"doctor|scientist|journalist|comedian|host|monarch|king|queen|prince|princess|minister|official|"
    r"lawmaker|chef|model|designer|boxer|driver|cyclist|swimmer|skater|gymnast|striker|manager)\b"
)
_Q_NAME = re.compile(r"(?i)\b(?:which|what)\s+(?!is\b|are\b|was\b|were\b|did\b|does\b|do\b|has\b|have\b|will\b)\w+|"
                     r"\bname (?:of|the)\b")
_WORD = re.compile(r"[\w][\w'’.-]*[\w]|[\w]")


def question_kind(question: str) -> str:
    """What the question asks for: one of :data:`KINDS`."""
    q = question.strip()
    if _Q_DATE.search(q):
        return "date"
    if _Q_NUMBER.search(q) or (_Q_WHAT.search(q) and _Q_AMOUNT_VERB.search(q)):
        return "number"
    if _Q_PLACE.search(q):
        return "place"
    if _Q_PERSON.search(q):
        return "person"
    if _Q_NAME.search(q):
        return "name"
    return "other"


@lru_cache(maxsize=65536)
def _norm(word: str) -> str:
    w = word.lower().strip(".'’")
    for suffix in ("’s", "'s"):
        w = w.removesuffix(suffix)
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def words(text: str) -> list[str]:
    """Normalised words (lower case, crude singular, no possessive), the unit the 'in the question' test uses."""
    return [_norm(w) for w in _WORD.findall(text.replace(",", ""))]


@dataclass(frozen=True)
class Candidate:
    text: str  # word for word from the sentence
    kind: str  # number, date, person, place, name
    start: int  # character offsets in the sentence
    end: int


def _quantity_noun(sentence: str, end: int) -> int:
    """Extend a quantity over the noun that follows it ("29 Kazakh citizens"): up to three words."""
    pos = end
    taken = 0
    for m in re.finditer(r"\s+([\w][\w'’-]*)", sentence[end:]):
        if m.start() != pos - end or taken >= 3:
            break
        w = m.group(1)
        if w.lower() in _STOP or re.match(r"\d", w):
            break
        pos = end + m.end()
        taken += 1
        if sentence[pos : pos + 1] in (",", ";", ":", ")", "—", "–", "."):
            break
    return pos


_PLACE_WORD = r"[A-Z][A-Za-z.'’\-]*"
# A news dateline opening the sentence names where it was filed, never an answer: "WASHINGTON – ...",
# "Sacramento: ...", "ALMATY, Kazakhstan: ...", "New York (CNN Business) ...", "LONDON (Reuters) - ...".
_LEAD_DATELINE = re.compile(
    rf"^\s*(?:[A-Z][A-Z.'’\-]+(?:[ ,]+{_PLACE_WORD}){{0,3}}\s*(?:[:—–]|--| - )"
    rf"|{_PLACE_WORD}(?:[ ,]+{_PLACE_WORD}){{0,2}}\s*:"
    rf"|{_PLACE_WORD}(?:[ ,]+{_PLACE_WORD}){{0,3}}\s*\((?:AP|AFP|Reuters|Bloomberg|CNN(?: [A-Z][a-z]+)?|AN)\)"
    rf"\s*(?:[:—–-]|--)?)\s+"
)


def dateline_end(sentence: str) -> int:
    """Where an opening dateline ("WASHINGTON –", "New York (CNN Business)") ends; 0 when there is none."""
    m = _LEAD_DATELINE.match(sentence)
    return m.end() if m else 0


def candidates(sentence: str) -> list[Candidate]:
    """Every candidate answer phrase in ``sentence`` with its kind (overlaps resolved: dates before numbers)."""
    return list(_candidates(sentence))


@lru_cache(maxsize=8192)
def _candidates(sentence: str) -> tuple[Candidate, ...]:
    out: list[Candidate] = []
    taken: list[tuple[int, int]] = []
    lead = dateline_end(sentence)
    if lead:
        taken.append((0, lead))  # where the story was filed is no answer

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for m in _DATE.finditer(sentence):
        a, b = m.span()
        text = sentence[a:b].strip()
        if not text or not free(a, b):
            continue
        out.append(Candidate(text, "date", a, b))
        taken.append((a, b))
    for m in _NUMBER.finditer(sentence):
        a, b = m.span()
        while b > a and sentence[b - 1] in " ":
            b -= 1
        if not re.search(r"\d|[a-z]", sentence[a:b], re.I) or not free(a, b):
            continue
        if not re.search(r"\d", sentence[a:b]) and not re.search(_NUMWORD, sentence[a:b], re.I):
            continue
        b2 = _quantity_noun(sentence, b)
        text = sentence[a:b2].strip(" ,;:")
        out.append(Candidate(text, "number", a, a + len(text)))
        taken.append((a, b))
    for m in _NAME.finditer(sentence):
        a, b = m.span()
        text = m.group(0)
        # Leading sentence-opening words are not names ("The", "But").
        parts = text.split()
        while parts and parts[0] in _SENT_START_SKIP:
            a = sentence.index(parts[0], a) + len(parts[0])
            while a < b and sentence[a] in " ":
                a += 1
            parts = parts[1:]
        while parts and parts[-1].lower() in ("of", "de", "the", "and", "&", "al", "van", "von"):
            parts = parts[:-1]
        if not parts:
            continue
        text = " ".join(parts) if " " in sentence[a:b] else sentence[a:b]
        text = sentence[a : a + len(sentence[a:b].rstrip())]
        # Re-cut to the parts kept (the join above may have dropped a trailing connector).
        last = parts[-1]
        cut = sentence.rfind(last, a, b) + len(last)
        text = sentence[a:cut].rstrip(".")
        b = a + len(text)
        if not text or not free(a, b) or re.fullmatch(rf"{_TITLES}", text) or re.fullmatch(rf"{_TITLES}", text + "."):
            continue
        if text.isupper() and len(text) <= 1:
            continue
        before = sentence[:a]
        after = sentence[b:]
        if len(parts) == 1 and _DEMONYM.match(text):
            continue
        if re.match(rf"{_TITLES}\s", text) or (len(parts) >= 2 and not _ORG_WORDS.search(text)
                                                 and not _PLACE_WORDS.search(text) and _PERSON_CUE.match(after)):
            kind = "person"
        elif _PLACE_WORDS.search(text) or _PLACE_CUE.search(before):
            kind = "place"
        elif len(parts) >= 2 and not _ORG_WORDS.search(text) and all(p[:1].isupper() for p in parts):
            kind = "person?"  # two capitalised words: a person or a place/org; counts half for person
        else:
            kind = "name"
        out.append(Candidate(text, kind, a, b))
        taken.append((a, b))
    out.sort(key=lambda c: c.start)
    return tuple(out)


_KIND_FIT = {
    # question kind -> {candidate kind: fit}
    "number": {"number": 1.0},
    "date": {"date": 1.0, "number": 0.2},
    "place": {"place": 1.0, "name": 0.6, "person?": 0.4},
    "person": {"person": 1.0, "person?": 0.8, "name": 0.5},
    "name": {"name": 1.0, "person": 0.8, "person?": 0.8, "place": 0.8},
    "other": {},
}


def fit(question_kind_: str, cand_kind: str) -> float:
    return _KIND_FIT.get(question_kind_, {}).get(cand_kind, 0.0)


def new_to_question(phrase: str, question_words: set[str]) -> bool:
    """True when the phrase says something the question does not: a content word (or number) it lacks."""
    ws = [w for w in words(phrase) if w not in _STOP]
    return any(w not in question_words for w in ws)


def display_kind(kind: str) -> str:
    return "person" if kind == "person?" else kind


def _token_spans(sentence: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), _norm(m.group(0))) for m in _WORD.finditer(sentence)]


def nearness(sentence: str, cand: Candidate, question_words: set[str], spans=None) -> float:
    """1 / (1 + words between the candidate and the nearest question word in the sentence); 0 if none."""
    spans = spans if spans is not None else _token_spans(sentence)
    hits = [i for i, (a, b, w) in enumerate(spans) if w in question_words and w not in _STOP
            and not (a >= cand.start and b <= cand.end)]
    inside = [i for i, (a, b, _) in enumerate(spans) if a >= cand.start and b <= cand.end]
    if not hits or not inside:
        return 0.0
    lo, hi = inside[0], inside[-1]
    gap = min(lo - h if h < lo else h - hi for h in hits)
    return 1.0 / (1.0 + max(gap - 1, 0))


_WHO_VERB = re.compile(r"(?i)^\s*who\s+([a-z][\w’']*)")
_AUX = frozenset("is was are were be been has have had did does do will would can could may might must shall should".split())
_SAID = frozenset("said says told tells".split())  # stop words elsewhere, but "Who said ...?" has a subject
_REPORT_VERBS = frozenset("said says reported reports told announced confirmed wrote".split())
_CLAUSE_BREAK = re.compile(r"(?i)\b(?:that|which|who|whom|whose|and|but|after|before|when|while|because|as)\b|[;:]")


def subject_of_question_verb(question: str, sentence: str, spans=None) -> tuple[int, int] | None:
    """For "Who <verb> ...?": the sentence text span before that verb that can be its subject (same clause,
    at most 8 words back), or None. "The Foreign Ministry press office, in an email response, confirmed"
    answers "Who confirmed ...?" with what precedes "confirmed", not with a name after it."""
    m = _WHO_VERB.match(question)
    if not m or m.group(1).lower() in _AUX or (m.group(1).lower() in _STOP and m.group(1).lower() not in _SAID):
        return None
    verb = m.group(1).lower()
    spans = spans if spans is not None else _token_spans(sentence)
    for i, (a, _, w) in enumerate(spans):
        if w == verb or (len(verb) > 5 and w[:6] == verb[:6]):
            lo = max(0, i - 8)
            start = spans[lo][0]
            brk = None
            for bm in _CLAUSE_BREAK.finditer(sentence, start, a):
                brk = bm.end()
            if verb in _REPORT_VERBS:  # "..., the Asahi newspaper reported": who reported follows the comma
                comma = sentence.rfind(",", brk if brk is not None else start, a)
                if comma >= 0 and re.search(r"\b[A-Z]", sentence[comma + 1 : a]):
                    brk = comma + 1
            return (brk if brk is not None else start, a)
    return None


_SUBJECT_PRONOUN = re.compile(r"(?i)\b(?:he|she)\b")


def pronoun_subject(question: str, sentence: str) -> bool:
    """For "Who <verb> ...?": True when the subject of that verb in ``sentence`` is "he" or "she"
    ("..., he said, estimating a lockdown ... could shrink ..."): the answer is the person named before."""
    if question_kind(question) not in ("person", "name"):
        return False
    span = subject_of_question_verb(question, sentence)
    return span is not None and _SUBJECT_PRONOUN.search(sentence, span[0], span[1]) is not None


_SAID_BEFORE = re.compile(r"(?i)\b(?:said|says|told|added|according to)\s*$")


def named_people(sentence: str, article: str = "") -> list[Candidate]:
    """The people ``sentence`` names, in order: candidates the finder calls a person; or capitalised words
    ("person?") right after "said" ("said Hideo Kumano"), or whose last word ``article`` also uses alone
    ("Jonjo O'Neill" ... "O'Neill said"): people are named by surname, places and bodies ("Rugby Park")
    are not. What "he"/"she" may stand for, for /ask and for the summaries alike."""
    out = []
    for c in candidates(sentence):
        if c.kind == "person" or (c.kind == "person?" and (
            _SAID_BEFORE.search(sentence[: c.start])
            or re.search(rf"(?<!{re.escape(c.text.split()[0])} )\b{re.escape(c.text.split()[-1])}\b(?!\s+[A-Z])",
                         article.replace(c.text, ""))
        )):
            out.append(c)
    return out


def antecedent(question: str, previous: str, article: str = "") -> Phrase | None:
    """The person "he"/"she" stands for: the one person the sentence before names (a speaker: "..., said
    Hideo Kumano, chief economist"), word for word; None when it names none, or two (no guessing)."""
    qwords = set(words(question))
    people = [c for c in named_people(previous, article) if new_to_question(c.text, qwords)]
    if len({c.text.split()[-1] for c in people}) != 1:
        return None
    c = max(people, key=lambda c: len(c.text))
    f = fit("person", c.kind)
    return Phrase(c.text, display_kind(c.kind), f, f, 0.0)


_Q_COUNTED = re.compile(r"(?i)\bhow (many|much)\s+((?:[\w'’-]+\s+){0,3}[\w'’-]+)")
_IRREGULAR_PLURALS = frozenset("people children men women police staff cattle".split())
# Words that count people: "how many people" is answered by "29 Kazakh citizens" or "12 workers".
_PEOPLE = frozenset(
    """people person individual resident citizen adult child kid men man women woman worker employee patient
    victim passenger student soldier civilian migrant refugee voter member fan player officer staff
    american""".split()
)
_DEATH_Q = re.compile(r"(?i)\b(?:die|died|dies|dead|death|deaths|killed|kill|killing|fatalit)")
_DEATH = frozenset("death dead fatality killed died body".split())


def counted_noun(question: str) -> str | None:
    """The thing a "how many / how much" question counts, normalised: "citizen" in "How many Kazakh citizens
    had China detained?", "money" in "How much money ...?"; None when it names none ("How much did it cost?")."""
    m = _Q_COUNTED.search(question)
    if not m:
        return None
    ws = m.group(2).split()
    if m.group(1).lower() == "much":
        w = ws[0].lower().strip("?")
        return None if w in _AUX or w in _STOP or w in ("do", "does", "did") else _norm(w)
    for w in ws:
        lw = w.lower().strip("?")
        if lw in _AUX or lw in _STOP or lw in ("do", "does", "did"):
            return None
        if lw in _IRREGULAR_PLURALS or (len(lw) > 3 and lw.endswith("s") and not lw.endswith(("ss", "us", "is"))):
            return _norm(lw)
    return None


def counts_the_same(question: str, head: str | None, phrase: str, context: str = "") -> float:
    """1.0 when the quantity's noun is the thing counted ("29 Kazakh citizens" for "how many citizens"),
    0.5 when it counts something else ("68 new coronavirus cases" for "how many people died"), 0.85 when
    the quantity names no noun ("62 percent", "¥5.1 trillion") or the question names no counted thing.
    A question about deaths ("how many people died / were killed") takes only a count of deaths: "56
    deaths", or a count whose ``context`` (the words just around it) says so ("killing 12 people");
    "infected nearly 1,900 people" counts people, but not the dead."""
    if head is None:
        return 1.0
    nouns = [w for w in words(re.sub(r"^[^A-Za-z]*(?:\d[\d.,]*\s*)+", "", phrase)) if w not in _STOP]
    nouns = [w for w in nouns if not re.fullmatch(r"\d[\d.,]*|%|percent|cent|hundred|thousand|million|billion|"
                                                   r"trillion|bn|m|k|plu", w)]
    if _DEATH_Q.search(question):
        if any(n in _DEATH or n.startswith("death") for n in nouns) or _DEATH_Q.search(context):
            return 1.0
        return 0.5 if nouns else 0.85
    if not nouns:
        return 0.85
    if head in nouns:
        return 1.0
    if head in _PEOPLE and any(n in _PEOPLE for n in nouns):
        return 1.0
    return 0.5


def _around(sentence: str, start: int, end: int, before: int = 2, after: int = 3) -> str:
    """The few words just before and after a span of ``sentence``."""
    left = re.findall(r"[\w'’-]+", sentence[:start])[-before:]
    right = re.findall(r"[\w'’-]+", sentence[end:])[:after]
    return " ".join(left + right)


_Q_COUNTRY = re.compile(r"(?i)\b(?:which|what)\s+(?:\w+\s+)?(?:country|countries|nation|nations)\b")
# Country names (words joined by "_"), for "which country": a city, a region or a leader is not one.
_COUNTRIES = frozenset(
    w.replace("_", " ").lower()
    for w in """Afghanistan Albania Algeria Andorra Angola Argentina Armenia Australia Austria Azerbaijan Bahamas
    Bahrain Bangladesh Barbados Belarus Belgium Belize Benin Bhutan Bolivia Bosnia Botswana Brazil Brunei
    Bulgaria Burkina_Faso Burundi Cambodia Cameroon Canada Chad Chile China Colombia Comoros Congo Costa_Rica
    Croatia Cuba Cyprus Czech_Republic Czechia Denmark Djibouti Dominica Dominican_Republic Ecuador Egypt
    El_Salvador England Eritrea Estonia Eswatini Ethiopia Fiji Finland France Gabon Gambia Georgia Germany Ghana
    Greece Grenada Guatemala Guinea Guyana Haiti Honduras Hungary Iceland India Indonesia Iran Iraq Ireland
    Israel Italy Ivory_Coast Jamaica Japan Jordan Kazakhstan Kenya Kiribati Kosovo Kuwait Kyrgyzstan Laos
    Latvia Lebanon Lesotho Liberia Libya Liechtenstein Lithuania Luxembourg Madagascar Malawi Malaysia Maldives
    Mali Malta Mauritania Mauritius Mexico Micronesia Moldova Monaco Mongolia Montenegro Morocco Mozambique
    Myanmar Namibia Nauru Nepal Netherlands New_Zealand Nicaragua Niger Nigeria North_Korea North_Macedonia
    Norway Oman Pakistan Palau Palestine Panama Papua_New_Guinea Paraguay Peru Philippines Poland Portugal
    Qatar Romania Russia Rwanda Samoa San_Marino Saudi_Arabia Scotland Senegal Serbia Seychelles Sierra_Leone
    Singapore Slovakia Slovenia Somalia South_Africa South_Korea South_Sudan Spain Sri_Lanka Sudan Suriname
    Sweden Switzerland Syria Taiwan Tajikistan Tanzania Thailand Togo Tonga Trinidad Tunisia Turkey
    Turkmenistan Tuvalu Uganda Ukraine United_Arab_Emirates UAE United_Kingdom UK Britain Great_Britain
    United_States US U.S. USA America Uruguay Uzbekistan Vanuatu Vatican Venezuela Vietnam Wales Yemen Zambia
    Zimbabwe""".split()
)


def is_country(text: str) -> bool:
    """Whether a candidate names a country ("Colombia’s", "the Netherlands", "North Korea")."""
    t = re.sub(r"(?:['’]s|['’])$", "", text.strip()).lower()
    return t.removeprefix("the ") in _COUNTRIES


@dataclass(frozen=True)
class Phrase:
    text: str
    kind: str
    score: float  # fit x (1 + nearness)
    fit: float = 0.0  # how well the phrase's kind fits the question's (0..1)
    near: float = 0.0  # nearness to the question's words in the sentence (0..1)
    subject: bool = False  # the subject of the who-question's verb in the sentence ("..., the Asahi newspaper reported")


def scored_candidates(question: str, sentence: str, kind: str | None = None) -> list[Phrase]:
    """Candidates of ``sentence`` that fit the question's kind and are new to it, best first."""
    kind = kind or question_kind(question)
    if kind == "other":
        return []
    qwords = set(words(question))
    out = []
    spans = _token_spans(sentence)
    subject = subject_of_question_verb(question, sentence, spans) if kind in ("person", "name") else None
    head = counted_noun(question) if kind == "number" else None
    country = kind == "place" and _Q_COUNTRY.search(question) is not None
    for c in candidates(sentence):
        f = fit(kind, c.kind)
        if head is not None and c.kind == "number":
            f *= counts_the_same(question, head, c.text, _around(sentence, c.start, c.end))
        if country and f > 0:
            f = 1.0 if is_country(c.text) else f * 0.5  # "which country": Tokyo, Luzon, Kim Jong Un are not
        if f <= 0 or not new_to_question(c.text, qwords):
            continue
        if c.kind == "number" and not new_to_question(" ".join(re.findall(r"\d[\d.,]*", c.text)) or c.text, qwords):
            continue  # the quantity itself is the question's ("the 29 detained"), only its noun is new
        if kind == "number" and c.kind == "number" and re.fullmatch(r"(?:in )?(?:19|20)\d\d", c.text):
            f *= 0.3  # a bare year is rarely the quantity asked for
        near = nearness(sentence, c, qwords, spans)
        is_subject = subject is not None and subject[0] <= c.start and c.end <= subject[1]
        if is_subject:
            near = 1.0  # the subject of the question's verb
        out.append(Phrase(c.text, display_kind(c.kind), f * (1.0 + near), f, near, is_subject))
    out.sort(key=lambda p: -p.score)
    return out


# "Which countries ...?", "What companies ...?": a question that asks for several
_Q_PLURAL = re.compile(r"(?i)\b(?:which|what)\s+(?:\w+\s+)?(countries|nations|cities|states|companies|firms|teams|"
                       r"clubs|people|players|leaders|airlines|banks|groups|regions|areas|places|parties|brands)\b")
# what may stand between two members of a list of names: ", ", " and ", ", and ", " and most of the "
_LIST_GAP = re.compile(r"(?i)\s*(?:,\s*(?:and\s+|or\s+)?|\s+and\s+|\s+or\s+)"
                       r"(?:(?:most|parts|much|all|some|part)\s+of\s+)?(?:the\s+)?")


def whole_list(question: str, sentence: str, phrase: str) -> str:
    """For a question that asks for several ("Which countries ...?"): ``phrase`` grown to the whole list of
    names it stands in, word for word from ``sentence`` ("United States" -> "United States, China, South
    Korea and most of Europe"); else ``phrase`` as it is."""
    if not _Q_PLURAL.search(question):
        return phrase
    names = [c for c in candidates(sentence) if c.kind in ("place", "name", "person", "person?")]
    at = next((i for i, c in enumerate(names) if c.text == phrase), None)
    if at is None:
        return phrase
    def gap(i: int) -> str | None:  # what joins names[i] and names[i + 1]: "and", "," or None (no list)
        m = _LIST_GAP.fullmatch(sentence[names[i].end : names[i + 1].start])
        if m is None:
            return None
        return "and" if re.search(r"(?i)\b(?:and|or)\b", m.group(0)) else ","

    def holds_and(i: int) -> bool:  # one candidate may hold the list's end already: "France and Italy"
        return re.search(r"\s(?:and|or|&)\s", names[i].text) is not None

    # a list is "A, B, C and D": commas, then one "and"/"or" before its last name, which ends it
    lo = hi = at
    closed = holds_and(at)
    while hi + 1 < len(names) and not closed:
        g = gap(hi)
        if g is None:
            break
        hi, closed = hi + 1, g == "and" or holds_and(hi + 1)
    if not closed:
        hi = at  # no "and" ahead: no list to the right that is sure to end there
        if at == 0 or gap(at - 1) != "and":
            return phrase  # nor is it a list's last name ("Europe, the Asahi newspaper")
    ands = 1 if closed else 0
    while lo > 0:
        g = gap(lo - 1)
        if g is None or (g == "and" and ands):
            break
        ands += g == "and"
        lo -= 1
    if not ands:
        return phrase  # a run of commas with no "and" is no list ("Paris, France"; "..., the Asahi newspaper")
    return sentence[names[lo].start : names[hi].end] if hi > lo else phrase


def best_phrase(question: str, sentence: str, others: list[str] | None = None, kind: str | None = None
                ) -> Phrase | None:
    """The short answer in ``sentence``: the best-fitting new candidate, helped by agreement with ``others``.

    ``others``: the other retrieved sentences; a candidate whose new words recur there scores higher.
    """
    found = scored_candidates(question, sentence, kind)
    if not found:
        return None
    if others:
        qwords = set(words(question))
        other_words = [set(words(o)) for o in others]
        rescored = []
        for p in found:
            key = {w for w in words(p.text) if w not in _STOP and w not in qwords}
            agree = sum(1 for ow in other_words if key and key <= ow)
            rescored.append(Phrase(p.text, p.kind, p.score * (1.0 + 0.25 * min(agree, 2)), p.fit, p.near,
                                   p.subject))
        # the subject of a who-question's verb is read off the sentence's structure: names the other sentences
        # repeat ("South Korea" in a list) do not outvote it
        found = sorted(rescored, key=lambda p: (-p.subject, -p.score))
    best = found[0]
    grown = whole_list(question, sentence, best.text)
    return best if grown == best.text else Phrase(grown, best.kind, best.score, best.fit, best.near, best.subject)
