"""Tenants stay apart: a member key sees and controls only its project's jobs, files, requests,
usage and webhook deliveries; another project's are 404s, as if they did not exist; cache hits
never cross projects unless the model shares its cache; admin-only routes refuse members.

One server of its own with API keys on: the first key (an admin) made by the CLI, two member
keys of projects alpha and beta made through POST /v1/keys."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import openai
import pytest
from PIL import Image
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import Live
from tests.jobs import data_uri, wait_done
from tests.live import start_live, stop_live
from tests.receiver import receiver
from tests.services import ROOT

CATALOG = """
models:
  - id: test/shared-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    title: Tiny SD whose cache every project shares
    defaults: {width: 64, height: 64, num_inference_steps: 2, guidance_scale: 5.0}
    runtime: {dtype: float32, memory_mb: 64}
    cache: {shared: true}
"""
MODEL = "limner/tiny-sd"
ADMIN_ONLY = [
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("DELETE", "/v1/keys/key_nope"),
    ("GET", "/v1/workers"),
    ("GET", "/v1/cache"),
    ("DELETE", f"/v1/cache/{MODEL}"),
    ("GET", "/metrics"),
    ("GET", "/v1/quality"),
    ("GET", "/v1/webhooks/secret"),
]


@dataclass
class Tenants:
    live: Live
    admin: str
    alpha: str
    beta: str

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.live.base, timeout=60, headers={"Authorization": f"Key {key}"})


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    catalog = tmp_path_factory.mktemp("tenancy") / "catalog.yaml"
    catalog.write_text(CATALOG)
    live = start_live(catalog, env={"LIMNER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"})
    made = subprocess.run(
        [sys.executable, "-m", "limner", "keys", "create", "--name", "ops", "--home", str(live.home)],
        env=live.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    admin = made.stdout.strip()
    assert "admin of project" in made.stderr
    with httpx.Client(base_url=live.base, timeout=60, headers={"Authorization": f"Key {admin}"}) as http:
        keys = {}
        for project in ("alpha", "beta"):
            answer = http.post("/v1/keys", json={"name": f"team {project}", "project": project})
            assert answer.status_code == 201, answer.text
            body = answer.json()
            assert body["role"] == "member" and body["project"] == project and body["key"].startswith("lmk_")
            keys[project] = body["key"]
    yield Tenants(live, admin, keys["alpha"], keys["beta"])
    stop_live(live)


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_jobs_requests_and_streams_stay_in_their_project(tenants: Tenants) -> None:
    with tenants.client(tenants.alpha) as alpha, tenants.client(tenants.beta) as beta:
        handle = alpha.post(f"/v1/queue/{MODEL}", json={"prompt": "alpha's secret prompt", "seed": 7}).json()
        job = handle["request_id"]
        wait_done(alpha, MODEL, job)
        root = f"/v1/queue/{MODEL}/requests/{job}"
        for path in (f"{root}/status", root, f"{root}/status/stream", f"{root}/webhooks"):
            assert alpha.get(path).status_code in (200, 202), path
            hidden = beta.get(path)
            assert hidden.status_code == 404 and hidden.json()["error_type"] == "request_not_found", path
            assert "secret" not in hidden.text
        assert beta.put(f"{root}/cancel").status_code == 404
        ws = tenants.live.base.replace("http://", "ws://") + f"{root}/status/ws"
        with connect(f"{ws}?key={tenants.alpha}", open_timeout=10) as socket:
            assert json.loads(socket.recv(timeout=10))["request_id"] == job
        with connect(f"{ws}?key={tenants.beta}", open_timeout=10) as socket, pytest.raises(ConnectionClosed) as shut:
            socket.recv(timeout=10)  # nothing is sent: the socket closes as for an unknown request
        assert shut.value.rcvd is not None and shut.value.rcvd.code == 4404
        listed = {r["request_id"] for r in beta.get("/v1/requests").json()["requests"]}
        assert job not in listed
        assert job in {r["request_id"] for r in alpha.get("/v1/requests").json()["requests"]}
        # Filtering by another project's key finds nothing either.
        key_filter = beta.get("/v1/requests", params={"key": handle.get("api_key_id", "")}).json()["requests"]
        assert all(r["request_id"] != job for r in key_filter)
    with tenants.client(tenants.admin) as admin:
        assert admin.get(f"{root}/status").status_code == 200  # admins see every project
        assert job in {r["request_id"] for r in admin.get("/v1/requests").json()["requests"]}


def test_files_belong_to_their_project(tenants: Tenants) -> None:
    with tenants.client(tenants.alpha) as alpha, tenants.client(tenants.beta) as beta:
        upload = alpha.post("/v1/files", content=png((200, 10, 10)), headers={"Content-Type": "image/png"}).json()
        assert upload["key"].startswith("projects/alpha/uploads/")
        bare = upload["url"].split("?")[0]
        path = urlparse(bare).path
        assert alpha.get(path).status_code == 200
        assert beta.get(path).status_code == 404  # with its own key: as if the file did not exist
        assert httpx.get(upload["url"]).status_code == 200  # a signed URL is a capability for that file
        # Beta may not feed alpha's file (signed or not) into its own job.
        for url in (bare, upload["url"]):
            refused = beta.post(f"/v1/queue/{MODEL}-img2img", json={"prompt": "steal", "image": url})
            assert refused.status_code == 422 and "does not hold" in refused.text, refused.text
        taken = alpha.post(f"/v1/queue/{MODEL}-img2img", json={"prompt": "mine", "image": bare})
        assert taken.status_code == 202, taken.text
        done = wait_done(alpha, f"{MODEL}-img2img", taken.json()["request_id"])
        assert done["state"] == "succeeded", done
        result = alpha.get(f"/v1/queue/{MODEL}-img2img/requests/{taken.json()['request_id']}").json()
        output = urlparse(result["images"][0]["url"]).path
        assert "/projects/alpha/results/" in output
        assert beta.get(output).status_code == 404 and alpha.get(output).status_code == 200


def test_cache_hits_never_cross_projects_unless_shared(tenants: Tenants) -> None:
    body = {"prompt": "a cached lighthouse", "seed": 11}
    with tenants.client(tenants.alpha) as alpha, tenants.client(tenants.beta) as beta:
        for model, shared in ((MODEL, False), ("test/shared-sd", True)):
            first = alpha.post(f"/v1/run/{model}", json=body).json()
            assert "cache" not in first or not first["cache"], first.get("cache")
            again = alpha.post(f"/v1/run/{model}", json=body).json()
            assert again["cache"]["hit"] == "exact"
            other = beta.post(f"/v1/run/{model}", json=body).json()
            if shared:
                assert other["cache"]["hit"] == "exact"
            else:
                assert not other.get("cache"), other["cache"]  # beta's own run, not alpha's image
            assert other["images"][0]["url"] != first["images"][0]["url"] or shared


def test_usage_and_deliveries_are_per_project(tenants: Tenants) -> None:
    with receiver() as hook, tenants.client(tenants.beta) as beta, tenants.client(tenants.alpha) as alpha:
        hooked = beta.post(f"/v1/queue/{MODEL}", params={"webhook_url": hook.url}, json={"prompt": "hook"}).json()
        wait_done(beta, MODEL, hooked["request_id"])
        hook.wait_for(lambda seen: len(seen) >= 1)
        mine = beta.get("/v1/webhooks/deliveries").json()["deliveries"]
        assert mine and all(d["request_id"] == hooked["request_id"] for d in mine)
        assert alpha.get("/v1/webhooks/deliveries").json()["deliveries"] == []
        assert alpha.get(f"/v1/webhooks/deliveries/{mine[0]['id']}").status_code == 404
        assert alpha.post(f"/v1/webhooks/deliveries/{mine[0]['id']}/replay").status_code == 404
        beta_usage = beta.get("/v1/usage", params={"group_by": "project"}).json()
        assert [row["project"] for row in beta_usage["usage"]] == ["beta"]
        alpha_usage = alpha.get("/v1/usage", params={"group_by": "project"}).json()
        assert [row["project"] for row in alpha_usage["usage"]] == ["alpha"]
    with tenants.client(tenants.admin) as admin:
        every = admin.get("/v1/usage", params={"group_by": "project"}).json()
        assert {"alpha", "beta"} <= {row["project"] for row in every["usage"]}
        assert every["totals"]["jobs"] > beta_usage["totals"]["jobs"]


def test_openai_route_jobs_are_the_callers(tenants: Tenants) -> None:
    client = openai.OpenAI(base_url=f"{tenants.live.base}/v1", api_key=tenants.beta, max_retries=0)
    response = client.images.with_raw_response.generate(model=MODEL, prompt="beta via openai", n=1)
    job = response.headers["x-limner-request-id"]
    with tenants.client(tenants.alpha) as alpha, tenants.client(tenants.beta) as beta:
        assert alpha.get(f"/v1/queue/{MODEL}/requests/{job}").status_code == 404
        assert beta.get(f"/v1/queue/{MODEL}/requests/{job}").status_code == 200


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
def test_admin_only_routes_refuse_members(tenants: Tenants, method: str, path: str) -> None:
    body = {"name": "x"} if method == "POST" else None
    with tenants.client(tenants.alpha) as member:
        refused = member.request(method, path, json=body)
        assert refused.status_code == 403 and "admin API key" in refused.json()["detail"][0]["msg"], refused.text
    with tenants.client(tenants.admin) as admin:
        allowed = admin.request(method, path, json=body)
        assert allowed.status_code in (200, 201, 404), allowed.text  # 404: no such key, the route itself works


def test_data_uri_inputs_land_in_the_callers_project(tenants: Tenants) -> None:
    with tenants.client(tenants.beta) as beta:
        image = Image.new("RGB", (64, 64), (1, 2, 3))
        handle = beta.post(f"/v1/queue/{MODEL}-img2img", json={"prompt": "x", "image": data_uri(image)}).json()
        status = beta.get(f"/v1/queue/{MODEL}-img2img/requests/{handle['request_id']}/status").json()
        assert status["request_id"] == handle["request_id"]
        wait_done(beta, f"{MODEL}-img2img", handle["request_id"])
        result = beta.get(f"/v1/queue/{MODEL}-img2img/requests/{handle['request_id']}").json()
        assert "/projects/beta/inputs/" in result["input"]["image"]


def test_a_members_key_cannot_make_or_see_keys_but_cli_keys_list_shows_projects(tenants: Tenants) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "limner", "keys", "list", "--json", "--home", str(tenants.live.home)],
        env=tenants.live.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    keys = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {(k["role"], k["project"]) for k in keys} >= {("member", "alpha"), ("member", "beta")}
    assert sum(k["role"] == "admin" for k in keys) == 1
    assert Path(tenants.live.home).is_dir()
