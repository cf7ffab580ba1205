"""The real CLIP tokenizer vocabulary (from open-clip-torch's wheel) and a tiny random CLIP
loaded through from_pretrained: the pieces of quality scoring, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from limner.quality.clip import ClipScorer


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> ClipScorer:
    return ClipScorer("tiny://clip", tmp_path_factory.mktemp("models"))


def test_tokenizer_gives_openai_clip_ids(scorer: ClipScorer) -> None:
    tokenizer = scorer.processor.tokenizer
    assert len(tokenizer) == 49408
    # OpenAI CLIP's ids: <|startoftext|> a photo of a cat/dog <|endoftext|>.
    assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer("a photo of a dog")["input_ids"] == [49406, 320, 1125, 539, 320, 1929, 49407]
    assert tokenizer("A Photo  of a CAT")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_scores_are_deterministic_and_in_range(scorer: ClipScorer, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(3)]
    scores, features = scorer.score(images, "a red fox in the snow")
    again, _ = scorer.score(images, "a red fox in the snow")
    assert scores == again and len(scores) == 3 and all(0 <= s <= 100 for s in scores)
    assert features.shape == (3, 16) and np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    # The same model reloaded from its folder gives the same features.
    reloaded = ClipScorer("file://" + str(Path(scorer.processor.tokenizer.name_or_path)), tmp_path)
    assert np.allclose(reloaded.image_features(images), features, atol=1e-6)


def test_missing_weights_say_what_to_do(tmp_path: Path) -> None:
    from limner.errors import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="LIMNER_CLIP_MODEL"):
        ClipScorer("hf://limner-tests/no-such-clip", tmp_path)
