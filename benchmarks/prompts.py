"""Seeded prompts with known meaning, for the cache benchmark: labelled pairs and a request log.

Four kinds of prompt (product shots, scenes, portraits, styled art), each made from an
*intent* (one value per field: product, colour, material, setting...) and a *wording* (one of
several templates, one of several ways to say each value, plus case, punctuation and filler
noise), so the generator knows which prompts mean the same picture:

- a paraphrase is the same intent worded again (another template, other alternates, noise);
- a near miss is the same wording with exactly one field changed (colour, material, object,
  count, brand, text to render, a negation, the setting, the style...): another picture;
- an unrelated pair is two random intents.

``HARD_PAIRS`` (benchmarks/cache_pairs.tsv) adds hand-written cases on top: paraphrases a
user would write that templates do not, and near misses that embeddings score highest.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

# A field's values; each value is a tuple of interchangeable wordings (the first is canonical).
Values = list[tuple[str, ...]]

COLOURS: Values = [
    ("red",), ("blue",), ("black",), ("white",), ("green",), ("grey", "gray"), ("navy", "navy blue"),
    ("beige",), ("pink",), ("yellow",), ("orange",), ("purple",),
]  # fmt: skip
COUNT_ONE = ("a", "one", "a single")


@dataclass(frozen=True)
class Domain:
    name: str
    fields: dict[str, Values]
    templates: tuple[str, ...]
    weights: dict[str, list[float]]  # per field, how often each value is drawn (default uniform)


PRODUCT = Domain(
    "product",
    {
        "count": [COUNT_ONE, ("two",), ("three",)],
        "product": [
            ("sofa", "couch"),
            ("armchair",),
            ("sneakers", "sneaker", "trainers"),
            ("handbag",),
            ("wristwatch",),
            ("table lamp",),
            ("coffee mug",),
            ("backpack", "rucksack"),
            ("jacket",),
            ("sunglasses",),
            ("ceramic vase",),
            ("running shoes", "running shoe"),
            ("scarf",),
            ("desk chair",),
            ("water bottle",),
            ("headphones",),
            ("perfume bottle",),
            ("t-shirt", "tee", "tshirt"),
            ("winter coat",),
            ("teapot",),
        ],
        "colour": COLOURS,
        "material": [
            ("leather",),
            ("cotton",),
            ("velvet",),
            ("linen",),
            ("suede",),
            ("denim",),
            ("ceramic",),
            ("steel", "stainless steel"),
            ("wooden", "wood"),
            ("glass",),
            ("wool", "woollen"),
            ("silk",),
        ],
        "brand": [("",), ("Nike",), ("Adidas",), ("IKEA",), ("Zara",), ("Gucci",)],
        "setting": [
            ("on a marble countertop", "on marble countertop", "on top of a marble countertop"),
            ("on a wooden floor", "on a wood floor"),
            ("on a white background", "against a white backdrop", "on a white backdrop"),
            ("on a sunny beach", "on a sunlit beach", "at a sun-drenched beach"),
            ("on a city street at night", "on a night-time city street", "on a city street by night"),
            ("in a boutique window", "inside a boutique window"),
            ("in a concrete loft", "inside a loft made of concrete"),
            ("on a forest trail", "on a woodland trail"),
        ],
        "style": [
            ("studio lighting", "lit like a studio shoot", "in studio light"),
            ("soft natural light", "in gentle daylight", "soft daylight"),
            ("high-end catalog photo", "premium catalogue photograph", "luxury catalog shot"),
            ("minimalist product shot", "clean minimal product photo", "minimalistic"),
            ("dramatic lighting", "dramatically lit"),
        ],
        "extra": [
            ("",),
            ("with the text 'SALE'", "that says 'SALE'", 'with the word "SALE"'),
            ("with the text 'NEW'", "that says 'NEW'"),
            ("without a logo", "with no logo"),
            ("with a logo",),
        ],
    },
    (
        "{count} {colour} {material} {brand}{product}{extra} {setting}, {style}",
        "{style}: {count} {colour} {material} {brand}{product}{extra} {setting}",
        "{count} {colour} {brand}{product} made of {material}{extra}, photographed {setting}, {style}",
        "product photo of {count} {colour} {material} {brand}{product}{extra}, {setting}, {style}",
        "{setting}, {count} {material} {brand}{product} in {colour}{extra}. {style}",
    ),
    {"count": [8, 1, 1], "brand": [10, 1, 1, 1, 1, 1], "extra": [12, 1, 1, 1, 1]},
)

SCENE = Domain(
    "scene",
    {
        "count": [COUNT_ONE, ("two",)],
        "subject": [
            ("lighthouse",),
            ("castle",),
            ("wooden cabin",),
            ("windmill",),
            ("stone bridge",),
            ("waterfall",),
            ("temple",),
            ("harbour", "harbor"),
            ("mountain lake",),
            ("sailboat",),
            ("train station",),
            ("barn",),
        ],
        "weather": [
            ("foggy", "in the fog"),
            ("rainy", "in the rain"),
            ("snowy", "in the snow"),
            ("stormy", "in a storm"),
        ],
        "time": [
            ("at sunset", "at sundown", "during sunset"),
            ("at sunrise", "during sunrise"),
            ("at night", "at nighttime", "by night"),
            ("at noon", "at midday"),
        ],
        "view": [
            ("aerial view", "bird's-eye view", "drone shot"),
            ("wide-angle shot", "wide angle"),
            ("close-up", "closeup", "close up"),
            ("low-angle shot", "from a low angle"),
        ],
        "extra": [("",), ("with no people", "without people"), ("with a red boat",), ("with a blue boat",)],
    },
    (
        "{view} of {count} {weather_0} {subject} {time}{extra}",
        "{count} {subject} {weather_1} {time}{extra}, {view}",
        "{time}, {count} {weather_0} {subject}{extra}, {view}",
        "photo of {count} {subject} {time} {weather_1}{extra} - {view}",
        "{count} {weather_0} {subject}{extra} {time}. {view}. 4k",
    ),
    {"count": [8, 1], "extra": [10, 1, 1, 1]},
)

PORTRAIT = Domain(
    "portrait",
    {
        "person": [("woman", "lady"), ("man",), ("girl",), ("boy",)],
        "age": [("young",), ("elderly", "old"), ("middle-aged",)],
        "hair": [("red",), ("blond", "blonde"), ("black",), ("grey", "gray"), ("brown",)],
        "hairstyle": [("curly",), ("straight",), ("short",), ("long",)],
        "gcolour": COLOURS,
        "garment": [("dress",), ("suit",), ("hoodie",), ("leather jacket",), ("t-shirt", "tee", "tshirt")],
        "expression": [("smiling", "with a smile"), ("laughing",), ("serious",), ("pensive",)],
        "background": [
            ("against a grey studio backdrop", "against a gray studio background", "grey studio backdrop"),
            ("on a city street", "city street"),
            ("in a park", "at a park"),
            ("in a cafe", "in a café", "at a cafe"),
        ],
        "light": [
            ("soft window light", "gentle window light", "soft light from a window"),
            ("rembrandt lighting", "Rembrandt light"),
            ("golden hour light", "golden-hour lighting"),
            ("85mm", "shot on 85mm"),
        ],
        "extra": [
            ("",),
            ("wearing glasses", "with glasses"),
            ("without glasses", "with no glasses"),
            ("wearing a hat", "with a hat"),
        ],
    },
    (
        "portrait of a {age} {person} with {hairstyle} {hair} hair, wearing a {gcolour} {garment}, {expression},"
        " {background}, {light}{extra}",
        "{light}, portrait: {expression_0} {age} {person} in a {gcolour} {garment}, {hairstyle} {hair} hair,"
        " {background}{extra}",
        "portrait photo of a {expression_0} {age} {person}{extra}, {hairstyle} {hair} hair, {gcolour} {garment},"
        " {background}, {light}",
        "{age} {person}{extra}, {hairstyle} {hair} hair, dressed in a {gcolour} {garment}, {expression},"
        " {background}. {light}, portrait",
    ),
    {"extra": [9, 1, 1, 1]},
)

STYLE = Domain(
    "style",
    {
        "count": [COUNT_ONE, ("two",), ("three",)],
        "subject": [
            ("fox",),
            ("owl",),
            ("teapot",),
            ("robot",),
            ("samurai",),
            ("lighthouse",),
            ("koi fish",),
            ("hot air balloon",),
            ("dragon",),
            ("cat",),
            ("bicycle",),
            ("whale",),
        ],
        "colour": [("red",), ("blue",), ("golden", "gold"), ("white",), ("black",), ("green",)],
        "style": [
            ("oil painting", "oil on canvas"),
            ("watercolor painting", "watercolour painting"),
            ("pencil sketch", "pencil drawing"),
            ("pixel art",),
            ("anime style", "in anime style", "anime"),
            ("3d render", "3d rendering"),
            ("ukiyo-e woodblock print",),
            ("in the style of Van Gogh", "Van Gogh style"),
        ],
        "background": [
            ("on a white background", "white background"),
            ("in a forest", "in the woods", "in a woodland"),
            ("under a starry sky", "beneath a starry sky"),
            ("by the sea", "near the sea"),
        ],
        "palette": [
            ("muted pastel colors", "muted pastel colours"),
            ("vibrant colors", "vibrant colours"),
            ("monochrome", "black and white"),
        ],
        "extra": [
            ("",),
            ("with the word 'HELLO'", 'with the text "HELLO"', "that says 'HELLO'"),
            ("with the word 'DREAM'", "that says 'DREAM'"),
        ],
    },
    (
        "{style}, {count} {colour} {subject}{extra}, {background}, {palette}",
        "{count} {colour} {subject}{extra}, {background}, {style}, {palette}",
        "{palette}, {style}: {count} {colour} {subject}{extra}, {background}",
        "{count} {subject} in {colour}{extra}, {background}, {style}, {palette}",
    ),
    {"count": [8, 1, 1], "extra": [10, 1, 1]},
)

DOMAINS = (PRODUCT, SCENE, PORTRAIT, STYLE)
NOISE_TAILS = (".", "!", " ", ", 4k", ", high quality", ", highly detailed")


@dataclass(frozen=True)
class Intent:
    domain: str
    values: tuple[tuple[str, int], ...]  # (field, value index), in field order

    def key(self) -> tuple[object, ...]:
        return (self.domain, self.values)

    def value(self, field: str) -> int:
        return dict(self.values)[field]


def _domain(name: str) -> Domain:
    return next(d for d in DOMAINS if d.name == name)


def random_intent(rng: random.Random, domain: Domain | None = None) -> Intent:
    domain = domain or rng.choice(DOMAINS)
    values = []
    for field, options in domain.fields.items():
        weights = domain.weights.get(field, [1.0] * len(options))
        values.append((field, rng.choices(range(len(options)), weights)[0]))
    return Intent(domain.name, tuple(values))


def near_miss(intent: Intent, rng: random.Random, field: str | None = None) -> tuple[Intent, str]:
    """The same shot with exactly one field changed: another picture."""
    domain = _domain(intent.domain)
    field = field or rng.choice(list(domain.fields))
    current = intent.value(field)
    other = rng.choice([i for i in range(len(domain.fields[field])) if i != current])
    return Intent(intent.domain, tuple((f, other if f == field else v) for f, v in intent.values)), field


def _plural(noun: str) -> str:
    from lemminflect import getInflection

    words = noun.split()
    if words[-1].endswith("s") and words[-1] not in ("glass",):
        return noun  # sneakers, headphones, sunglasses
    forms = getInflection(words[-1], tag="NNS")
    return " ".join([*words[:-1], forms[0] if forms else words[-1] + "s"])


def word(intent: Intent, template: int, rng: random.Random, noise: bool = True) -> str:
    domain = _domain(intent.domain)
    chosen: dict[str, str] = {}
    for field, index in intent.values:
        options = domain.fields[field][index]
        chosen[field] = rng.choice(options) if noise else options[0]
        for i, option in enumerate(options):  # where only one wording fits ("foggy", not "in the fog")
            chosen[f"{field}_{i}"] = option
    for name in ("product", "subject"):
        if name in chosen and chosen.get("count") in ("two", "three"):
            chosen[name] = _plural(chosen[name])
    if "made of {material}" in domain.templates[template] and "material" in chosen:
        chosen["material"] = {"wooden": "wood", "woollen": "wool"}.get(chosen["material"], chosen["material"])
    chosen["brand"] = chosen["brand"] + " " if chosen.get("brand") else ""
    chosen["extra"] = " " + chosen["extra"] if chosen.get("extra") else ""
    text = domain.templates[template].format(**chosen)
    text = re.sub(r"\b([aA]) (?=[aeiouAEIOU])", r"\1n ", " ".join(text.split()))
    text = text.replace(" ,", ",").strip()
    if noise and rng.random() < 0.3:
        text = text[0].upper() + text[1:]
    if noise and rng.random() < 0.15:  # all lower case, but text to render keeps its letters
        parts = re.split(r"""('[^']*'|"[^"]*")""", text)
        text = "".join(part if i % 2 else part.lower() for i, part in enumerate(parts))
    if noise and rng.random() < 0.3:
        text += rng.choice(NOISE_TAILS)
    return text


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool
    kind: str  # "paraphrase", "near miss", "unrelated", or a hand-written pair's kind
    domain: str
    changed: str = ""  # for a near miss: the field that changed


def labelled_pairs(count: int, seed: int = 7) -> list[Pair]:
    """``count`` generated pairs, evenly over the four domains: 40% paraphrases, 45% near
    misses (one field changed), 15% unrelated."""
    rng = random.Random(seed)
    pairs: list[Pair] = []
    for i in range(count):
        domain = DOMAINS[i % len(DOMAINS)]
        intent = random_intent(rng, domain)
        templates = len(domain.templates)
        first = rng.randrange(templates)
        a = word(intent, first, rng)
        roll = rng.random()
        if roll < 0.40:
            b = word(intent, rng.randrange(templates), rng)
            if b == a:
                b = word(intent, (first + 1) % templates, rng)
            pairs.append(Pair(a, b, True, "paraphrase", domain.name))
        elif roll < 0.85:
            other, field = near_miss(intent, rng)
            pairs.append(Pair(a, word(other, first, rng), False, "near miss", domain.name, field))
        else:
            other = random_intent(rng)
            pairs.append(Pair(a, word(other, rng.randrange(len(_domain(other.domain).templates)), rng), False,
                              "unrelated", domain.name))  # fmt: skip
    return pairs


HARD_FILE = Path(__file__).resolve().parent / "cache_pairs.tsv"
HELDOUT_FILE = Path(__file__).resolve().parent / "cache_pairs_heldout.tsv"


def hard_pairs(path: Path = HARD_FILE, domain: str = "hand-written") -> list[Pair]:
    """Hand-written pairs: ``label<TAB>kind<TAB>a<TAB>b`` lines (label same/different)."""
    pairs = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, kind, a, b = line.split("\t")
        pairs.append(Pair(a, b, label == "same", kind, domain))
    return pairs


@dataclass(frozen=True)
class Request:
    prompt: str
    intent: Intent
    width: int
    height: int


def prompt_log(count: int, seed: int = 11, catalog: int = 300) -> list[Request]:
    """``count`` requests over a catalogue of ``catalog`` shots (all four domains) with
    Zipf-like popularity.

    Each shot has a canonical wording that most requests paste (60%); others re-word it (25%)
    or vary one field on purpose (15%, a new intent: a near miss for the cache). Sizes are
    mostly square, some portrait, tied to the shot.
    """
    rng = random.Random(seed)
    shots = [random_intent(rng, DOMAINS[i % len(DOMAINS)]) for i in range(catalog)]
    canonical = [rng.randrange(len(_domain(s.domain).templates)) for s in shots]
    sizes = [rng.choice([(1024, 1024), (1024, 1024), (768, 1344)]) for _ in shots]
    weights = [1 / (rank + 1) ** 1.1 for rank in range(catalog)]
    texts: dict[int, str] = {}
    log: list[Request] = []
    for _ in range(count):
        shot = rng.choices(range(catalog), weights)[0]
        intent = shots[shot]
        templates = len(_domain(intent.domain).templates)
        roll = rng.random()
        if roll < 0.6:
            text = texts.setdefault(shot, word(intent, canonical[shot], rng, noise=False))
        elif roll < 0.85:
            text = word(intent, rng.randrange(templates), rng)
        else:
            intent, _ = near_miss(intent, rng)
            text = word(intent, rng.randrange(templates), rng)
        log.append(Request(text, intent, *sizes[shot]))
    return log
