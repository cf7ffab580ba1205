"""Prompt slots: what a prompt asks for, in a form two wordings of it share.

The semantic cache's method (``method: "slots"``). A prompt is normalised (case, punctuation,
filler such as "a photo of" or "product photo", plural and verb forms, synonyms) and split
into phrases at commas and prepositions. From them come the slots a hit must agree on:

- ``bag``: every content concept (objects, attributes, styles, settings), order-free;
- ``quoted``: text to render, verbatim (case kept: "OPEN" and "open" are other letters);
- ``negated``: what the prompt excludes ("without a handle", "no people", "sugar-free");
- ``bindings``: which object each colour, material, pattern, size or age belongs to, so "a red
  chair and a blue table" is not "a blue chair and a red table";
- ``counts``: numbers per object ("two cats" is not "cats"; "one cat" agrees with "a cat");
- ``relations``: which object each preposition governs ("a cat on a box" is not "a cat in a
  box"); a phrase with no preposition on one side ("a mug, marble countertop") agrees.

Only ``soft`` words (praise and polish: "beautiful", "clean", "premium") may differ, and then
the embedding of the normalised prompts decides (``limner.cache.worker``). Slots are pure
Python over word lists (``limner.cache.lexicon``) and lemminflect's dictionaries: about
0.1 ms a prompt, no model, no torch, so the index of a model's entries is a dict.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from limner.cache import lexicon as lx

VERSION = f"slots-{lx.VERSION}"


@dataclass(frozen=True)
class PromptSlots:
    bag: frozenset[str]
    soft: frozenset[str]
    quoted: tuple[str, ...]
    negated: frozenset[str]
    bindings: frozenset[tuple[str, str]]
    counts: tuple[tuple[str, str], ...]
    relations: frozenset[tuple[str, str]]
    text: str  # the normalised prompt, for the embedding

    @property
    def key(self) -> str:
        """What must be equal for a hit: the index groups entries by it."""
        canonical = json.dumps([sorted(self.bag), list(self.quoted), sorted(self.negated)], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]

    def explain(self) -> dict[str, object]:
        return {
            "content": sorted(self.bag),
            "soft": sorted(self.soft),
            "quoted": list(self.quoted),
            "negated": sorted(self.negated),
            "bindings": sorted(f"{a}->{h}" for a, h in self.bindings),
            "counts": dict(self.counts),
            "relations": sorted(f"{p} {h}" for p, h in self.relations),
        }


# -- lookup tables, built once from the lexicon ------------------------------------------------


def _tables() -> tuple[dict[str, tuple[str, str]], dict[tuple[str, ...], tuple[str, ...]]]:
    words: dict[str, tuple[str, str]] = {}
    phrases: dict[tuple[str, ...], tuple[str, ...]] = {p: () for p in lx.FILLER_PHRASES}
    phrases.update(lx.PHRASES)

    def add(word: str, kind: str, value: str) -> None:
        if "-" in word:  # hyphens become spaces before lookup: a hyphenated word is a phrase
            phrases.setdefault(tuple(word.split("-")), (value,) if kind != "filler" else ())
        words.setdefault(word, (kind, value))

    for canonical, members in lx.SOFT.items():
        for word in (canonical, *members):
            add(word, "soft", canonical)
    for canonical, members in lx.PREPOSITIONS.items():
        for word in (canonical, *members):
            add(word, "prep", canonical)
    for canonical, members in lx.SYNONYMS.items():
        for word in (canonical, *members):
            add(word, "word", canonical)
    for word in lx.STOP:
        add(word, "stop", word)
    for word in lx.FILLER:
        add(word, "filler", word)
    for word in lx.BOUNDARIES:
        add(word, "boundary", word)
    for word in lx.NEGATORS:
        add(word, "neg", word)
    for word, number in lx.NUMBERS.items():
        add(word, "number", str(number))
    for word in lx.SEVERAL:
        add(word, "number", "several")
    add(lx.MADE_OF, "made-of", lx.MADE_OF)
    return words, phrases


WORDS, PHRASES = _tables()
MAX_PHRASE = max(len(p) for p in PHRASES)
ATTRIBUTES = lx.COLOURS | lx.MATERIALS | lx.PATTERNS | lx.SIZES | lx.AGES
NOUNISH = lx.COLOURS | lx.MATERIALS  # attribute words that also name a thing ("an orange", "glass")
# Double quotes of any kind, or single quotes that open after a space and close before one
# (an apostrophe in "kid's" is no quote). \u201c\u201d \u2018\u2019: typographic quotes.
QUOTES = re.compile(
    '"([^"]+)"|\u201c([^\u201d]+)\u201d|\u00ab([^\u00bb]+)\u00bb|\u201e([^\u201c\u201d]+)[\u201c\u201d]'
    "|(?:^|(?<=[\\s(\\[:,;]))['\u2018]([^'\u2019]+)['\u2019](?=$|[\\s).,;:!?\\]])"
)
BODY = re.compile(r"\b([a-z]+)[- ](" + "|".join(lx.BODY_SUFFIXES) + r")\b")
TOKENS = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?|[,;:.!?&+/|]")


@lru_cache(maxsize=65536)
def lemma(word: str) -> str:
    """The dictionary form: plural nouns singular, verb forms base; -ing forms and words that
    are their own noun ("glasses", "shorts", "jeans") stay as they are."""
    if not word.isalpha() or word.endswith("ing"):
        return word
    from lemminflect import getAllLemmas

    lemmas = getAllLemmas(word)
    nouns = lemmas.get("NOUN")
    if nouns:
        return word if word in nouns else min(nouns, key=len)
    for pos in ("VERB", "ADJ"):
        if lemmas.get(pos):
            return str(min(lemmas[pos], key=len))
    if word.endswith("ly"):  # an adverb: "dramatically lit" is "dramatic light"
        stem = word[:-2]
        for adjective in (stem[:-2] if stem.endswith("ical") else "", stem, stem[:-1] + "y", stem + "e"):
            if adjective and "ADJ" in getAllLemmas(adjective):
                return adjective
    return word


@lru_cache(maxsize=65536)
def noun_capable(word: str) -> bool:
    """Could name a thing: a noun in the dictionary, a colour or material, or a word the
    dictionary does not know (a brand, a name, "85mm")."""
    if word in NOUNISH or not word.isalpha():
        return True
    from lemminflect import getAllLemmas

    lemmas = getAllLemmas(word)
    return "NOUN" in lemmas or not lemmas


@lru_cache(maxsize=65536)
def adjective_capable(word: str) -> bool:
    from lemminflect import getAllLemmas

    return word.isalpha() and "ADJ" in getAllLemmas(word)


@lru_cache(maxsize=65536)
def classify(token: str) -> tuple[str, str]:
    """(kind, canonical value) of one token: boundary, stop, filler, neg, prep, made-of,
    number, soft, or word."""
    if token in WORDS:
        return WORDS[token]
    if token.isdigit():
        return "number", str(int(token))
    base = lemma(token)
    if base in WORDS:
        return WORDS[base]
    if base.endswith("less") and len(base) > 6 and base not in lx.NOT_PRIVATIVE:
        stem = base[:-4]
        if noun_capable(stem):
            return "without-word", lemma(stem)
    return "word", base


# -- parsing ------------------------------------------------------------------------------------


@dataclass
class _Phrase:
    lead: str | None  # the preposition, "without", "made-of", or None (start, comma, "and")
    first: bool
    words: list[str] = field(default_factory=list)
    negated: list[str] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    negating: bool = False
    inherited: bool = False  # the lead came from "and" ("with an egg and chopsticks")


def _quoted(prompt: str) -> tuple[str, tuple[str, ...]]:
    found: list[str] = []

    def take(match: re.Match[str]) -> str:
        text = next(g for g in match.groups() if g is not None)
        found.append(" ".join(text.split()))
        return " , "

    rest = QUOTES.sub(take, prompt)
    return rest, tuple(sorted(t for t in found if t))


def _tokens(text: str) -> list[str]:
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))  # café
    text = text.casefold().replace("\u2019", "'")
    text = re.sub(r"'s\b", "", text).replace("'", " ")
    text = BODY.sub(lambda m: f" , with {m[1]} {lx.BODY_SUFFIXES[m[2]]} , ", text)
    text = re.sub("(?<=[a-z0-9])[-\u2010\u2013](?=[a-z0-9])", " ", text)  # hyphens and en dashes
    text = re.sub("\\s[-\u2013\u2014]+\\s", " , ", text)  # a dash between words: a pause
    raw = TOKENS.findall(text)
    out: list[str] = []
    i = 0
    while i < len(raw):
        for size in range(min(MAX_PHRASE, len(raw) - i), 0, -1):
            replacement = PHRASES.get(tuple(raw[i : i + size]))
            if replacement is not None:
                out.extend(replacement)
                i += size
                break
        else:
            word = raw[i]
            following = classify(raw[i + 1])[1] if i + 1 < len(raw) else ""
            if word in lx.SHADES and following in lx.COLOURS:
                out.append(f"{word}-{following}")  # "light blue" is one colour, not "blue"
                i += 2
                continue
            out.append(word)
            i += 1
    return out


def parse(prompt: str) -> PromptSlots:
    rest, quoted = _quoted(unicodedata.normalize("NFKC", prompt))
    phrases: list[_Phrase] = [_Phrase(None, True)]
    soft: set[str] = set()
    text: list[str] = []
    for token in _tokens(rest):
        kind, value = classify(token)
        current = phrases[-1]
        if kind in ("boundary", "prep", "made-of") or (kind == "neg" and value == "without"):
            lead = None if kind == "boundary" else "without" if kind == "neg" else value
            inherited = value in lx.CONJUNCTIONS and current.lead not in (None, lx.MADE_OF)
            if inherited:
                lead = current.lead
            phrases.append(_Phrase(lead, False, inherited=inherited))
            text.append("," if kind == "boundary" else value)
        elif kind == "neg":
            current.negating = True
            text.append("no")
        elif kind == "number":
            current.numbers.append(value)
            text.append(value)
        elif kind == "soft":
            soft.add(value)
            text.append(value)
        elif kind == "without-word":
            current.negated.append(value)
            text.append(f"no {value}")
        elif kind == "word":
            if value == "free" and current.words:  # "sugar free": no sugar
                current.negated.append(current.words.pop())
            elif current.negating or current.lead == "without":
                current.negated.append(value)
            else:
                current.words.append(value)
            text.append(value)
    return _slots(phrases, soft, quoted, " ".join(text).replace(" ,", ","))


@lru_cache(maxsize=20_000)
def parsed_prompt(prompt: str) -> PromptSlots:
    """``parse``, remembered: cached prompts are parsed again at every lookup that finds them."""
    return parse(prompt)


def _head(words: list[str]) -> str | None:
    """The object a phrase names: its last word that can only be a noun ("harbour" in
    "harbours clear"), else its last word that can be one."""
    nouns = [w for w in words if noun_capable(w)]
    strict = [w for w in nouns if w not in ATTRIBUTES and not adjective_capable(w)]
    return strict[-1] if strict else nouns[-1] if nouns else None


@lru_cache(maxsize=65536)
def _strict_noun(word: str) -> bool:
    """A dictionary noun that is nothing else an attribute could be: no adjective, no -ing
    form, no unknown name (brands are skipped over like adjectives: "a white Nike shoe")."""
    from lemminflect import getAllLemmas

    if word in ATTRIBUTES or word.endswith("ing") or not word.isalpha():
        return False
    lemmas = getAllLemmas(word)
    return "NOUN" in lemmas and "ADJ" not in lemmas


def _owner(words: list[str], index: int, head: str) -> str:
    """The object the attribute at ``index`` describes: the end of the first run of nouns after
    it ("white" in "white ceramic coffee mug": mug; in "black dog chasing white cat": dog),
    else the phrase's head. Attributes, names and -ing words before the run are skipped
    ("a black Nike running shoe": shoe)."""
    end = None
    for word in words[index + 1 :]:
        if _strict_noun(word):
            end = word
        elif end is not None or not (word in ATTRIBUTES or word.endswith("ing") or _unknown(word)):
            break
    return end or head


@lru_cache(maxsize=65536)
def _unknown(word: str) -> bool:
    from lemminflect import getAllLemmas

    return not word.isalpha() or not getAllLemmas(word)


def _slots(phrases: list[_Phrase], soft: set[str], quoted: tuple[str, ...], text: str) -> PromptSlots:
    # "a man in a red shirt and a woman in a blue shirt": "and a woman" starts a new object, so
    # it keeps no preposition when a preposition phrase of its own follows.
    for index, phrase in enumerate(phrases[:-1]):
        if phrase.inherited and phrases[index + 1].lead not in (None, "without", lx.MADE_OF):
            phrase.lead = None
    bag: set[str] = set()
    negated: set[str] = set()
    relations: set[tuple[str, str]] = set()
    heads: list[str | None] = []  # per phrase: the object its attributes and numbers belong to
    named: list[bool] = []  # whether the phrase names that object itself (not "in red")
    previous: str | None = None
    for index, phrase in enumerate(phrases):
        bag.update(phrase.words)
        negated.update(phrase.negated)
        following = phrases[index + 1].lead if index + 1 < len(phrases) else None
        if phrase.words and all(w in ATTRIBUTES for w in phrase.words):
            if phrase.lead in ("in", lx.MADE_OF):  # "a dress in red", "a chair made of oak"
                heads.append(previous or "")
                named.append(False)
                continue
            if following in (None, "without", lx.MADE_OF):  # "..., monochrome": the whole picture
                heads.append("")
                named.append(False)
                continue
        head = _head(phrase.words)  # "an orange on a table": the attribute word names a thing
        if head is not None:
            if phrase.lead not in (None, "without", lx.MADE_OF):
                relations.add((phrase.lead, head))
            previous = head
        heads.append(head)
        named.append(head is not None)
    # Numbers and attributes of a phrase with no object ("two, ...") belong to the next object.
    for i in range(len(heads) - 1, -1, -1):
        if heads[i] is None:
            heads[i] = next((h for h in heads[i + 1 :] if h is not None), "")
    # A noun that heads several phrases ("shirt" twice) is told apart by what it belongs to.
    named_heads = [h for h, n in zip(heads, named, strict=True) if n]
    repeated = {h for h in named_heads if named_heads.count(h) > 1}
    owners = list(heads)
    last: str | None = None
    for i, head in enumerate(heads):
        if head in repeated and named[i] and phrases[i].lead not in (None, "without", lx.MADE_OF) and last:
            owners[i] = f"{head}@{last}"
        elif not named[i] and i and owners[i - 1] and heads[i - 1] == head:
            owners[i] = owners[i - 1]  # "in red" after "a shirt": whatever that shirt was called
        if head and named[i] and phrases[i].lead is None:
            last = head
    bindings: set[tuple[str, str]] = set()
    counts: dict[str, str] = {}
    for phrase, head, owner in zip(phrases, heads, owners, strict=True):
        target = head or ""
        for index, word in enumerate(phrase.words):
            if word in ATTRIBUTES and word != target:
                described = _owner(phrase.words, index, target)
                bindings.add((word, owner or "" if described == target else described))
        for number in phrase.numbers:
            counts[owner or ""] = number
    return PromptSlots(
        bag=frozenset(bag - negated),
        soft=frozenset(soft),
        quoted=quoted,
        negated=frozenset(negated),
        bindings=frozenset(bindings),
        counts=tuple(sorted(counts.items())),
        relations=frozenset(relations),
        text=text.strip(" ,"),
    )


# -- comparing ----------------------------------------------------------------------------------


def disagreement(a: PromptSlots, b: PromptSlots) -> str | None:
    """Why ``a`` and ``b`` ask for other pictures, or None when every hard slot agrees
    (soft words may still differ: the caller weighs those with the embedding)."""
    if a.quoted != b.quoted:
        return "quoted text differs"
    if a.negated != b.negated:
        return "negation differs"
    if a.bag != b.bag:
        return "content differs: " + ", ".join(
            [f"+{w}" for w in sorted(b.bag - a.bag)] + [f"-{w}" for w in sorted(a.bag - b.bag)]
        )
    if a.bindings != b.bindings:
        return "attributes belong to other objects"
    counts_a, counts_b = dict(a.counts), dict(b.counts)
    for head in set(counts_a) | set(counts_b):
        pair = {counts_a.get(head), counts_b.get(head)}
        if len(pair) > 1 and pair != {"1", None}:
            return f"count of {head or 'objects'} differs"
    return _relations_disagree(a.relations, b.relations)


def _relations_disagree(a: frozenset[tuple[str, str]], b: frozenset[tuple[str, str]]) -> str | None:
    def by_head(rel: frozenset[tuple[str, str]]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for prep, head in rel:
            out.setdefault(head, set()).add(prep)
        return out

    heads_a, heads_b = by_head(a), by_head(b)
    for head in set(heads_a) & set(heads_b):  # governed on both sides: by agreeing prepositions
        if not _agree(heads_a[head], heads_b[head]):
            return f"relation to {head} differs"
    # A preposition used on both sides, each time on an object the other side does not relate
    # to it: the objects swapped places ("a cat on a dog", "a dog on a cat"). Only one side
    # with an extra object is a preposition the other left out ("in anime style", "anime").
    for prep in {p for p, _ in a} & {p for p, _ in b}:
        only_a = {h for p, h in a if p == prep and h not in heads_b}
        only_b = {h for p, h in b if p == prep and h not in heads_a}
        if only_a and only_b:
            return f"what is {prep} what differs"
    return None


def _agree(a: set[str], b: set[str]) -> bool:
    if a == b:
        return True
    vague = {p for p in a | b if p in lx.VAGUE_PREPOSITIONS}
    allowed = set().union(*(lx.VAGUE_PREPOSITIONS[p] for p in vague)) if vague else set()
    return bool(vague) and (a - vague <= allowed and b - vague <= allowed) and len((a | b) - vague) <= 1
