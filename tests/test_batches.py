"""Batches through the HTTP API: rows from JSONL or CSV, admitted as capacity frees up, one
output line per row, cancel, retry of the failed rows, and priority over interactive jobs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from limner.client import ApiError, Client
from tests.conftest import Live
from tests.jobs import submit, wait_done
from tests.test_cli import limner

FAULTS = "test/faults"


def wait_batch(http: httpx.Client, batch_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = http.get(f"/v1/batches/{batch_id}").json()
        if body["status"] in ("completed", "cancelled", "failed"):
            return body
        time.sleep(0.1)
    raise TimeoutError(f"batch {batch_id} did not end in {timeout} s")


def lines(http: httpx.Client, url: str) -> list[dict[str, Any]]:
    response = http.get(url)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/jsonl")
    return [json.loads(line) for line in response.text.splitlines()]


def test_jsonl_rows_each_end_once_and_a_bad_row_fails_alone(http: httpx.Client) -> None:
    rows = [{"custom_id": f"sku-{i}", "input": {"prompt": f"plain {i}", "seed": i}} for i in range(10)]
    rows.insert(4, {"custom_id": "too-wide", "input": {"prompt": "x", "width": 99999}})
    rows.insert(7, {"custom_id": "crash", "input": {"prompt": "raise", "seed": 1}})
    created = http.post("/v1/batches", json={"model": FAULTS, "rows": rows, "max_concurrency": 3})
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["status"] == "validating" and body["request_counts"]["total"] == 12 and body["priority"] == "low"
    done = wait_batch(http, body["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {
        "total": 12,
        "queued": 0,
        "running": 0,
        "succeeded": 10,
        "failed": 2,
        "canceled": 0,
    }
    out = lines(http, done["output_url"])
    assert [line["custom_id"] for line in out] == [r["custom_id"] for r in rows]  # one line per row, in file order
    by_id = {line["custom_id"]: line for line in out}
    assert by_id["too-wide"]["error"]["type"] == "limit_exceeded" and by_id["too-wide"]["request_id"] is None
    assert by_id["crash"]["error"]["type"] == "model_error" and by_id["crash"]["request_id"]
    assert by_id["sku-3"]["result"]["images"][0]["url"].startswith("http")
    assert {line["custom_id"] for line in lines(http, done["error_url"])} == {"too-wide", "crash"}
    # The rows' jobs are ordinary jobs of the batch, at its priority.
    job = http.get(f"/v1/queue/{FAULTS}/requests/{by_id['sku-3']['request_id']}/status").json()
    assert job["state"] == "succeeded"
    listed = http.get("/v1/requests", params={"model": FAULTS, "limit": 100}).json()["requests"]
    assert {r["batch_id"] for r in listed if r["request_id"] == by_id["sku-3"]["request_id"]} == {body["id"]}

    # Retry: a new batch of the failed rows, with their inputs as they were.
    retried = http.post(f"/v1/batches/{body['id']}/retry")
    assert retried.status_code == 202 and retried.json()["retry_of"] == body["id"]
    again = wait_batch(http, retried.json()["id"])
    assert again["request_counts"]["total"] == 2 and again["request_counts"]["failed"] == 2
    assert {line["custom_id"] for line in lines(http, again["output_url"])} == {"too-wide", "crash"}


def test_csv_rows_fill_a_template_and_run_a_workflow(http: httpx.Client) -> None:
    csv = "sku,colour,seed\nA-1,red,1\nA-2,green,2\nA-3,blue,3\n"
    upload = http.post("/v1/files", params={"purpose": "batch"}, content=csv, headers={"Content-Type": "text/csv"})
    assert upload.status_code == 201 and upload.json()["kind"] == "batch"
    created = http.post(
        "/v1/batches",
        json={
            "model": "test/chain",
            "input_file": upload.json()["url"],
            "template": {"prompt": "a {colour} mug, sku {sku}", "seed": "{seed}"},
            "metadata": {"catalog": "spring"},
        },
    )
    assert created.status_code == 202, created.text
    done = wait_batch(http, created.json()["id"])
    assert done["request_counts"]["succeeded"] == 3 and done["metadata"] == {"catalog": "spring"}
    out = lines(http, done["output_url"])
    assert [line["custom_id"] for line in out] == ["row-1", "row-2", "row-3"]
    assert out[1]["result"]["input"] == {"prompt": "a green mug, sku A-2", "seed": 2}
    assert len(out[1]["result"]["steps"]) == 2


def test_bad_batches_are_refused_at_submit(http: httpx.Client) -> None:
    dup = [{"custom_id": "a", "input": {"prompt": "x"}}, {"custom_id": "a", "input": {"prompt": "y"}}]
    refused = http.post("/v1/batches", json={"model": FAULTS, "rows": dup})
    assert refused.status_code == 422 and "appears twice" in refused.text
    assert http.post("/v1/batches", json={"model": "acme/none", "rows": dup[:1]}).status_code == 404
    both = http.post("/v1/batches", json={"model": FAULTS, "rows": dup[:1], "input_file": "http://x"})
    assert both.status_code == 422 and "exactly one of" in both.text
    upload = http.post("/v1/files", params={"purpose": "batch"}, content=b'{"input": 3}\n').json()
    not_rows = http.post("/v1/batches", json={"model": FAULTS, "input_file": upload["url"]})
    assert not_rows.status_code == 422 and "line 1 must be an object" in not_rows.text
    templated = http.post("/v1/files", params={"purpose": "batch"}, content=b"a,b\n1,2\n").json()
    missing = http.post(
        "/v1/batches", json={"model": FAULTS, "input_file": templated["url"], "template": {"prompt": "{c}"}}
    )
    assert missing.status_code == 422 and "column 'c'" in missing.text


def test_cancel_keeps_finished_rows_and_stops_the_rest(http: httpx.Client) -> None:
    rows = [{"custom_id": f"r{i}", "input": {"prompt": "steps:40", "seed": i}} for i in range(8)]
    batch = http.post("/v1/batches", json={"model": FAULTS, "rows": rows, "max_concurrency": 1}).json()
    deadline = time.monotonic() + 120
    while http.get(f"/v1/batches/{batch['id']}").json()["request_counts"]["succeeded"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelled = http.post(f"/v1/batches/{batch['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelling"
    done = wait_batch(http, batch["id"])
    counts = done["request_counts"]
    assert done["status"] == "cancelled" and counts["succeeded"] >= 1 and counts["canceled"] >= 5
    assert counts["succeeded"] + counts["canceled"] == 8
    assert len(lines(http, done["output_url"])) == 8
    assert http.post(f"/v1/batches/{batch['id']}/cancel").status_code == 409


def test_max_concurrency_bounds_the_batch_and_interactive_jobs_overtake_it(http: httpx.Client) -> None:
    rows = [{"custom_id": f"r{i}", "input": {"prompt": "steps:6", "seed": i}} for i in range(12)]
    batch = http.post("/v1/batches", json={"model": FAULTS, "rows": rows, "max_concurrency": 2}).json()
    urgent: dict[str, Any] | None = None
    deadline = time.monotonic() + 120
    most = 0
    while True:
        counts = http.get(f"/v1/batches/{batch['id']}").json()["request_counts"]
        listed = http.get("/v1/requests", params={"batch": batch["id"], "limit": 100}).json()["requests"]
        in_queue = [r for r in listed if r["state"] in ("queued", "running")]  # one query: one snapshot
        most = max(most, len(in_queue))
        assert len(in_queue) <= 2, in_queue  # max_concurrency: never more of its rows in the queue
        if urgent is None and counts["succeeded"] >= 2:
            urgent = submit(http, FAULTS, {"prompt": "steps:6", "seed": 99})
        if counts["succeeded"] == 12:
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert urgent is not None and most >= 1
    urgent_done = wait_done(http, FAULTS, urgent["request_id"])
    out = lines(http, batch["output_url"])
    finished = sorted(
        http.get(f"/v1/queue/{FAULTS}/requests/{line['request_id']}/status").json()["finished_at"] for line in out
    )
    # Submitted while rows were still waiting, the interactive job finished before the last rows.
    assert urgent_done["finished_at"] < finished[-1]
    admitted = [
        http.get(f"/v1/queue/{FAULTS}/requests/{line['request_id']}/status").json()["created_at"] for line in out
    ]
    # Rows enter the queue as slots free up: never all at once.
    assert max(admitted) - min(admitted) > 0.2


def test_batches_are_listed_newest_first(http: httpx.Client) -> None:
    made = [
        http.post("/v1/batches", json={"model": FAULTS, "rows": [{"input": {"prompt": "x"}}]}).json() for _ in range(3)
    ]
    page = http.get("/v1/batches", params={"limit": 2}).json()
    assert [b["id"] for b in page["data"]] == [made[2]["id"], made[1]["id"]] and page["has_more"]
    rest = http.get("/v1/batches", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert rest["data"][0]["id"] == made[0]["id"]
    for batch in made:
        wait_batch(http, batch["id"])


def test_the_cli_submits_a_csv_and_follows_it(live: Live, tmp_path: Path) -> None:
    csv = tmp_path / "products.csv"
    csv.write_text("custom_id,colour\nmug-1,red\nmug-2,teal\n")
    done = limner(live, "batch", "submit", str(csv), "--model", FAULTS, "--template", '{"prompt": "a {colour} mug"}')
    assert done.returncode == 0, done.stderr
    assert "2 succeeded, 0 failed" in done.stdout and "completed" in done.stdout
    batch_id = done.stdout.split()[0]
    out = limner(live, "batch", "output", batch_id)
    assert [json.loads(line)["custom_id"] for line in out.stdout.splitlines()] == ["mug-1", "mug-2"]
    shown = json.loads(limner(live, "batch", "status", batch_id).stdout)
    assert shown["request_counts"]["succeeded"] == 2
    bad = limner(live, "batch", "submit", str(csv), "--model", FAULTS, "--template", "not json")
    assert bad.returncode != 0 and "--template is not JSON" in bad.stderr


def test_the_sdk_creates_waits_and_reads_batches_and_retries_safely(live: Live) -> None:
    with Client(live.base) as client:
        batch = client.create_batch(FAULTS, [{"prompt": "a"}, {"prompt": "raise"}], idempotency_key="spring-1")
        again = client.create_batch(FAULTS, [{"prompt": "a"}, {"prompt": "raise"}], idempotency_key="spring-1")
        assert again.id == batch.id  # the same request again: the batch it made, not a second one
        with pytest.raises(ApiError) as conflict:
            client.create_batch(FAULTS, [{"prompt": "other"}], idempotency_key="spring-1")
        assert conflict.value.status_code == 409
        seen: list[str] = []
        done = client.wait_batch(batch.id, on_update=lambda b: seen.append(b.status), poll_s=0.1, timeout=120)
        assert done.done and done.request_counts["succeeded"] == 1 and seen[-1] == done.status
        assert [line["status"] for line in client.batch_output(batch.id)] == ["succeeded", "failed"]
        assert len(client.batch_output(batch.id, errors=True)) == 1
        retried = client.wait_batch(client.retry_batch(batch.id).id, poll_s=0.1, timeout=120)
        assert retried.retry_of == batch.id and retried.request_counts["total"] == 1
