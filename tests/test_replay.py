"""Reproducible results through the HTTP API: every result records its provenance, a replay
runs the same resolved input again and reports whether the outputs are identical, and a diff
lists what differs between two requests. One server of its own with API keys on (an admin
key from the CLI, member keys of projects alpha and beta), as in test_tenancy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata

import httpx
import pytest

from tests.conftest import Live
from tests.jobs import wait_done
from tests.live import create_key, project_keys, start_live, stop_live

CATALOG = """
models:
  - id: test/faults
    task: text-to-image
    family: faults
    source: builtin://faults
    title: Fails on request (see limner.adapters.faults)
    defaults: {width: 64, height: 64, num_inference_steps: 1}
"""
SD = "limner/tiny-sd"
FAULTS = "test/faults"


@dataclass
class Keys:
    live: Live
    alpha: str
    beta: str

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.live.base, timeout=120, headers={"Authorization": f"Key {key}"})


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    catalog = tmp_path_factory.mktemp("replay") / "catalog.yaml"
    catalog.write_text(CATALOG)
    live = start_live(catalog)
    members = project_keys(live.base, create_key(live.home, live.env))
    yield Keys(live, members["alpha"], members["beta"])
    stop_live(live)


def run(http: httpx.Client, model: str, body: dict[str, object]) -> dict[str, object]:
    response = http.post(f"/v1/queue/{model}", json=body, headers={"X-Limner-Cache": "off"})
    assert response.status_code == 202, response.text
    request_id = str(response.json()["request_id"])
    assert wait_done(http, model, request_id)["state"] == "succeeded"
    answer = http.get(f"/v1/queue/{model}/requests/{request_id}")
    assert answer.status_code == 200, answer.text
    return {"request_id": request_id, **answer.json()}


def test_results_record_what_made_them(keys: Keys) -> None:
    with keys.client(keys.alpha) as alpha:
        made = run(alpha, SD, {"prompt": "a lighthouse at dusk", "seed": 11, "num_inference_steps": 2})
        plain = run(alpha, FAULTS, {"prompt": "plain", "seed": 3})
    provenance = made["provenance"]
    assert isinstance(provenance, dict)
    model = provenance["model"]
    # A tiny build's revision is the sha256 of its weight files and configs.
    assert model["id"] == SD and model["revision"].startswith("tiny-") and len(model["revision"]) == 5 + 64
    assert model["family"] == "diffusers-image" and model["source"] == "tiny://sd"
    assert model["scheduler"] == "EulerDiscreteScheduler" and model["dtype"] == "float32" and model["device"] == "cpu"
    libraries = provenance["environment"]["libraries"]
    for name in ("torch", "diffusers", "transformers", "limner"):
        assert libraries[name] == metadata.version(name)
    assert provenance["seed"] == 11 and provenance["loras"] == []
    assert provenance["input"] == made["input"] and provenance["input"]["num_inference_steps"] == 2
    # Every family, not only images: the faults family has no scheduler nor dtype of its own.
    other = plain["provenance"]
    assert isinstance(other, dict)
    assert other["model"]["family"] == "faults" and other["model"]["revision"] == "faults-1"
    assert other["model"]["scheduler"] is None and other["seed"] == 3
    assert other["environment"] == provenance["environment"]


def test_a_replay_reproduces_the_same_bytes(keys: Keys) -> None:
    with keys.client(keys.alpha) as alpha:
        first = run(alpha, SD, {"prompt": "a red bicycle", "seed": 5, "num_inference_steps": 2, "num_outputs": 2})
        answer = alpha.post(f"/v1/requests/{first['request_id']}/replay")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["replay_of"] == first["request_id"] and body["state"] == "succeeded"
        comparison = body["comparison"]
        assert comparison["identical"] is True and len(comparison["files"]) == 2
        assert all(f["sha256_a"] == f["sha256_b"] for f in comparison["files"])
        again = alpha.get(body["response_url"]).json()
        assert again["input"] == first["input"] and again["seed"] == 5
        # Same input, model and environment: nothing differs.
        diff = alpha.get(body["diff_url"])
        assert diff.status_code == 200, diff.text
        assert diff.json()["differences"] == [] and diff.json()["outputs"]["identical"] is True


def test_a_diff_names_each_difference_and_the_pixel_change(keys: Keys) -> None:
    with keys.client(keys.alpha) as alpha:
        a = run(alpha, SD, {"prompt": "a green field", "seed": 1, "num_inference_steps": 2})
        b = run(alpha, SD, {"prompt": "a green field", "seed": 2, "num_inference_steps": 3})
        c = run(alpha, FAULTS, {"prompt": "plain", "seed": 1})
        body = alpha.get(f"/v1/requests/{a['request_id']}/diff/{b['request_id']}").json()
        across = alpha.get(f"/v1/requests/{a['request_id']}/diff/{c['request_id']}").json()
    found = {d["path"]: (d["a"], d["b"]) for d in body["differences"]}
    assert found == {"seed": (1, 2), "input.seed": (1, 2), "input.num_inference_steps": (2, 3)}
    image = body["outputs"]["files"][0]
    assert body["outputs"]["identical"] is False and image["sha256_a"] != image["sha256_b"]
    assert 0 < image["pixels"]["mean_abs_diff"] <= image["pixels"]["max_abs_diff"] <= 255
    paths = {d["path"] for d in across["differences"]}
    assert {"model.id", "model.family", "model.revision", "model.scheduler", "model.dtype"} <= paths


def test_replay_and_diff_stay_in_their_project(keys: Keys) -> None:
    with keys.client(keys.alpha) as alpha, keys.client(keys.beta) as beta:
        mine = run(alpha, SD, {"prompt": "alpha's secret", "seed": 9, "num_inference_steps": 2})
        theirs = run(beta, SD, {"prompt": "beta's own", "seed": 9, "num_inference_steps": 2})
        for answer in (
            beta.post(f"/v1/requests/{mine['request_id']}/replay"),
            beta.get(f"/v1/requests/{mine['request_id']}/diff/{theirs['request_id']}"),
            beta.get(f"/v1/requests/{theirs['request_id']}/diff/{mine['request_id']}"),
        ):
            assert answer.status_code == 404 and answer.json()["error_type"] == "request_not_found"
            assert "secret" not in answer.text
        # Not waiting: a handle at once; the replay is alpha's, and its diff follows later.
        handle = alpha.post(f"/v1/requests/{mine['request_id']}/replay", params={"wait": "false"})
        assert handle.status_code == 202, handle.text
        replay_id = handle.json()["request_id"]
        assert wait_done(alpha, SD, replay_id)["state"] == "succeeded"
        assert beta.get(f"/v1/queue/{SD}/requests/{replay_id}/status").status_code == 404
        later = alpha.get(handle.json()["diff_url"]).json()
        assert later["differences"] == [] and later["outputs"]["identical"] is True
        missing = alpha.post("/v1/requests/no-such-request/replay")
        assert missing.status_code == 404 and missing.json()["error_type"] == "request_not_found"
