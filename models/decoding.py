"""The copy constraint, defined once, and its translation for each generator backend.

An abstractive line may only be a *meaning-safe compression* of its support
sentence: the sentence's own words (units) in order, with only a few kinds of
deletion allowed (see :class:`CopyConstraint`). The rule lives here, beside
the models, and each backend takes it in the form it understands:

* **transformers** (in-process PyTorch): :class:`CopyLogits`, a logits
  processor that masks every token that would leave the constraint, with a
  small bonus for ending early (:func:`transformers_copy_generate`);
* **llama.cpp** (in-process through xllamacpp, or a llama.cpp server, or a
  server whose guided decoding takes GBNF): :func:`gbnf`, a grammar built
  from the support sentence(s) that accepts exactly the same unit sequences;
* **any other server** (Ollama, which only takes a JSON schema): generate
  freely, then keep the output only when :func:`satisfies` finds it is such a
  compression, checked word by word against the support.

The grammar and the check work on units (words and punctuation), so they
are blind to how a tokenizer splits them; the logits processor works on
token ids and admits only each unit's own tokenisation. Both walk the same
unit automaton (:meth:`CopyConstraint.next_units` / :meth:`~CopyConstraint.may_stop`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np


def _torch():
    import torch

    return torch


_UNIT = re.compile(r"\w+(?:[’'\-.,/&]\w+)*|[^\w\s]")
_PROTECTED = frozenset(
    """not no never nor neither none nobody nothing nowhere cannot without
    may might could would should must can
    allegedly alleged alleges allege reportedly reported reports apparently possibly probably likely unlikely
    perhaps suspected suspect believed believe believes claimed claims claim accused accuses denied denies deny
    rumoured rumored purportedly supposedly if unless whether
    said says say told tells according insisted insists warned warns added adds
    former ex acting deputy vice interim assistant late would-be
    only almost nearly about around approximately roughly more less fewer than over under least up some
    another""".split()
)
# attribution words: protected inside a compression, but a span may end before one or start after it
# ("the Kazakh Foreign Ministry" | said; said | "on Tuesday")
_ATTRIBUTION = frozenset("said says say told tells according insisted insists warned warns added adds reported reports".split())
_HEDGES = frozenset(
    """claim claims claimed claiming alleges alleged allegedly allegation allegations reportedly rumoured rumored
    suspected accused accuses purportedly supposedly believed denied denies deny""".split()
)
_BOUNDARY = frozenset(
    {",", ";", ":", "-", "–", "—", "(", "and", "but", "which", "who", "whom", "whose", "where", "while", "when",
     "after", "before", "with", "following", "because", "since", "amid", "despite", "although", "though",
     "including", "so", "or", "until", "in", "on", "at", "for", "from", "by", "during"}
)  # fmt: skip
_UNIT_WORDS = frozenset(
    "% per cent percent hundred thousand million billion trillion bn m k years year months month weeks week days "
    "day hours hour minutes miles mile km kilometres kilometers metres meters feet ft pounds lb kg tonnes tons "
    "people".split()
)
_PHRASE_START = frozenset(
    "in on at for from by during with without near after before over under into onto across through "
    "between among against around toward towards despite amid via like".split()
)
_DETERMINERS = frozenset("a an the his her its their this that these those one".split())
_OPENERS = _PHRASE_START | frozenset(
    "however meanwhile but and so yet also still now then earlier later instead today yesterday last this".split()
)
_VERBS = frozenset(
    """is are was were be been being am has have had will would can could shall should may might must do does
    did said says say told tells made makes took takes gave gives came comes went goes left found finds got
    gets saw sees won wins lost became becomes began begins brought bought built held holds kept keeps led
    leads met meets paid pays put puts ran runs sent sends set sets shot sold sells stood stands struck threw
    wrote writes hit hits fell falls flew grew knew rose spoke stole wore drew drove broke chose hid lay rode
    sang sank shook slept spent stuck swam swore taught thought understood woke want wants needs plans faces
    face remains remain seems seem appears appear allows allow""".split()
)
# a span answer does not end on one of these ("traveling from the", "the ship was")
_FUNCTION = (_DETERMINERS - {"one"}) | _PHRASE_START | frozenset(
    """and or but nor to of that than as is are was were be been being am has have had will shall do does did
    s 's ’s""".split()
)
_NOT_VERBS = frozenset("hundred speed indeed need seed feed breed bleed greed creed embed".split())
_TITLE_ABBR = frozenset("mr mrs ms dr prof st gen sen rep gov lt col capt sgt rev".split())
_CURRENCY = frozenset("$£€¥")
_BULLETS = frozenset("•·*-–—>")
_CLOSERS = frozenset("'\"’”)]»")
_TERMINAL = frozenset(".!?")
_NEG_SUFFIX = ("n't", "n’t")


def _is_number(u: str) -> bool:
    return bool(re.fullmatch(r"\d[\d,./]*\w*", u))


def _is_capital(u: str) -> bool:
    return u[:1].isupper()


def _verb_like(w: str) -> bool:
    """A rough finite-verb test (no tagger): auxiliaries, common verbs, regular past tense."""
    if w in _VERBS:
        return True
    return len(w) >= 5 and w.endswith("ed") and w not in _NOT_VERBS


@dataclass
class _Unit:
    text: str
    space: bool  # whitespace before it in the source
    lead: list[int] = field(default_factory=list)  # token ids when it starts the output
    cont: list[int] = field(default_factory=list)  # token ids when it follows other output


class CopyConstraint:
    """Which tokens may come next so the output is a meaning-safe compression of ``source``.

    The output is the source's units (words and punctuation) in order, token
    for token, with only these deletions (each must skip no protected word:
    negation, modal, hedge, attribution, ``former``/``deputy``, quantifier):

    * an aside between two commas or dashes, ``Leon Yeaman, 55, was`` (only
      when it holds no verb, or is a relative clause: ``, who had ...,``);
    * a verb-less phrase from a preposition up to a comma,
      ``club on Friday morning, with`` -> ``club, with``;
    * a parenthesis;
    * a verb-less opening phrase up to a comma (``Speaking in ..., the``) or
      leading punctuation (bullets);
    * everything after a clause boundary, once a verb has been kept (the
      output then takes the sentence's closing punctuation and ends).

    Names, a currency and its number, a number and its unit, ``Mr`` and the
    name after it are never split. ``allowed(generated_ids)`` gives the
    permitted next token ids (an NFA over (unit, token, variant, verb kept)
    states, cached by prefix). ``strict=True`` allows only the last rule.

    ``span=True`` (``/ask``'s short answers): the output is one unbroken run of
    the source's words instead, from any word to any later one, that does not
    split a name, a number from its unit or ``Mr`` from the name, does not start
    just after a protected word (``not`` | ``killed``, ``more than`` | ``2,000``)
    and does not end just before one (``was`` | ``not``).
    """

    def __init__(self, encode, source: str, eos_ids=(), strict: bool = False, span: bool = False) -> None:
        units: list[_Unit] = []
        for m in _UNIT.finditer(source):
            space = m.start() > 0 and source[m.start() - 1].isspace()
            text = m.group()
            if encode is None:  # text level only (grammar, word-by-word check): no token ids
                lead = cont = [-1]
            else:
                lead = list(encode(text))
                cont = list(encode((" " if space else "") + text)) if units else lead
            if lead and cont:
                units.append(_Unit(text, space, lead, cont))
        self.units = units
        self.eos = list(eos_ids)
        self.strict = strict or span
        self.span = span
        n = len(units)
        low = [u.text.lower() for u in units]
        self.low = low
        self.punct = [not re.match(r"\w", u.text) for u in units]
        self.protected = [w in _PROTECTED or w.endswith(_NEG_SUFFIX) for w in low]
        # a span may not start just after, or end just before, one of these (negation, modal, hedge, quantifier)
        self.guard = [p and w not in _ATTRIBUTION for p, w in zip(self.protected, low)]
        self.verb = [_verb_like(w) for w in low]
        # hard[k]: units k and k+1 stay together (no skip between, no end after k, no landing on k+1)
        hard = [False] * n
        name = [False] * n  # units k and k+1 belong to one name: no skip or end after k
        for k in range(n - 1):
            a, b = units[k].text, units[k + 1].text
            al, bl = low[k], low[k + 1]
            numberish = _is_number(a) or (al in _UNIT_WORDS and k > 0 and hard[k - 1])
            if a in _CURRENCY or (numberish and (bl in _UNIT_WORDS or bl.startswith("year-old"))):
                hard[k] = True
            elif al == "per" and bl == "cent":
                hard[k] = True
            elif al in _TITLE_ABBR and (b == "." or _is_capital(b)):
                hard[k] = True
            elif a == "." and k > 0 and low[k - 1] in _TITLE_ABBR:
                hard[k] = True
            elif al in _PROTECTED and _is_number(b):
                hard[k] = True  # "more than 2,000", "about 30"
            elif _is_capital(a) and a[0].isalpha() and _is_capital(b) and b[0].isalpha() and b != "I":
                name[k] = True
        self.hard, self.name = hard, name
        # the closing block: final . ! ? and any closing quotes or brackets after it
        end = n
        while end > 0 and units[end - 1].text in _CLOSERS:
            end -= 1
        self.end = end - 1 if end > 0 and units[end - 1].text in _TERMINAL else None
        self.body_end = self.end if self.end is not None else n
        self.prot_prefix = np.concatenate([[0], np.cumsum(self.protected)]).astype(int)
        self.verb_prefix = np.concatenate([[0], np.cumsum(self.verb)]).astype(int)
        # hedge_after[j]: a hedge ("claims", "allegedly") follows unit j; cutting it off would state a claim as fact
        hedges = [w in _HEDGES for w in low] + [False]
        self.hedge_after = [any(hedges[j + 1 :]) for j in range(n)]
        self._jumps = [self._mid_jumps(j) for j in range(n)]
        self._starts = self._start_units()
        self._cache: dict[tuple[int, ...], frozenset] = {}

    # unit-level rules --------------------------------------------------------
    def _count(self, prefix: np.ndarray, a: int, b: int) -> int:
        """How many flagged units among units[a:b]."""
        return int(prefix[b] - prefix[a]) if b > a else 0

    def _may_land(self, k: int) -> bool:
        """May the output continue at unit k after skipping unit k - 1?"""
        if k == 0:
            return True
        if self.hard[k - 1]:
            return False
        # inside a name only on its last word ("Wright" of "Ian Wright")
        return not (self.name[k - 1] and k < len(self.units) - 1 and self.name[k])

    def _may_leave(self, j: int) -> bool:
        """May the output skip what follows unit j, or end after it?"""
        return not (self.hard[j] or self.name[j])

    def _start_units(self) -> list[int]:
        n = len(self.units)
        if n == 0:
            return []
        if self.span:  # any word a span may open on
            return [k for k in range(self.body_end) if not self.punct[k] and self._may_land(k)
                    and not (k > 0 and self.guard[k - 1])]
        k0, first_allowed = 0, 0
        if self.units[0].text == "(":  # "(CNN)The ...": a leading source tag goes
            close = next((k for k in range(1, min(n, 8)) if self.units[k].text == ")"), None)
            if close is not None and close + 1 < self.body_end:
                k0 = first_allowed = close + 1
        while k0 < self.body_end - 1 and self.units[k0].text in _BULLETS:
            k0 += 1  # leading bullets and dashes are optional (quotes are not: they must stay paired)
        out = sorted({first_allowed, k0})
        first = self.low[k0]
        if self.strict or not (first in _OPENERS or first.endswith(("ing", "ly"))):
            return out  # only an adverbial opening may go, never the subject
        for k in range(k0 + 1, self.body_end):
            if self.units[k - 1].text in (",", ":") and self._may_land(k):
                if not self._count(self.prot_prefix, 0, k) and not self._count(self.verb_prefix, 0, k):
                    out.append(k)
                    break
        return out

    def _mid_jumps(self, j: int) -> list[int]:
        n = len(self.units)
        if self.strict or j + 2 >= self.body_end or not self._may_leave(j) or self.punct[j]:
            return []
        first = self.units[j + 1].text
        out: list[int] = []

        def ok(a: int, b: int) -> bool:  # skipping units[a:b] and landing on b
            return b < self.body_end and self._may_land(b) and not self._count(self.prot_prefix, a, b)

        if first in (",", "-", "–", "—"):
            for c in range(j + 2, self.body_end):
                if self.units[c].text == first:
                    relative = self.low[j + 2] in ("who", "which", "whose", "whom", "where")
                    if c > j + 2 and ok(j + 1, c + 1) and (relative or not self._count(self.verb_prefix, j + 1, c)):
                        out.append(c + 1)
                    break
        elif first == "(":
            for c in range(j + 2, self.body_end):
                if self.units[c].text == ")":
                    if ok(j + 1, c + 1):
                        out.append(c + 1)
                    break
        elif self.low[j + 1] in _PHRASE_START:
            for c in range(j + 2, self.body_end):
                if self.units[c].text in (",", ";"):
                    # not when what follows the comma may describe the dropped phrase (an apposition)
                    after = self.units[c + 1].text if c + 1 < len(self.units) else "."
                    apposition = after.lower() in _DETERMINERS or _is_capital(after)
                    if ok(j + 1, c) and not self._count(self.verb_prefix, j + 1, c) and not apposition:
                        out.append(c)
                    break
        return [k for k in out if k < n]

    def _list_goes_on(self, j: int) -> bool:
        """Does a list of names go on after unit j ("the United States | , China, South Korea and ...";
        "Paris | , France")? A span ending there would give part of the list as the whole answer."""
        n = len(self.units)
        if j + 2 >= n or not _is_capital(self.units[j].text):
            return False
        nxt, after = self.low[j + 1], self.units[j + 2].text
        if nxt in ("and", "or", "&"):  # "Tom | and Jerry"; "China, South Korea | and most of Europe"
            return _is_capital(after) or "," in (u.text for u in self.units[max(0, j - 4) : j])
        return nxt in (",", ";") and (_is_capital(after) or (after.lower() in ("and", "or") and j + 3 < n
                                                             and _is_capital(self.units[j + 3].text)))

    def _ends_clause(self, j: int) -> bool:
        """Is unit j the last before a clause boundary (so the output may end after it)?"""
        if j + 1 >= self.body_end or not self._may_leave(j) or self.punct[j] or self.hedge_after[j]:
            return False
        nxt = self.low[j + 1]
        return (nxt in _BOUNDARY or nxt in (",", ";", ":", "-", "–", "—", "(")) and not self.protected[j + 1]

    def next_units(self, j: int, verb: bool) -> list[int]:
        """Units that may follow unit j (j = -1: the first unit); ``verb``: a verb was kept."""
        if j == -1:
            return list(self._starts)
        out = [j + 1] if j + 1 < len(self.units) else []
        if self.span:
            return out
        out.extend(self._jumps[j])
        if self.end is not None and self.end > j + 1 and verb and self._ends_clause(j):
            out.append(self.end)
        return out

    def may_stop(self, j: int, verb: bool) -> bool:
        """May the output end after unit j?"""
        if j == len(self.units) - 1:
            return True
        if self.span:
            return (j < self.body_end and not self.punct[j] and self._may_leave(j) and self.low[j] not in _FUNCTION
                    and not (j + 1 < len(self.units) and self.guard[j + 1]) and not self._list_goes_on(j))
        return self.end is None and verb and self._ends_clause(j)

    # token level -------------------------------------------------------------
    def _ids(self, k: int, v: int) -> list[int]:
        return self.units[k].cont if v else self.units[k].lead

    def _states(self, gen: tuple[int, ...]) -> frozenset:
        """NFA states after ``gen``: (unit, its tokens emitted, variant 0=lead/1=cont, verb kept)."""
        if gen in self._cache:
            return self._cache[gen]
        if not gen:
            states = frozenset((k, 0, 0, False) for k in self.next_units(-1, False))
        else:
            t = gen[-1]
            states = frozenset(
                (k, p + 1, v, vb) for k, p, v, vb in self._expand(self._states(gen[:-1])) if self._ids(k, v)[p] == t
            )
        self._cache[gen] = states
        return states

    def _expand(self, states: frozenset) -> set:
        """Completed units open the units that may follow them."""
        out = set()
        for k, p, v, vb in states:
            if p < len(self._ids(k, v)):
                out.add((k, p, v, vb))
            else:
                vb2 = vb or self.verb[k]
                out.update((k2, 0, 1, vb2) for k2 in self.next_units(k, vb2))
        return out

    def allowed(self, gen) -> list[int]:
        return self.options(gen)[0]

    def last_stop(self, gen: list[int]) -> tuple[int, str] | None:
        """For output cut off by the token budget: (tokens to keep, text to append) so it
        ends at the last point where ending was allowed, or None if there was none."""
        tail = "".join(u.text for u in self.units[self.end :]) if self.end is not None else ""
        for n in range(len(gen), 0, -1):
            for k, p, v, vb in self._states(tuple(int(t) for t in gen[:n])):
                if p < len(self._ids(k, v)):
                    continue
                vb2 = vb or self.verb[k]
                if self.may_stop(k, vb2):
                    return n, ""
                if self.end is not None and self.end in self.next_units(k, vb2) and self.end > k + 1:
                    return n, tail
        return None

    def options(self, gen) -> tuple[list[int], set[int], set[int]]:
        """(allowed next ids, ids that end the output early, ids that skip words) after ``gen``."""
        gen = tuple(int(t) for t in gen)
        if gen and gen[-1] in self.eos:
            return self.eos, set(), set()
        states = self._states(gen)
        out: set[int] = set()
        ending: set[int] = set()
        skipping: set[int] = set()
        copying: set[int] = set()
        last = len(self.units) - 1
        for k, p, v, vb in states:
            ids = self._ids(k, v)
            if p < len(ids):
                copying.add(ids[p])
                continue
            vb2 = vb or self.verb[k]
            if self.may_stop(k, vb2):
                out.update(self.eos)
                if k != last:
                    ending.update(self.eos)
            for k2 in self.next_units(k, vb2):
                t = self._ids(k2, 1)[0]
                if k2 == k + 1:
                    copying.add(t)
                elif k2 == self.end:
                    ending.add(t)
                else:
                    skipping.add(t)
        out |= copying | ending | skipping
        if not out:
            return self.eos, set(), set()
        return sorted(out), ending - copying, skipping - copying - ending


class CopyLogits:
    """Logits processor: mask to :class:`CopyConstraint`, nudge towards shorter output.

    Ending early earns ``end_bonus`` per token generated beyond ``target_tokens``;
    skipping an aside earns ``skip_bonus``. Both are small next to the model's
    own preferences for fluent text; greedy decoding stays deterministic.
    """

    def __init__(self, constraint: CopyConstraint, start: int, target_tokens: int, end_bonus: float, skip_bonus: float):
        self.c = constraint
        self.start = start
        self.target = target_tokens
        self.end_bonus = end_bonus
        self.skip_bonus = skip_bonus

    def __call__(self, input_ids, scores):
        torch = _torch()
        out = torch.full_like(scores, float("-inf"))
        for row in range(scores.shape[0]):
            gen = input_ids[row, self.start :].tolist()
            allowed, ending, skipping = self.c.options(gen)
            idx = torch.tensor(allowed, dtype=torch.long, device=scores.device)
            out[row, idx] = scores[row, idx]
            over = len(gen) - self.target
            if ending and over > 0 and self.end_bonus:
                e = torch.tensor(sorted(ending), dtype=torch.long, device=scores.device)
                out[row, e] += self.end_bonus * over
            if skipping and self.skip_bonus:
                sk = torch.tensor(sorted(skipping), dtype=torch.long, device=scores.device)
                out[row, sk] += self.skip_bonus
        return out



# --------------------------------------------------------------------------- unit level: grammar and check


def _supports(support: str | Sequence[str]) -> list[str]:
    items = [support] if isinstance(support, str) else list(support)
    return [s for s in items if s and s.strip()]


def _constraints(support: str | Sequence[str], strict: bool, span: bool = False) -> list[CopyConstraint]:
    return [c for c in (CopyConstraint(None, s, strict=strict, span=span) for s in _supports(support)) if c.units]


def _gbnf_literal(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _live_after(c: CopyConstraint) -> dict[tuple[int, bool], bool]:
    """(unit k emitted, verb kept) -> can the output still end correctly from there?"""
    live: dict[tuple[int, bool], bool] = {}
    for k in range(len(c.units) - 1, -1, -1):  # next units always lie ahead: a DAG, solved backwards
        for vb in (False, True):
            ok = c.may_stop(k, vb)
            if not ok:
                for k2 in c.next_units(k, vb):
                    if live.get((k2, vb or c.verb[k2])):
                        ok = True
                        break
            live[(k, vb)] = ok
    return live


def _grammar_rules(c: CopyConstraint, prefix: str) -> tuple[list[str], list[str]]:
    """(rules, alternatives for the root) accepting exactly the unit sequences the constraint allows."""
    live = _live_after(c)
    rules: list[str] = []
    seen: set[tuple[int, bool]] = set()
    todo: list[tuple[int, bool]] = []

    def after(k: int, vb: bool) -> str:
        key = (k, vb)
        if key not in seen:
            seen.add(key)
            todo.append(key)
        return f"{prefix}a{k}-{int(vb)}"

    roots = []
    for k in c.next_units(-1, False):
        vb = c.verb[k]
        if live.get((k, vb)):
            roots.append(f"{_gbnf_literal(c.units[k].text)} {after(k, vb)}")
    while todo:
        k, vb = todo.pop()
        alts = []
        for k2 in c.next_units(k, vb):
            vb2 = vb or c.verb[k2]
            if live.get((k2, vb2)):
                u = c.units[k2]
                alts.append(f"{_gbnf_literal((' ' if u.space else '') + u.text)} {after(k2, vb2)}")
        if c.may_stop(k, vb):
            alts.append('""')
        rules.append(f"{prefix}a{k}-{int(vb)} ::= " + " | ".join(alts))
    return rules, roots


def gbnf(support: str | Sequence[str], *, strict: bool = False, span: bool = False) -> str | None:
    """A GBNF grammar (llama.cpp) accepting exactly the compressions :class:`CopyConstraint` allows
    of one of the ``support`` sentences (``span``: the unbroken runs of words it allows); None when no
    output is possible (an empty support)."""
    rules: list[str] = []
    roots: list[str] = []
    for i, c in enumerate(_constraints(support, strict, span)):
        r, alts = _grammar_rules(c, f"s{i}-")
        rules.extend(r)
        roots.extend(alts)
    if not roots:
        return None
    return "\n".join(["root ::= " + " | ".join(roots), *sorted(rules)]) + "\n"


def _walk(c: CopyConstraint, words: list[str]) -> list[set[tuple[int, bool]]]:
    """The automaton's states (unit emitted, verb kept) after each of ``words``."""
    texts = [u.text for u in c.units]
    out: list[set[tuple[int, bool]]] = []
    states: set[tuple[int, bool]] = set()
    for i, w in enumerate(words):
        if i == 0:
            # the first word may differ in the case of its first letter ("the ship" -> "The ship")
            nxt = {
                (k, c.verb[k])
                for k in c.next_units(-1, False)
                if texts[k] == w or (texts[k][:1].lower() == w[:1].lower() and texts[k][1:] == w[1:])
            }
        else:
            nxt = {(k2, vb or c.verb[k2]) for k, vb in states for k2 in c.next_units(k, vb) if texts[k2] == w}
        if not nxt:
            break
        out.append(nxt)
        states = nxt
    return out


def satisfies(output: str, support: str | Sequence[str], *, strict: bool = False, span: bool = False) -> bool:
    """Is ``output`` a compression the copy constraint allows of one of the ``support`` sentences?

    Checked word by word (units: words and punctuation; spacing is ignored): the
    server-side check for backends that cannot constrain decoding."""
    words = _UNIT.findall(output or "")
    if not words:
        return False
    for c in _constraints(support, strict, span):
        path = _walk(c, words)
        if len(path) == len(words) and any(c.may_stop(k, vb) for k, vb in path[-1]):
            return True
    return False


def truncate(output: str, support: str | Sequence[str], *, strict: bool = False, span: bool = False) -> str:
    """Output cut off by the token budget, backed up to the last point where the constraint lets
    it end (adding the sentence's closing punctuation where it may jump there); '' if none."""
    matches = list(_UNIT.finditer(output or ""))
    words = [m.group() for m in matches]
    best = ""
    for c in _constraints(support, strict, span):
        path = _walk(c, words)
        tail = "".join(u.text for u in c.units[c.end :]) if c.end is not None else ""
        for n in range(len(path), 0, -1):
            cut = output[: matches[n - 1].end()]
            got = None
            for k, vb in path[n - 1]:
                if c.may_stop(k, vb):
                    got = cut
                    break
                if c.end is not None and c.end in c.next_units(k, vb) and c.end > k + 1:
                    got = cut + tail
            if got is not None:
                if len(got) > len(best):
                    best = got
                break
    return best.strip()


# --------------------------------------------------------------------------- transformers


def transformers_copy_generate(
    gen: Any,
    prompt: str,
    source: str,
    *,
    strict: bool = False,
    max_new_tokens: int = 80,
    target_tokens: int = 20,
    end_bonus: float = 0.15,
    skip_bonus: float = 0.0,
    lookup_tokens: int = 10,
    span: bool = False,
    system: str | None = None,
) -> tuple[str, int]:
    """Copy-constrained greedy generation with a transformers model: (text, tokens generated).

    ``gen`` has ``model`` and ``tokenizer`` (and optionally ``_render``,
    ``has_chat_template``, ``is_seq2seq``, ``device``): a
    :class:`models.generator.Generator` or anything shaped like one. Decoding
    uses prompt-lookup speculation on causal models (the source is in the
    prompt), which is exactly greedy and faster on copy-heavy output."""
    tok = gen.tokenizer
    model = gen.model
    torch = _torch()
    seq2seq = bool(getattr(gen, "is_seq2seq", False))
    render = getattr(gen, "_render", None)
    if render is not None:
        text = render(prompt, system)
        add_special = not getattr(gen, "has_chat_template", False)
    elif not seq2seq and getattr(tok, "chat_template", None):
        messages = [{"role": "user", "content": prompt}]
        if system and system.strip():
            messages.insert(0, {"role": "system", "content": system})
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        add_special = False
    else:
        text, add_special = prompt, True
    enc = tok([text], return_tensors="pt", add_special_tokens=add_special)
    device = getattr(gen, "device", "cpu")
    enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    gc = copy.deepcopy(model.generation_config)
    gc.max_length = None
    gc.min_length = None
    gc.min_new_tokens = None
    gc.max_new_tokens = int(max_new_tokens)
    gc.num_beams = 1
    gc.do_sample = False
    gc.temperature = gc.top_k = gc.top_p = None
    gc.no_repeat_ngram_size = None
    gc.repetition_penalty = 1.0
    gc.early_stopping = False
    gc.length_penalty = None
    if gc.pad_token_id is None:
        gc.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eos = gc.eos_token_id if gc.eos_token_id is not None else tok.eos_token_id
    eos_ids = [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None]
    if gc.eos_token_id is None:
        gc.eos_token_id = eos_ids
    if not seq2seq and lookup_tokens:
        gc.prompt_lookup_num_tokens = int(lookup_tokens)

    def encode(s: str) -> list[int]:
        return tok(s, add_special_tokens=False)["input_ids"]

    cons = CopyConstraint(encode, source, eos_ids, strict=strict, span=span)
    if not cons.units:
        return "", 0
    start = 1 if seq2seq else enc["input_ids"].shape[1]

    from transformers import LogitsProcessorList

    proc = CopyLogits(cons, start, target_tokens, end_bonus, skip_bonus)
    with torch.inference_mode():
        out = model.generate(**enc, generation_config=gc, logits_processor=LogitsProcessorList([proc]))
    new = [int(t) for t in out[0, start:].tolist()]
    n_new = len(new)
    while new and new[-1] == gc.pad_token_id and new[-1] not in eos_ids:
        new.pop()
    if new and new[-1] in eos_ids:
        return tok.decode(new, skip_special_tokens=True).strip(), n_new
    if span:  # out of tokens: a span that long is no short answer
        return "", n_new
    # Out of tokens mid-sentence: back to the last point where it could have ended.
    keep = cons.last_stop(new)
    if keep is None:
        return "", n_new
    n, tail = keep
    return (tok.decode(new[:n], skip_special_tokens=True) + tail).strip(), n_new
