"""Workers on separate hosts (network namespaces made by the test): PostgreSQL and the API on
one host, a worker on each of two others. One worker host is cut off mid-job; once its lease
ends, the job runs on the other host and completes."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import netns
from tests.jobs import result, submit, wait_done, wait_state
from tests.services import Postgres, Proc, child_env, pg_bin, wait_http, wait_workers

pytestmark = pytest.mark.skipif(
    not netns.available() and os.environ.get("LIMNER_REQUIRE_NETNS") != "1",
    reason="needs root and iproute2 to make network namespaces",
)


@pytest.fixture
def network() -> Iterator[netns.Network]:
    net = netns.Network()
    yield net
    net.destroy()


def test_a_cut_off_worker_host_loses_its_job_to_another(network: netns.Network, catalogs: tuple[Path, Path]) -> None:
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed")
    db_host, host_b, host_c = network.add_host(), network.add_host(), network.add_host()
    postgres = Postgres(bindir, host=db_host.address, prefix=db_host.prefix())
    postgres.start()
    home = Path(tempfile.mkdtemp(prefix="limner-multihost-"))
    # Shared media storage stands in for a network file system (or S3) all hosts mount.
    env = child_env(
        home,
        {
            "LIMNER_STORE": postgres.url,
            "LIMNER_STORAGE": (home / "files").as_uri(),
            "LIMNER_LEASE_S": "3",
            "LIMNER_HEARTBEAT_S": "0.5",
        },
    )
    procs: list[Proc] = []
    try:
        port = 7860
        api = Proc(
            ["serve", "--workers", "0", "--host", db_host.address, "--port", str(port), "--catalog", str(catalogs[0])],
            env,
            home / "api.log",
            prefix=db_host.prefix(),
        )
        procs.append(api)
        base = f"http://{db_host.address}:{port}"
        wait_http(f"{base}/healthz", api)
        for host in (host_b, host_c):
            worker_env = {**env, "LIMNER_HOME": str(home / host.name)}
            procs.append(
                Proc(
                    ["worker", "--catalog", str(catalogs[0])],
                    worker_env,
                    home / f"{host.name}.log",
                    prefix=host.prefix(),
                )
            )
        wait_workers(base, 2)
        with httpx.Client(base_url=base, timeout=30) as http:
            handle = submit(http, "test/slow-sd", {"prompt": "far away", "seed": 2, "num_inference_steps": 400})
            wait_state(http, "test/slow-sd", handle["request_id"], lambda b: b["progress"].get("step", 0) > 3)
            holder = None
            while holder is None:
                workers = http.get("/v1/workers").json()["workers"]
                holder = next((w for w in workers if handle["request_id"] in w["current_jobs"]), None)
                time.sleep(0.1)
            first_host = next(h for h in (host_b, host_c) if holder["pid"] in h.pids())
            first_host.cut_off()  # the cable is pulled; the process runs on, unreachable
            final = wait_done(http, "test/slow-sd", handle["request_id"], timeout=240)
            assert final["state"] == "succeeded" and final["attempts"] == 2
            logs = [line["message"] for line in http.get(handle["status_url"], params={"logs": 1}).json()["logs"]]
            claims = [m for m in logs if m.startswith("claimed by")]
            assert len(claims) == 2 and claims[0] != claims[1]
            assert logs.count("succeeded") == 1
            assert result(http, "test/slow-sd", handle["request_id"])["images"]
    finally:
        for proc in procs:
            proc.stop(timeout=5)
        postgres.destroy()
