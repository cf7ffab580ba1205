"""In-memory CLIP and T5 tokenizers for the tiny random-weight pipelines.

Real checkpoints ship tokenizer files downloaded from the hub; the tiny
pipelines are built offline, so their tokenizers are constructed here from a
small synthetic vocabulary (every byte / ASCII character plus a few hundred
common prompt words). They are ordinary ``transformers`` tokenizers and are
written into the pipeline folder by ``save_pretrained`` like any other.

Heavy imports happen inside the builder functions so that importing this
module stays cheap.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import CLIPTokenizer, T5Tokenizer

CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 64

CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"
T5_SPECIALS = ("<pad>", "</s>", "<unk>")
_EOW = "</w>"
_T5_SPACE = "\u2581"

# Common prompt words; each becomes a single token in both tokenizers.
_WORDS_TEXT = """
    a an the of in on at to with and or by is it for from under over near very big
    small photo picture painting drawing sketch portrait art cat dog bird fish horse
    cow fox bear lion owl man woman girl boy child people face astronaut red blue
    green yellow black white pink gold dark light bright colorful beautiful cute old
    new happy house city street car boat ship castle room road tree forest flower
    garden grass mountain lake river sea ocean beach sky cloud sun moon star snow
    rain fire water night day sunset morning winter summer landscape style detailed
    high quality oil watercolor digital cinematic realistic render anime riding
    sitting standing flying running wearing hat table chair window door book cup
    apple cake
"""
WORDS: tuple[str, ...] = tuple(_WORDS_TEXT.split())


def _byte_chars() -> list[str]:
    """Return GPT-2 style printable stand-ins for all 256 byte values."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return [mapping[b] for b in range(256)]


def _apply_merges(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Run BPE on one word: repeatedly merge the lowest-ranked, leftmost pair."""
    pieces = list(pieces)
    while len(pieces) > 1:
        candidates = [(ranks[pair], idx) for idx, pair in enumerate(itertools.pairwise(pieces)) if pair in ranks]
        if not candidates:
            break
        _, idx = min(candidates)
        pieces[idx : idx + 2] = [pieces[idx] + pieces[idx + 1]]
    return pieces


def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Build the byte-level BPE vocab (specials last, as in real CLIP) and merges.

    Each word of ``WORDS`` becomes a single token: it is first split with the
    merges learnt so far, then new (lower-priority) merges join the remaining
    pieces left to right. Appending merges never changes how earlier words split.
    """
    tokens: dict[str, None] = {}  # insertion-ordered set
    for char in _byte_chars():
        tokens |= {char: None, char + _EOW: None}
    ranks: dict[tuple[str, str], int] = {}
    for word in WORDS:
        pieces = _apply_merges([*word[:-1], word[-1] + _EOW], ranks)
        current = pieces[0]
        for piece in pieces[1:]:
            ranks[(current, piece)] = len(ranks)
            current += piece
            tokens[current] = None
    tokens |= {CLIP_BOS: None, CLIP_EOS: None}
    return {tok: idx for idx, tok in enumerate(tokens)}, list(ranks)


def t5_vocab() -> list[tuple[str, float]]:
    """Build the unigram ``(piece, log-prob)`` list; ids 0-2 are pad, eos, unk."""
    vocab: list[tuple[str, float]] = [(tok, 0.0) for tok in T5_SPECIALS]
    vocab.append((_T5_SPACE, -2.0))
    for code in range(33, 127):
        vocab.append((chr(code), -10.0))
        vocab.append((_T5_SPACE + chr(code), -10.5))
    for word in WORDS:
        if len(word) > 1:
            vocab.append((_T5_SPACE + word, -5.0))
    return vocab


def build_clip_tokenizer() -> CLIPTokenizer:
    """Construct a CLIP BPE tokenizer (pads to 77 tokens, like SD / FLUX)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    # transformers annotates ``merges`` as ``list[str]``, but tokenizers 0.23's
    # BPE only accepts (left, right) tuples, hence the untyped kwargs.
    kwargs: dict[str, Any] = {"vocab": vocab, "merges": merges}
    return CLIPTokenizer(
        **kwargs,
        unk_token=CLIP_EOS,
        bos_token=CLIP_BOS,
        eos_token=CLIP_EOS,
        pad_token=CLIP_EOS,
        model_max_length=CLIP_MAX_LENGTH,
    )


def build_t5_tokenizer() -> T5Tokenizer:
    """Construct a T5 unigram tokenizer with no sentinel (extra_id) tokens."""
    from transformers import T5Tokenizer

    pad, eos, unk = T5_SPECIALS
    return T5Tokenizer(
        vocab=t5_vocab(),
        eos_token=eos,
        unk_token=unk,
        pad_token=pad,
        extra_ids=0,
        model_max_length=T5_MAX_LENGTH,
    )
