"""Quality results to MLflow: one experiment (``limner-quality``), one run per model.

The tracking store is ``LIMNER_MLFLOW_TRACKING_URI``: by default a SQLite file under
LIMNER_HOME (MLflow's own SQLAlchemy store), or an MLflow server's http(s) URI. Per output the
run gets ``clip_score`` (step = the output's sequence number); per window ``clip_window_mean``
and ``fid``, and a tag with the latest drift alert.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("limner.quality")
EXPERIMENT = "limner-quality"


class MlflowTracker:
    def __init__(self, tracking_uri: str, artifact_location: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        # Where a local store's experiment keeps artifacts (MLflow's default is ./mlruns in
        # the working directory); a tracking server decides for itself.
        self.artifact_location = None if tracking_uri.startswith(("http://", "https://")) else artifact_location
        self._client: Any = None
        self._experiment: str | None = None
        self._runs: dict[str, str] = {}
        self._lock = threading.Lock()

    def _ensure(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=self.tracking_uri)
            found = client.get_experiment_by_name(EXPERIMENT)
            self._experiment = (
                found.experiment_id
                if found
                else client.create_experiment(EXPERIMENT, artifact_location=self.artifact_location)
            )
            self._client = client
        return self._client

    def run_id(self, model_id: str) -> str:
        client = self._ensure()
        if model_id not in self._runs:
            existing = client.search_runs(
                [self._experiment], filter_string=f"tags.limner_model = '{model_id}'", max_results=1
            )
            if existing:
                self._runs[model_id] = existing[0].info.run_id
            else:
                run = client.create_run(self._experiment, run_name=model_id, tags={"limner_model": model_id})
                self._runs[model_id] = run.info.run_id
        return self._runs[model_id]

    def log(self, model_id: str, metrics: dict[str, float], step: int, tags: dict[str, str] | None = None) -> None:
        from mlflow.entities import Metric, RunTag

        with self._lock:
            client = self._ensure()
            run = self.run_id(model_id)
            now = int(time.time() * 1000)
            client.log_batch(
                run,
                metrics=[Metric(name, float(value), now, step) for name, value in metrics.items()],
                tags=[RunTag(k, v) for k, v in (tags or {}).items()],
            )
