"""A seeded generator of realistic prompt traffic for the cache benchmark.

Product-catalog and marketing teams reuse prompts: the same product shot is asked for again
and again (often by pasting the same text), re-worded by another person, or varied on
purpose (the same dress in another colour). Every prompt here is made from an *intent*
(product, colour, material, setting, style) and a *wording* (one of several templates, plus
case and punctuation noise), so the generator knows which prompts mean the same picture.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PRODUCTS = [
    "dress", "sneakers", "handbag", "wristwatch", "sofa", "table lamp", "coffee mug", "backpack", "leather jacket",
    "sunglasses", "armchair", "ceramic vase", "running shoes", "wool scarf", "desk chair", "water bottle",
    "headphones", "perfume bottle", "cotton t-shirt", "winter coat",
]  # fmt: skip
COLOURS = ["red", "blue", "black", "white", "green", "yellow", "beige", "pink", "grey", "navy"]
MATERIALS = ["leather", "cotton", "velvet", "linen", "suede", "denim", "ceramic", "steel", "wooden", "glass"]
SETTINGS = [
    ("a marble countertop", "marble countertop"),
    ("a wooden floor", "wooden floor"),
    ("a plain white background", "plain white backdrop"),
    ("a sunny beach", "sunlit beach"),
    ("a city street at night", "night-time city street"),
    ("a mannequin in a boutique", "boutique mannequin"),
    ("a concrete loft", "industrial concrete loft"),
    ("a forest trail", "woodland trail"),
]
STYLES = [
    ("studio lighting", "lit like a studio shoot"),
    ("soft natural light", "in gentle daylight"),
    ("high-end catalog photo", "premium catalogue photograph"),
    ("minimalist product shot", "clean minimal product photo"),
]
TEMPLATES = [
    "{colour} {material} {product} on {setting}, {style}",
    "{style}: a {colour} {material} {product} on {setting}",
    "a {colour} {product} made of {material}, photographed on {setting_alt}, {style_alt}",
    "product photo of a {colour} {material} {product}, {setting_alt}, {style}",
]


@dataclass(frozen=True)
class Intent:
    product: str
    colour: str
    material: str
    setting: int
    style: int

    def key(self) -> tuple[str, str, str, int, int]:
        return (self.product, self.colour, self.material, self.setting, self.style)


def word(intent: Intent, template: int, rng: random.Random, noise: bool = True) -> str:
    setting, setting_alt = SETTINGS[intent.setting]
    style, style_alt = STYLES[intent.style]
    text = TEMPLATES[template].format(
        colour=intent.colour,
        material=intent.material,
        product=intent.product,
        setting=setting,
        setting_alt=setting_alt,
        style=style,
        style_alt=style_alt,
    )
    if noise and rng.random() < 0.3:
        text = text[0].upper() + text[1:]
    if noise and rng.random() < 0.3:
        text += rng.choice([".", "!", " ", ", 4k"])
    return text


def random_intent(rng: random.Random) -> Intent:
    return Intent(
        rng.choice(PRODUCTS),
        rng.choice(COLOURS),
        rng.choice(MATERIALS),
        rng.randrange(len(SETTINGS)),
        rng.randrange(len(STYLES)),
    )


def near_miss(intent: Intent, rng: random.Random) -> Intent:
    """The same shot with exactly one thing changed: another picture."""
    field = rng.choice(["product", "colour", "material", "setting", "style"])
    while True:
        changed = {
            "product": lambda: Intent(rng.choice(PRODUCTS), *intent.key()[1:]),
            "colour": lambda: Intent(intent.product, rng.choice(COLOURS), *intent.key()[2:]),
            "material": lambda: Intent(intent.product, intent.colour, rng.choice(MATERIALS), *intent.key()[3:]),
            "setting": lambda: Intent(*intent.key()[:3], rng.randrange(len(SETTINGS)), intent.style),
            "style": lambda: Intent(*intent.key()[:4], rng.randrange(len(STYLES))),
        }[field]()
        if changed != intent:
            return changed


def labelled_pairs(count: int, seed: int = 7) -> list[tuple[str, str, bool, str]]:
    """(a, b, same intent?, kind): a third paraphrases, a third near misses, a third unrelated."""
    rng = random.Random(seed)
    pairs: list[tuple[str, str, bool, str]] = []
    for i in range(count):
        intent = random_intent(rng)
        first = rng.randrange(len(TEMPLATES))
        a = word(intent, first, rng)
        kind = ("paraphrase", "near miss", "unrelated")[i % 3]
        if kind == "paraphrase":
            b = word(intent, rng.choice([t for t in range(len(TEMPLATES)) if t != first] + [first]), rng)
            pairs.append((a, b, True, kind))
        elif kind == "near miss":
            pairs.append((a, word(near_miss(intent, rng), first, rng), False, kind))
        else:
            pairs.append((a, word(random_intent(rng), rng.randrange(len(TEMPLATES)), rng), False, kind))
    return pairs


@dataclass(frozen=True)
class Request:
    prompt: str
    intent: Intent
    width: int
    height: int


def prompt_log(count: int, seed: int = 11, catalog: int = 300) -> list[Request]:
    """``count`` requests over a catalogue of ``catalog`` shots with Zipf-like popularity.

    Each shot has a canonical wording that most requests paste (60%); others re-word it (25%)
    or vary one attribute on purpose (15%, a new intent: a near miss for the cache). Sizes are
    mostly square, some portrait, tied to the shot.
    """
    rng = random.Random(seed)
    shots = [random_intent(rng) for _ in range(catalog)]
    canonical = [rng.randrange(len(TEMPLATES)) for _ in shots]
    sizes = [rng.choice([(1024, 1024), (1024, 1024), (768, 1344)]) for _ in shots]
    weights = [1 / (rank + 1) ** 1.1 for rank in range(catalog)]
    texts: dict[int, str] = {}
    log: list[Request] = []
    for _ in range(count):
        shot = rng.choices(range(catalog), weights)[0]
        intent = shots[shot]
        roll = rng.random()
        if roll < 0.6:
            text = texts.setdefault(shot, word(intent, canonical[shot], rng, noise=False))
        elif roll < 0.85:
            text = word(intent, rng.randrange(len(TEMPLATES)), rng)
        else:
            intent = near_miss(intent, rng)
            text = word(intent, rng.randrange(len(TEMPLATES)), rng)
        log.append(Request(text, intent, *sizes[shot]))
    return log
