"""The word lists the prompt-slot parser reads (``limner.cache.slots``): data, no logic.

Written by hand for image prompts, because nothing offline gives them: WordNet's synsets are
not installable here (nltk and ``wn`` download their data at run time), and they would be too
loose anyway (WordNet puts "crimson" and "scarlet" in "red"'s synset, a wrong hit for a colour
change). Inflections (plural/singular, verb forms) come from lemminflect instead.

Everything is lower case. A synonym group maps every member to its first word; only words
that describe the same picture belong together (sunny/sunlit, sofa/couch), never co-hyponyms
(red/crimson, chair/armchair). Any change to these lists changes how stored prompts parse:
bump ``VERSION`` so slot indexes built with the old lists are rebuilt.
"""

from __future__ import annotations

VERSION = 1


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Dropped: articles, auxiliaries, pronouns and intensifiers that do not change the picture.
STOP = _words(
    """a an the this that these those is are be being been was were it its which who whose there here
    very really quite just also so such some any is being has have having had like as
    extremely super ultra incredibly highly truly"""
)

# Dropped: words that say "this is an image" (the default medium) or praise its quality.
FILLER = _words(
    """photo photos photograph photographs photography photographic picture pictures pic pics image images
    shot shots snapshot snap photoshoot shoot stock hq hd uhd 4k 8k 16k masterpiece photographed captured
    pictured shown depicted depicting featuring featured showing displayed presented showcasing showcased
    style styled scene view rendered quality"""
)
# Multi-word filler, matched before single words ("product photo" but not "product" alone).
FILLER_PHRASES = (
    ("product", "photo"), ("product", "photos"), ("product", "shot"), ("product", "shots"),
    ("product", "photography"), ("product", "image"), ("product", "picture"), ("product", "render"),
    ("high", "quality"), ("best", "quality"), ("highly", "detailed"), ("ultra", "detailed"), ("top", "quality"),
    ("award", "winning"),
    ("trending", "on", "artstation"), ("in", "the", "style", "of"), ("in", "style", "of"),
    ("in", "the", "style"), ("a", "photo", "of"), ("photo", "of"), ("image", "of"), ("picture", "of"),
    ("shot", "of"), ("photograph", "of"), ("shot", "on"), ("shot", "with"), ("taken", "with"), ("taken", "on"),
    ("captured", "on"), ("captured", "with"),
)  # fmt: skip

# Words whose change alone does not make another picture (praise, polish, softness; not detail
# or simplicity, which change what is drawn: "a detailed drawing", "a simple drawing"): two prompts
# that differ only here hit if their normalised texts are close enough (the embedding decides).
SOFT = {
    "beautiful": ("gorgeous", "stunning", "lovely", "pretty", "breathtaking"),
    "elegant": ("stylish", "sleek", "chic", "refined"),
    "clean": ("crisp", "neat", "tidy", "uncluttered"),
    "sharp": ("sharply", "focused", "in-focus"),
    "premium": ("high-end", "upscale", "luxury", "luxurious", "deluxe"),
    "professional": ("professionally", "pro", "commercial", "editorial"),
    "realistic": ("photorealistic", "photoreal", "hyperrealistic", "hyper-realistic", "lifelike", "realism"),
    "soft": ("gentle", "diffused", "diffuse", "softly"),
    "nice": ("great", "amazing", "awesome", "perfect", "fine", "good"),
}

# Same picture, other word: every member maps to the group's first word.
SYNONYMS = {
    "sofa": ("couch",),
    "tshirt": ("t-shirt", "tee", "teeshirt", "tshirts", "teeshirts"),
    "sneaker": ("trainer",),
    "backpack": ("rucksack", "knapsack"),
    "background": ("backdrop",),
    "countertop": ("worktop",),
    "forest": ("woods", "woodland"),
    "night": ("nighttime", "night-time"),
    "sunset": ("sundown",),
    "dawn": ("daybreak",),
    "sunny": ("sunlit", "sun-lit", "sun-drenched", "sun-soaked", "sunshiny"),
    "light": ("lighting", "lit", "lighted", "illumination", "illuminated", "lights"),
    "catalog": ("catalogue",),
    "minimal": ("minimalist", "minimalistic"),
    "grey": ("gray",),
    "watercolor": ("watercolour", "aquarelle"),
    "drawing": ("sketch",),
    "closeup": ("close-up",),
    "woman": ("lady",),
    "man": ("guy",),
    "child": ("kid",),
    "elderly": ("old", "aged", "senior"),
    "car": ("automobile",),
    "big": ("large",),
    "small": ("little",),
    "wood": ("wooden",),
    "wool": ("woollen", "woolen"),
    "silk": ("silken",),
    "gold": ("golden",),
    "blond": ("blonde",),
    "photo-frame": ("picture-frame",),
    "text": ("lettering", "caption", "words", "word", "inscription"),
    "aerial": ("birdseye",),
    "smiling": ("smile", "smiles"),
    "noon": ("midday",),
    "fog": ("foggy",),
    "rain": ("rainy",),
    "snow": ("snowy",),
    "storm": ("stormy",),
    "mist": ("misty",),
    # British and American spellings.
    "colour": ("color", "coloured", "colored"),
    "harbour": ("harbor",),
    "neighbourhood": ("neighborhood",),
    "flavour": ("flavor",),
    "favourite": ("favorite",),
    "centre": ("center",),
    "theatre": ("theater",),
    "jewellery": ("jewelry",),
    "aluminium": ("aluminum",),
    "pyjamas": ("pajamas",),
    "moustache": ("mustache",),
    "cosy": ("cozy",),
    "tyre": ("tire",),
    "multicoloured": ("multicolored", "multicolor", "multicolour"),
}  # fmt: skip
# Phrases rewritten before words are looked up (hyphens already turned into spaces).
PHRASES = {
    ("t", "shirt"): ("tshirt",),
    ("t", "shirts"): ("tshirt",),
    ("tee", "shirts"): ("tshirt",),
    ("tee", "shirt"): ("tshirt",),
    ("night", "time"): ("night",),
    ("close", "up"): ("closeup",),
    ("high", "end"): ("premium",),
    ("hyper", "realistic"): ("realistic",),
    ("in", "focus"): ("sharp",),
    ("sun", "lit"): ("sunny",),
    ("sun", "drenched"): ("sunny",),
    ("sun", "soaked"): ("sunny",),
    ("natural", "light"): ("daylight",),
    ("natural", "lighting"): ("daylight",),
    ("natural", "daylight"): ("daylight",),
    ("day", "light"): ("daylight",),
    ("oil", "on", "canvas"): ("oil", "painting"),
    ("3d", "rendering"): ("3d", "render"),
    ("3d", "rendered"): ("3d", "render"),
    ("bird", "s", "eye", "view"): ("aerial",),
    ("bird", "eye", "view"): ("aerial",),
    ("birds", "eye", "view"): ("aerial",),
    ("aerial", "view"): ("aerial",),
    ("drone", "shot"): ("aerial",),
    ("drone", "view"): ("aerial",),
    ("golden", "hour"): ("goldenhour",),
    ("stainless", "steel"): ("steel",),
    ("on", "top", "of"): ("on",),
    ("next", "to"): ("beside",),
    ("close", "to"): ("beside",),
    ("in", "front", "of"): ("front-of",),
    ("by", "night"): ("at", "night"),
    ("during", "the", "night"): ("at", "night"),
    ("made", "of"): ("made-of",),
    ("made", "from"): ("made-of",),
    ("made", "out", "of"): ("made-of",),
    ("crafted", "from"): ("made-of",),
    ("crafted", "of"): ("made-of",),
    ("crafted", "in"): ("made-of",),
    ("dressed", "in"): ("in",),
    ("clad", "in"): ("in",),
    ("with", "no"): ("without",),
    ("free", "of"): ("without",),
    ("a", "pair", "of"): ("2",),
    ("pair", "of"): ("2",),
    ("a", "couple", "of"): ("2",),
    ("couple", "of"): ("2",),
    ("half", "a", "dozen"): ("6",),
    ("a", "dozen"): ("12",),
    ("a", "few"): ("several",),
    ("a", "single"): ("1",),
    ("navy", "blue"): ("navy",),
    ("off", "white"): ("off-white",),
    ("living", "room"): ("living-room",),
    ("picture", "frame"): ("photo-frame",),
    ("as", "well", "as"): ("and",),
    ("along", "with"): ("with",),
    ("together", "with"): ("with",),
    ("wide", "angle"): ("wide-angle",),
    ("black", "and", "white"): ("monochrome",),
    # Text to render is its own phrase: "a red mug that says 'HI'" is "a red mug with text 'HI'".
    ("that", "says"): ("with", "text"),
    ("which", "says"): ("with", "text"),
    ("says",): ("with", "text"),
    ("saying",): ("with", "text"),
    ("inscribed", "with"): ("with", "text"),
    ("with", "the", "text"): ("with", "text"),
    ("with", "the", "words"): ("with", "text"),
    ("with", "the", "word"): ("with", "text"),
}
# Prepositions, by canonical form: what they relate is part of the meaning ("a cat on a box" is
# not "a cat in a box"). "at" is vague: it agrees with on and in ("on the beach", "at the beach").
PREPOSITIONS = {
    "on": ("onto", "atop", "upon"),
    "in": ("inside", "within", "into"),
    "wearing": ("wears", "wear", "donning"),
    "at": ("during",),
    "under": ("underneath", "beneath", "below"),
    "over": ("above",),
    "beside": ("by", "near", "alongside"),
    "behind": (),
    "front-of": (),
    "between": (),
    "among": ("amongst", "amid", "amidst"),
    "against": (),
    "across": (),
    "along": (),
    "around": (),
    "through": (),
    "with": (),
    "for": (),
    "from": (),
    "toward": ("towards",),
}
VAGUE_PREPOSITIONS = {
    "at": frozenset({"at", "on", "in"}),
    "wearing": frozenset({"wearing", "in", "with"}),
    "against": frozenset({"against", "on"}),  # "against a white backdrop", "on a white background"
}
# Conjunctions: the next phrase keeps the last one's preposition ("with an egg and chopsticks").
CONJUNCTIONS = frozenset({"and", "&", "plus"})
# Start a new phrase without relating it to the last.
# "of" too: "a cup of coffee" is "coffee, a cup" ("a photo of" and "made of" are matched before).
BOUNDARIES = frozenset({",", ";", ":", ".", "!", "?", "&", "+", "/", "|", "and", "plus", "while", "then", "of"})
NEGATORS = frozenset({"no", "not", "without", "never", "none", "zero", "lacking", "minus", "sans", "nothing"})
MADE_OF = "made-of"

NUMBERS = {
    "one": 1, "single": 1, "lone": 1, "solo": 1, "two": 2, "both": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "dozen": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "twenty": 20, "thirty": 30, "fifty": 50, "hundred": 100,
}  # fmt: skip
# Vague plural quantities: they agree with each other, not with a number or with none.
SEVERAL = frozenset({"several", "many", "multiple", "numerous", "various", "countless", "lots"})

COLOURS = _words(
    """red blue green yellow orange purple violet pink brown black white grey beige navy teal turquoise cyan
    magenta maroon burgundy crimson scarlet ivory cream tan khaki olive lime mint emerald jade gold silver
    bronze copper coral salmon peach lavender lilac indigo aqua charcoal ochre mustard rust taupe ruby sapphire
    amber blond ginger auburn off-white multicoloured rainbow monochrome"""
)
# A shade word right before a colour makes one colour ("light blue" is not "blue").
SHADES = frozenset({"light", "dark", "pale", "deep", "bright", "pastel", "neon", "hot", "baby", "sky", "royal"})
MATERIALS = _words(
    """leather cotton velvet linen suede denim ceramic porcelain steel iron aluminium aluminum metal wood
    bamboo rattan wicker glass crystal marble granite stone concrete brick plastic rubber silicone paper
    cardboard wool cashmere silk satin lace nylon polyester fleece fur faux canvas tweed corduroy jute
    terracotta clay copper brass chrome titanium carbon resin acrylic oak walnut pine teak mahogany"""
)
PATTERNS = _words(
    """striped stripes plaid checkered checked tartan floral polka dotted spotted paisley camo camouflage
    houndstooth herringbone leopard zebra geometric"""
)
SIZES = frozenset({"big", "small", "tiny", "huge", "giant", "miniature", "tall", "short", "long", "wide", "narrow"})
AGES = frozenset({"young", "elderly", "middle-aged", "teenage", "teen", "baby", "newborn", "adult", "toddler"})
# "X-haired woman" is "woman with X hair": rewritten before tokenising, so both bind X to hair.
BODY_SUFFIXES = {"haired": "hair", "eyed": "eyes", "skinned": "skin", "bearded": "beard"}
# Words ending in -less that are not "without X".
NOT_PRIVATIVE = frozenset({"unless", "regardless", "nevertheless", "bless", "less", "countless"})
