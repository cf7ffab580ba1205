"""The semantic index: faiss over the store's embeddings, persisted beside the store, caught
up from the store, and rid of entries the store dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from limner.cache.semantic import Embedder, SemanticIndex
from limner.cache.store import CacheStore, NewEntry
from limner.storage import LocalStorage
from limner.store.engine import make_engines, upgrade


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def entry(prompt: str, vector: np.ndarray, job: str) -> NewEntry:
    return NewEntry(
        model_id="m/x",
        revision_key="r",
        revision="v1",
        exact_key=f"e-{job}",
        input_key=f"i-{job}",
        group_key="g",
        prompt=prompt,
        embedding=vector.astype(np.float32).tobytes(),
        source_job_id=job,
        result={"images": []},
        compute_s=1.0,
        scope="default",
    )


def test_index_persists_catches_up_and_forgets(tmp_path: Path, embedder: Embedder) -> None:
    engines = make_engines(f"sqlite:///{tmp_path / 'limner.db'}")
    upgrade(engines)
    store = CacheStore(engines, LocalStorage(tmp_path / "files"))
    prompts = ["white sneakers on a wooden floor, product photo", "a castle on a hill at night"]
    vectors = embedder.encode(prompts)
    seqs = [store.remember(entry(p, v, f"job{i}")) for i, (p, v) in enumerate(zip(prompts, vectors, strict=True))]

    index = SemanticIndex(tmp_path / "cache-index", store)
    query = embedder.encode(["product photo of white sneakers on a wooden floor"])[0]
    found = index.search("m/x", query, 0.9)
    assert [seq for seq, _ in found] == [seqs[0]] and found[0][1] > 0.95
    index.save_all()
    assert list((tmp_path / "cache-index").glob("*.faiss"))

    # Another process: loads the file, and catches up with an entry written since.
    later = store.remember(
        entry("a castle on a hill by night", embedder.encode(["a castle on a hill by night"])[0], "j3")
    )
    other = SemanticIndex(tmp_path / "cache-index", store)
    castle = embedder.encode(["a castle on a hill at night"])[0]
    assert {seq for seq, _ in other.search("m/x", castle, 0.9)} == {seqs[1], later}

    store.drop([later])
    other.forget("m/x", [later])
    assert {seq for seq, _ in other.search("m/x", castle, 0.9)} == {seqs[1]}
    engines.dispose()


def test_slot_index_groups_by_hard_slots_persists_catches_up_and_forgets(tmp_path: Path) -> None:
    from limner.cache.slot_index import SlotIndex
    from limner.cache.slots import parse

    engines = make_engines(f"sqlite:///{tmp_path / 'limner.db'}")
    upgrade(engines)
    store = CacheStore(engines, LocalStorage(tmp_path / "files"))
    none = np.zeros(384, dtype=np.float32)
    armchair = store.remember(entry("product photo of a red leather armchair in a sunny living room", none, "j1"))
    store.remember(entry("a blue leather armchair in a sunny living room", none, "j2"))

    index = SlotIndex(tmp_path / "cache-index", store)
    paraphrase = parse("a red leather armchair in a sunlit living room, product photo").key
    assert index.candidates("m/x", paraphrase) == [armchair]
    assert index.candidates("m/x", parse("a green leather armchair in a sunny living room").key) == []
    index.save_all()
    assert list((tmp_path / "cache-index").glob("*.slots.npz"))

    # Another process: loads the file, and catches up with an entry written since.
    later = store.remember(entry("A red leather armchair in a sunny living room.", none, "j3"))
    other = SlotIndex(tmp_path / "cache-index", store)
    assert other.candidates("m/x", paraphrase) == [later, armchair]  # newest first
    assert other.size("m/x") == 3
    store.drop([armchair])  # gone from the store (expired, purged): the index forgets it too
    other.forget("m/x", [armchair])
    assert other.candidates("m/x", paraphrase) == [later]
    engines.dispose()
