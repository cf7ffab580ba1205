"""``limner webhooks secret|deliveries|show|replay`` on a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from limner.store.deliveries import Deliveries
from limner.store.engine import make_engines, upgrade
from limner.webhooks.signing import check_secret, generate_secret
from tests.services import ROOT
from tests.test_webhooks_dispatch import run_job


def limner(home: Path, *args: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LIMNER_")}
    environment.update({"COLUMNS": "300", **env})
    done = subprocess.run(
        [sys.executable, "-m", "limner", *args, "--home", str(home)],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_secret_is_generated_once_and_kept_in_the_store(tmp_path: Path) -> None:
    first = limner(tmp_path, "webhooks", "secret").strip()
    assert check_secret(first) == first
    assert limner(tmp_path, "webhooks", "secret").strip() == first
    mine = generate_secret()
    assert limner(tmp_path, "webhooks", "secret", LIMNER_WEBHOOK_SECRET=mine).strip() == mine


def test_deliveries_show_and_replay(tmp_path: Path) -> None:
    engines = make_engines(f"sqlite:///{tmp_path / 'limner.db'}")
    upgrade(engines)
    job_id = run_job(engines, "http://127.0.0.1:9/hook")
    [delivery] = Deliveries(engines).find(job_id=job_id)
    assert delivery.id in limner(tmp_path, "webhooks", "deliveries", "--request-id", job_id)
    shown = json.loads(limner(tmp_path, "webhooks", "show", delivery.id))
    assert shown["request_id"] == job_id and shown["attempt_log"] == []
    assert "queued for delivery" in limner(tmp_path, "webhooks", "replay", delivery.id)
    replayed = Deliveries(engines).get(delivery.id)
    assert replayed is not None and replayed.status == "pending" and replayed.tries == 0
    engines.dispose()
