"""Usage records, quotas' counts, cache entries and migration 0003 against real SQLite and
PostgreSQL stores."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from limner.cache.store import CacheStore, NewEntry
from limner.storage import LocalStorage
from limner.store import engine as store_engine
from limner.store.engine import Engines, current_revision, make_engines, upgrade
from limner.store.jobs import JobStore
from limner.store.queue import WorkQueue
from limner.store.records import NewJob
from limner.store.usage import UsageStore, jobs_in_window, utc_day


@pytest.fixture
def engines(store_url: str) -> Iterator[Engines]:
    eng = make_engines(store_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def job(key: str | None = None, seed: int = 1) -> NewJob:
    return NewJob(
        id=str(uuid.uuid4()),
        model_id="m/a",
        task="text-to-image",
        priority="normal",
        input={"prompt": "p", "seed": seed, "width": 64, "height": 32, "num_inference_steps": 4},
        batch_key="k",
        body_hash="h",
        idempotency_key=None,
        max_attempts=1,
        api_key_id=key,
        cache_mode="exact",
    )


def test_migrations_go_down_and_up(engines: Engines) -> None:
    head = ScriptDirectory.from_config(store_engine._alembic_config()).get_current_head()
    assert head is not None and current_revision(engines) == head
    cfg = store_engine._alembic_config()
    with engines.write.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert current_revision(engines) == "0001"
    upgrade(engines)
    assert current_revision(engines) == head


def test_usage_rows_for_every_way_a_job_ends(engines: Engines) -> None:
    store = JobStore(engines, priority_step_s=30)
    queue = WorkQueue(engines, lease_s=30)
    done, failed, canceled = job("team-a"), job("team-a", 2), job(None, 3)
    store.submit_many([done, failed, canceled])
    store.cancel(canceled.id)
    claimed = {j.id for j in queue.claim("w", "m/a", "k", 10)}
    assert claimed == {done.id, failed.id}
    usage = {"compute_s": 2.0, "outputs": 1, "cost_usd": 0.002, "device": "cuda:0"}
    assert queue.complete("w", done.id, {"images": [], "usage": usage})
    queue.fail("w", failed.id, "model_error", "boom", retry=False)

    recorder = UsageStore(engines, price_of=lambda _model: 3.6)
    assert recorder.record_new() == 3
    assert recorder.record_new() == 0  # each job once
    by_key = {r["api_key_id"]: r for r in recorder.aggregate(["key"])}
    assert by_key["team-a"]["jobs"] == 2 and by_key["team-a"]["succeeded"] == 1 and by_key["team-a"]["failed"] == 1
    assert by_key["team-a"]["compute_s"] >= 2.0 and by_key[None]["canceled"] == 1
    (total,) = recorder.aggregate([])
    assert total["jobs"] == 3 and total["outputs"] == 1
    assert recorder.compute_on("team-a", utc_day(time.time())) >= 2.0
    runs = recorder.recent_runs("m/a")
    assert runs == [{"pixels": 64 * 32, "steps": 4, "outputs": 1, "compute_s": 2.0, "cost_usd": 0.002}]
    count, oldest = jobs_in_window(engines, "team-a", 60)
    assert count == 2 and oldest is not None and oldest <= time.time()
    assert jobs_in_window(engines, "nobody", 60)[0] == 0
    rows = [r for batch in recorder.rows_after(0) for r in batch]
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows) and len(rows) == 3


def test_cache_entries_follow_their_files_and_revision(engines: Engines, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    storage.put("results/j1/images-0.png", b"png", "image/png")
    cache = CacheStore(engines, storage)

    def entry(source: str, revision: str, key: str) -> NewEntry:
        result = {"images": [{"url": f"storage://results/{source}/images-0.png"}], "seed": 1}
        return NewEntry("m/a", "rk", revision, key, "i-" + key, "g", "p", None, source, result, 1.5, "team-a")

    cache.remember(entry("j1", "v1", "e1"))
    hit = cache.find("m/a", "rk", scope="team-a", exact_key="e1")
    assert hit is not None and hit.source_job_id == "j1" and hit.compute_s == 1.5
    assert cache.find("m/a", "rk", scope="team-a", input_key="i-e1") is not None
    assert cache.find("m/a", "other-revision-key", scope="team-a", exact_key="e1") is None
    # Another project's requests never see the entry, by either key.
    assert cache.find("m/a", "rk", scope="team-b", exact_key="e1") is None
    assert cache.find("m/a", "rk", scope="team-b", input_key="i-e1") is None
    # A newer revision of the weights was served: older entries no longer answer.
    storage.put("results/j2/images-0.png", b"png", "image/png")
    cache.remember(entry("j2", "v2", "e2"))
    assert cache.find("m/a", "rk", scope="team-a", exact_key="e1") is None
    assert cache.find("m/a", "rk", scope="team-a", exact_key="e2") is not None
    # The media went: so does the entry.
    storage.delete("results/j2/images-0.png")
    assert cache.purge_expired() == 1
    assert cache.find("m/a", "rk", scope="team-a", exact_key="e2") is None
    cache.remember(entry("j1", "v2", "e3"))
    assert cache.purge("m/a") == 1 and cache.stats() == []


def test_quotas_jobs_per_minute_and_compute_per_day(engines: Engines, tmp_path: Path) -> None:
    from limner.errors import QuotaExceeded
    from limner.quotas import QuotaGate, load_quotas

    quotas = load_quotas('{"default": {"jobs_per_minute": 2}, "keys": {"heavy": {"compute_s_per_day": 1.5}}}')
    gate = QuotaGate(quotas, engines, UsageStore(engines, price_of=lambda _m: 0.0))
    store, queue = JobStore(engines, priority_step_s=30), WorkQueue(engines, lease_s=30)
    gate.check("light")
    store.submit_many([job("light"), job("light", 2)])
    with pytest.raises(QuotaExceeded) as over:
        gate.check("light")
    assert (
        over.value.retry_after_s is not None
        and 1 <= over.value.retry_after_s <= 60
        and "jobs_per_minute=2" in over.value.message
    )
    gate.check(None)  # anonymous falls back to the default, and has sent nothing

    heavy = job("heavy", 9)
    store.submit_many([heavy])
    queue.claim("w", "m/a", "k", 10)
    queue.complete("w", heavy.id, {"images": [], "usage": {"compute_s": 2.0, "outputs": 1}})
    gate.usage.record_new()
    with pytest.raises(QuotaExceeded) as spent:
        gate.check("heavy")
    assert (
        spent.value.retry_after_s is not None
        and spent.value.retry_after_s <= 86400
        and "compute_s_per_day" in spent.value.message
    )
