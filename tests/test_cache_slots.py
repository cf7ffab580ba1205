"""Prompt slots (limner.cache.slots): what each wording of a prompt keeps, and why two prompts
are or are not the same picture."""

from __future__ import annotations

import pytest

from limner.cache.slots import disagreement, parse


def same(a: str, b: str) -> bool:
    return disagreement(parse(a), parse(b)) is None


def test_filler_case_punctuation_and_order_are_dropped() -> None:
    slots = parse("Product photo of a RED leather armchair in a sunny living room!!")
    assert slots.bag == {"red", "leather", "armchair", "sunny", "living-room"}
    assert slots.bindings == {("red", "armchair"), ("leather", "armchair")}
    assert slots.relations == {("in", "living-room")}
    assert slots.text == "red leather armchair in sunny living-room"
    assert parse("a red leather armchair in a sunlit living room, product photo").key == slots.key


def test_plurals_synonyms_and_spellings_share_a_form() -> None:
    assert parse("white sneakers").bag == parse("a white sneaker").bag == {"white", "sneaker"}
    assert parse("a grey couch").bag == parse("a gray sofa").bag == {"grey", "sofa"}
    assert parse("watercolour, harbour").bag == parse("watercolor, harbor").bag
    assert parse("a lady in a café").bag == parse("a woman in a cafe").bag == {"woman", "cafe"}
    assert parse("dramatically lit").bag == parse("dramatic lighting").bag == {"dramatic", "light"}


def test_quoted_text_is_kept_verbatim() -> None:
    slots = parse("a neon sign that says 'OPEN 24/7' in a window")
    assert slots.quoted == ("OPEN 24/7",) and "open" not in slots.bag
    assert parse('a neon sign with the text "OPEN 24/7" in a window').quoted == slots.quoted
    assert parse("a kid's toy").quoted == ()  # an apostrophe is no quote
    assert disagreement(parse("a sign saying 'OPEN'"), parse("a sign saying 'open'")) == "quoted text differs"


@pytest.mark.parametrize(
    "prompt",
    ["a mug without a handle", "a mug with no handle", "a handleless mug", "a mug, no handle"],
)
def test_negations_are_their_own_slot(prompt: str) -> None:
    slots = parse(prompt)
    assert slots.negated == {"handle"} and slots.bag == {"mug"}


def test_counts_belong_to_their_object() -> None:
    assert parse("two cats on a sofa").counts == (("cat", "2"),)
    assert parse("a pair of red gloves").counts == parse("2 red gloves").counts == (("glove", "2"),)
    assert same("one apple on a plate", "an apple on a plate")
    assert same("a cat on a sofa", "cats on a sofa")  # plural without a number: no count
    assert disagreement(parse("two cats"), parse("three cats")) == "count of cat differs"
    assert disagreement(parse("a cat"), parse("two cats")) == "count of cat differs"


def test_attributes_bind_to_their_objects() -> None:
    assert parse("a dress in red").bindings == parse("a red dress").bindings == {("red", "dress")}
    assert parse("a chair made of oak").bindings == {("oak", "chair")}
    assert parse("a woman with red hair").bindings == parse("a red-haired woman").bindings == {("red", "hair")}
    assert parse("a white ceramic coffee mug").bindings == {("white", "mug"), ("ceramic", "mug")}
    assert parse("a black dog chasing a white cat").bindings == {("black", "dog"), ("white", "cat")}
    assert parse("red, monochrome").bindings == {("red", ""), ("monochrome", "")}  # the whole picture


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("a red chair and a blue table", "a blue chair and a red table", "attributes belong to other objects"),
        ("a black dog chasing a white cat", "a white dog chasing a black cat", "attributes belong to other objects"),
        (
            "a man in a red shirt and a woman in a blue shirt",
            "a man in a blue shirt and a woman in a red shirt",
            "attributes belong to other objects",
        ),
        ("an orange on a table", "an orange table", "attributes belong to other objects"),
        ("a cat on a box", "a cat in a box", "relation to box differs"),
        ("a cat on a dog", "a dog on a cat", "what is on what differs"),
        ("a mug with a handle", "a mug without a handle", "negation differs"),
        ("a leather armchair", "a velvet armchair", "content differs: +velvet, -leather"),
        ("a light blue dress", "a blue dress", "content differs: +blue, -light-blue"),
        ("a fox, oil painting", "a fox, watercolor painting", "content differs: +watercolor, -oil"),
        ("Nike running shoes", "Adidas running shoes", "content differs: +adidas, -nike"),
    ],
)
def test_one_change_is_another_picture(a: str, b: str, why: str) -> None:
    assert disagreement(parse(a), parse(b)) == why


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("a mug on a marble countertop", "a mug, marble countertop"),  # a preposition left out
        ("a dog on the beach", "a dog at the beach"),  # "at" is vague
        ("a woman wearing glasses", "a woman with glasses"),
        ("a bowl of ramen with an egg and chopsticks", "a bowl of ramen with chopsticks and an egg"),
        ("black and white, a fox in anime style", "monochrome, anime, a fox"),
        ("a city street at night", "night-time city street"),
        ("studio lighting: a steel wristwatch", "a wristwatch made of steel, lit like a studio shoot"),
    ],
)
def test_rewordings_agree(a: str, b: str) -> None:
    assert disagreement(parse(a), parse(b)) is None


def test_soft_words_are_set_apart_for_the_embedding() -> None:
    plain, praised = parse("a red vase on a table"), parse("a stunning red vase on a table, high quality")
    assert disagreement(plain, praised) is None and plain.key == praised.key
    assert plain.soft == frozenset() and praised.soft == {"beautiful"}
    assert praised.text == "beautiful red vase on table"
    assert parse("a detailed drawing of an owl").bag != parse("a simple drawing of an owl").bag  # not soft
