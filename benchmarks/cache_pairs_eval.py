"""Precision and recall of semantic-hit methods on the labelled pairs (part of benchmarks/cache.py).

Methods, each at several operating points:

- ``cosine``: all-MiniLM-L6-v2 cosine of the raw prompts (the cache before issue 16);
- ``normalised-cosine``: the same embedding of the normalised prompts (slots' text): what
  normalising alone buys;
- ``slots``: every hard slot must agree (limner.cache.slots); when soft words differ the
  cosine of the normalised prompts must reach the operating point (1.01: soft words must agree
  too; 0: soft words never matter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from benchmarks.prompts import Pair

COSINE_POINTS = [round(0.80 + 0.01 * i, 2) for i in range(20)] + [0.995]
SLOTS_POINTS = [0.0, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.01]


def score(hit: np.ndarray[Any, Any], same: np.ndarray[Any, Any]) -> dict[str, Any]:
    tp, fp = int((hit & same).sum()), int((hit & ~same).sum())
    positives = int(same.sum())
    return {
        "hits": tp + fp,
        "wrong_hits": fp,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / positives, 4) if positives else 0.0,
    }


def evaluate(sets: Mapping[str, Sequence[Pair]], embedder: Any) -> dict[str, Any]:
    from limner.cache.slots import disagreement, parse

    pairs = [p for group in sets.values() for p in group]
    group_of = np.array([name for name, group in sets.items() for _ in group])
    same = np.array([p.same for p in pairs])
    slots_a, slots_b = [parse(p.a) for p in pairs], [parse(p.b) for p in pairs]
    agree = np.array([disagreement(a, b) is None for a, b in zip(slots_a, slots_b, strict=True)])
    soft_equal = np.array([a.soft == b.soft for a, b in zip(slots_a, slots_b, strict=True)])

    def cosines(left: list[str], right: list[str]) -> np.ndarray[Any, Any]:
        texts = sorted(set(left) | set(right))
        vectors = dict(zip(texts, embedder.encode(texts), strict=True))
        return np.array([float(vectors[a] @ vectors[b]) for a, b in zip(left, right, strict=True)])

    raw = cosines([p.a for p in pairs], [p.b for p in pairs])
    normalised = cosines([s.text for s in slots_a], [s.text for s in slots_b])

    def rows(method: str, points: list[float], hit_at: Any) -> list[dict[str, Any]]:
        out = []
        for t in points:
            hit = hit_at(t)
            row = {"method": method, "threshold": t, **score(hit, same)}
            row["by_set"] = {name: score(hit[group_of == name], same[group_of == name]) for name in sets}
            out.append(row)
        return out

    curve = (
        rows("cosine", COSINE_POINTS, lambda t: raw >= t)
        + rows("normalised-cosine", COSINE_POINTS, lambda t: normalised >= t)
        + rows("slots", SLOTS_POINTS, lambda t: agree & (soft_equal | (normalised >= t)))
    )
    negatives = ~same
    near = np.array([p.kind != "unrelated" for p in pairs]) & negatives
    return {
        "pairs": {name: len(group) for name, group in sets.items()},
        "positives": int(same.sum()),
        "negatives": int(negatives.sum()),
        "curve": curve,
        "cosine_ranges": {
            "paraphrase_raw": _range(raw[same]),
            "near_miss_raw": _range(raw[near]),
            "paraphrase_normalised": _range(normalised[same]),
            "near_miss_normalised": _range(normalised[near]),
        },
        "slots_misses": [
            {"a": p.a, "b": p.b, "why": disagreement(a, b)}
            for p, a, b, ok in zip(pairs, slots_a, slots_b, agree, strict=True)
            if p.same and not ok and p.domain == "hand-written"
        ],
        "soft_only_pairs": int((agree & ~soft_equal).sum()),
    }


def _range(values: np.ndarray[Any, Any]) -> dict[str, float]:
    if not len(values):
        return {}
    return {
        "min": round(float(values.min()), 4),
        "p05": round(float(np.percentile(values, 5)), 4),
        "median": round(float(np.median(values)), 4),
        "p95": round(float(np.percentile(values, 95)), 4),
        "max": round(float(values.max()), 4),
    }


def safest(curve: list[dict[str, Any]], method: str) -> dict[str, Any] | None:
    """The operating point of ``method`` with no wrong hit and the highest recall."""
    clean = [r for r in curve if r["method"] == method and r["wrong_hits"] == 0]
    return max(clean, key=lambda r: (r["recall"], r["threshold"])) if clean else None
