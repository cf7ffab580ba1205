"""Prometheus metrics, computed from the job store at scrape time.

Workers are separate processes, often on other machines, so their numbers reach /metrics
through the store rather than through shared memory: queue depth and running jobs are
counted live; latencies, outputs, failures, cost and cache savings are folded in from the
usage records (``job_usage``, one row per finished job, read past the last ``seq`` seen);
worker memory, model loads and evictions come from the stats each worker writes with its
heartbeat. prometheus-client's multiprocess mode would need every process on one host
sharing a directory, and would lose what a dead worker counted; this way any API replica
reports the same totals, and they survive restarts of any process.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from limner.store.schema import jobs
from limner.store.states import QUEUED, RUNNING

if TYPE_CHECKING:
    from limner.api.context import ApiContext

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
LATENCIES = {"queue_wait": "queue_s", "run": "run_s", "end_to_end": "total_s"}


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip([*(str(b) for b in BUCKETS), "+Inf"], self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class StoreCollector(Collector):
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.seq = 0
        self.lock = threading.Lock()
        self.finished: dict[tuple[str, str], int] = defaultdict(int)
        self.failures: dict[tuple[str, str], int] = defaultdict(int)
        self.sums: dict[tuple[str, str], float] = defaultdict(float)  # (metric, model) -> total
        self.hits: dict[tuple[str, str], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], _Histogram] = defaultdict(_Histogram)

    def fold(self) -> None:
        """Take in the usage rows written since the last scrape."""
        self.ctx.usage.record_new()
        for rows in self.ctx.usage.rows_after(self.seq):
            for row in rows:
                self._add(row)
            self.seq = rows[-1]["seq"]

    def _add(self, row: dict[str, Any]) -> None:
        model = row["model_id"]
        self.finished[(model, row["status"])] += 1
        if row["status"] == "failed":
            self.failures[(model, row["error_type"] or "unknown")] += 1
        for name in ("outputs", "compute_s", "cost_usd", "saved_s", "saved_usd"):
            self.sums[(name, model)] += float(row[name] or 0)
        if row["cache_hit"]:
            self.hits[(model, row["cache_hit"])] += 1
        for label, column in LATENCIES.items():
            if row[column] is not None and (label != "run" or row["cache_hit"] is None):
                self.latency[(label, model)].observe(max(float(row[column]), 0.0))

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            self.fold()
            yield from self._queue()
            yield from self._finished()
            yield from self._workers()
            yield from self._quality()

    def _queue(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("limner_queue_depth", "Jobs waiting in the queue.", labels=["model", "priority"])
        running = GaugeMetricFamily("limner_jobs_running", "Jobs running on a worker.", labels=["model"])
        with self.ctx.engines.read.connect() as conn:
            rows = conn.execute(
                select(jobs.c.model_id, jobs.c.priority, jobs.c.status, func.count())
                .where(jobs.c.status.in_([QUEUED, RUNNING]))
                .group_by(jobs.c.model_id, jobs.c.priority, jobs.c.status)
            )
            run_counts: dict[str, int] = defaultdict(int)
            for model, priority, status, count in rows:
                if status == QUEUED:
                    depth.add_metric([model, priority], int(count))
                else:
                    run_counts[model] += int(count)
        for model, count in run_counts.items():
            running.add_metric([model], count)
        yield depth
        yield running

    def _finished(self) -> Iterator[Metric]:
        finished = CounterMetricFamily(
            "limner_jobs_finished", "Jobs that finished, by status.", labels=["model", "status"]
        )
        for (model, status), n in sorted(self.finished.items()):
            finished.add_metric([model, status], n)
        failures = CounterMetricFamily(
            "limner_job_failures", "Failed jobs by error type.", labels=["model", "error_type"]
        )
        for (model, kind), n in sorted(self.failures.items()):
            failures.add_metric([model, kind], n)
        hits = CounterMetricFamily(
            "limner_cache_hits", "Jobs answered from the result cache.", labels=["model", "kind"]
        )
        for (model, kind), n in sorted(self.hits.items()):
            hits.add_metric([model, kind], n)
        yield finished
        yield failures
        yield hits
        described = {
            "outputs": ("limner_outputs", "Media files produced."),
            "compute_s": ("limner_compute_seconds", "Device seconds spent running models."),
            "cost_usd": ("limner_cost_usd", "Cost of device time, in USD."),
            "saved_s": ("limner_cache_saved_compute_seconds", "Device seconds the cache saved."),
            "saved_usd": ("limner_cache_saved_usd", "Cost the cache saved, in USD."),
        }
        for key, (name, doc) in described.items():
            counter = CounterMetricFamily(name, doc, labels=["model"])
            for (metric, model), value in sorted(self.sums.items()):
                if metric == key:
                    counter.add_metric([model], value)
            yield counter
        for label in LATENCIES:
            family = HistogramMetricFamily(
                f"limner_job_{label}_seconds", f"Job latency: {label.replace('_', ' ')}.", labels=["model"]
            )
            for (which, model), hist in sorted(self.latency.items()):
                if which == label:
                    family.add_metric([model], hist.buckets(), hist.total)
            yield family

    def _workers(self) -> Iterator[Metric]:
        window = max(3 * min(self.ctx.settings.heartbeat_s, self.ctx.settings.lease_s / 3), 1.0)
        active = self.ctx.workers.active(window)
        up = GaugeMetricFamily("limner_workers", "Workers with a recent heartbeat.")
        up.add_metric([], len(active))
        yield up
        gauges: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "rss_bytes": GaugeMetricFamily(
                "limner_worker_rss_bytes", "Worker resident memory.", labels=["worker", "device"]
            ),
            "resident_bytes": GaugeMetricFamily(
                "limner_worker_model_bytes", "Bytes of models the worker holds.", labels=["worker", "device"]
            ),
            "budget_bytes": GaugeMetricFamily(
                "limner_worker_budget_bytes", "The worker's model memory budget.", labels=["worker", "device"]
            ),
        }
        counters: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "model_loads": CounterMetricFamily("limner_model_loads", "Model loads.", labels=["worker", "device"]),
            "model_evictions": CounterMetricFamily(
                "limner_model_evictions", "Models evicted to stay under the budget.", labels=["worker", "device"]
            ),
        }
        for worker in active:
            stats = worker.stats or {}
            for key, family in [*gauges.items(), *counters.items()]:
                if key in stats:
                    family.add_metric([worker.id, worker.device], float(stats[key]))
        yield from gauges.values()
        yield from counters.values()

    def _quality(self) -> Iterator[Metric]:
        clip = GaugeMetricFamily("limner_quality_clip_score", "Mean CLIP score of the latest window.", labels=["model"])
        fid = GaugeMetricFamily(
            "limner_quality_fid", "FID of the latest window against the reference.", labels=["model"]
        )
        alert = GaugeMetricFamily(
            "limner_quality_drift_alert", "1 when the latest window raised an alert.", labels=["model"]
        )
        for window in self.ctx.quality.latest_by_model():
            if window["clip_mean"] is not None:
                clip.add_metric([window["model_id"]], window["clip_mean"])
            if window["fid"] is not None:
                fid.add_metric([window["model_id"]], window["fid"])
            alert.add_metric([window["model_id"]], 1.0 if window["alert"] else 0.0)
        yield clip
        yield fid
        yield alert
