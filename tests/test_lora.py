"""LoRA training as a durable job, and LoRAs per request, through the HTTP API.

One server of this module's own (API + worker) trains tiny LoRAs on real photos for a few
steps, then the tiny SD applies them. A loopback file server stands in for another host
(``LIMNER_FETCH_ALLOW_HOSTS=127.0.0.1``), so LoRAs by URL, and a pickle by URL, take the real
fetch path. The resume test kills a worker with SIGKILL mid-training (its own stack).
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from tests.conftest import Live
from tests.jobs import generate, pixels, result, submit, wait_done, wait_state
from tests.live import start_live, stop_live
from tests.photos import chelsea, coffee, grace_hopper
from tests.services import wait_workers
from tests.test_recovery import Stack

TRAIN = "limner/train-lora-tiny-sd"
SD = "limner/tiny-sd"
SLOW_TRAIN = "test/slow-train"
HOTSWAP = "test/sd-hotswap"
CATALOG = """
models:
  - id: test/slow-train
    task: lora-training
    family: lora-trainer
    source: tiny://sd
    defaults: {steps: 40, rank: 4, learning_rate: 0.001, resolution: 64}
    limits: {max_steps: 5000, max_rank: 8, max_resolution: 64, max_images: 8}
    runtime: {dtype: float32, memory_mb: 64, timeout_s: 3600, max_attempts: 5, training: {validation_steps: 2}}
    cache: {mode: "off"}
  - id: test/sd-hotswap
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {width: 64, height: 64, num_inference_steps: 4, guidance_scale: 5.0}
    runtime: {dtype: float32, memory_mb: 64, lora_hotswap_rank: 8}
"""


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.resize((96, 80)).save(buffer, "PNG")
    return buffer.getvalue()


def training_zip() -> bytes:
    """Three real photos, one with its caption beside it (name.txt), as a training zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cat.png", _png(chelsea()))
        archive.writestr("cat.txt", "zxq cat on a rug")
        archive.writestr("cup.png", _png(coffee()))
        archive.writestr("person.png", _png(grace_hopper()))
    return buffer.getvalue()


class Files(ThreadingHTTPServer):
    """A loopback file server standing in for another host."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("served")
    handler = lambda *a, **k: SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
    server = Files(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    catalog = tmp_path_factory.mktemp("lora-catalog") / "lora.yaml"
    catalog.write_text(CATALOG)
    live = start_live(catalog, env={"LIMNER_FETCH_ALLOW_HOSTS": "127.0.0.1", "LIMNER_THREADS": "1"})
    yield live
    stop_live(live)


@pytest.fixture
def api(stack: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def trained(stack: Live) -> dict[str, Any]:
    """A tiny LoRA trained from an uploaded zip, followed as it goes."""
    with httpx.Client(base_url=stack.base, timeout=60) as http:
        upload = http.post("/v1/files", content=training_zip())
        assert upload.status_code == 201, upload.text
        assert upload.json()["kind"] == "archive" and upload.json()["images"] == 3
        body = {
            "images": upload.json()["url"],
            "trigger_word": "zxq",
            "steps": 12,
            "checkpoint_every": 6,
            "validation_prompts": ["a photo of zxq"],
            "seed": 1,
        }
        handle = submit(http, TRAIN, body)
        seen: list[dict[str, Any]] = []

        def training(status: dict[str, Any]) -> bool:
            seen.append(status)
            stepping = status["progress"]["stage"] in ("training", "checkpointing") and status["progress"]["step"] >= 1
            return bool(stepping or status["status"] == "COMPLETED")

        wait_state(http, TRAIN, handle["request_id"], training, timeout=300)
        final = wait_done(http, TRAIN, handle["request_id"], timeout=600)
        assert final["state"] == "succeeded", final
        out = result(http, TRAIN, handle["request_id"])
        return {"handle": handle, "result": out, "seen": seen, "final": final}


def test_training_makes_a_registered_safetensors_lora(api: httpx.Client, trained: dict[str, Any]) -> None:
    out = trained["result"]
    lora = out["lora"]
    data = api.get(lora["url"]).content
    tensors = load_safetensors(data)
    assert tensors and all("lora" in name for name in tensors)  # the diffusers LoRA layout
    assert all(name.startswith("unet.") for name in tensors)
    assert lora["file_size"] == len(data) and lora["rank"] == 4 and lora["trigger_word"] == "zxq"
    assert lora["base_model"] == "tiny://sd" and lora["revision"] == 1 and lora["id"].startswith("lora_")
    assert [c["step"] for c in out["checkpoints"]] == [6, 12]
    for checkpoint in out["checkpoints"]:
        assert load_safetensors(api.get(checkpoint["url"]).content)
        [image] = checkpoint["validation_images"]
        assert api.get(image["url"]).headers["content-type"] == "image/png"
    assert len(out["loss_curve"]) == 12 and out["stopped_early"] is False
    # Progress writes are coalesced (every 0.2 s) and 12 tiny steps are quick, so the poll may
    # meet the job in its training stage or while a checkpoint is written: both show the step,
    # the total and the loss.
    stages = ("training", "checkpointing")
    training = [s for s in trained["seen"] if s["progress"]["stage"] in stages and s["progress"]["step"]]
    assert training and "loss" in training[-1]["progress"] and training[-1]["progress"]["total"] == 12
    assert [c["step"] for c in trained["final"]["checkpoints"]] == [6, 12]  # shown in the status too
    listed = api.get("/v1/loras").json()["loras"]
    assert lora["id"] in [item["id"] for item in listed]
    detail = api.get(f"/v1/loras/{lora['id']}").json()
    assert detail["sha256"] == lora["sha256"] and len(detail["checkpoints"]) == 2


def test_lora_changes_the_output_at_scale_1_and_not_at_0(api: httpx.Client, trained: dict[str, Any]) -> None:
    lora_id = trained["result"]["lora"]["id"]
    base = {"prompt": "a photo of zxq", "seed": 11}
    plain = pixels(api, generate(api, SD, base)["images"][0]["url"])
    full = generate(api, SD, {**base, "loras": [{"path": lora_id, "scale": 1.0}]})
    zero = generate(api, SD, {**base, "loras": [{"path": lora_id, "scale": 0.0}]})
    changed = np.abs(pixels(api, full["images"][0]["url"]).astype(float) - plain).mean()
    assert changed > 0.5
    assert np.array_equal(pixels(api, zero["images"][0]["url"]), plain)
    [used] = full["loras"]
    assert used == {"path": lora_id, "id": lora_id, "revision": 1, "sha256": trained["result"]["lora"]["sha256"],
                    "scale": 1.0}  # fmt: skip


def test_two_loras_at_once_and_a_promoted_checkpoint(api: httpx.Client, trained: dict[str, Any]) -> None:
    out = trained["result"]
    lora_id, first = out["lora"]["id"], out["checkpoints"][0]
    base = {"prompt": "a photo of zxq", "seed": 12}
    one = pixels(api, generate(api, SD, {**base, "loras": [{"path": lora_id, "scale": 1.0}]})["images"][0]["url"])
    both = generate(api, SD, {**base, "loras": [{"path": lora_id, "scale": 1.0}, {"path": first["url"], "scale": 1.0}]})
    assert [u["sha256"] for u in both["loras"]] == [out["lora"]["sha256"], first["sha256"]]
    assert np.abs(pixels(api, both["images"][0]["url"]).astype(float) - one).mean() > 0.1
    promoted = api.post(f"/v1/loras/{lora_id}/promote", json={"step": 6})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["revision"] == 2 and promoted.json()["sha256"] == first["sha256"]
    again = generate(api, SD, {**base, "loras": [{"path": lora_id, "scale": 1.0}]})
    assert again["loras"][0]["revision"] == 2 and again["loras"][0]["sha256"] == first["sha256"]
    assert not np.array_equal(pixels(api, again["images"][0]["url"]), one)  # not the cached image
    missing = api.post(f"/v1/loras/{lora_id}/promote", json={"step": 7})
    assert missing.status_code == 422 and "6, 12" in missing.text


def test_hotswap_swaps_weights_in_place(api: httpx.Client, trained: dict[str, Any]) -> None:
    out = trained["result"]
    base = {"prompt": "a photo of zxq", "seed": 13}
    outputs = []
    for path in (out["lora"]["url"], out["checkpoints"][0]["url"], out["lora"]["url"]):
        made = generate(api, HOTSWAP, {**base, "loras": [{"path": path, "scale": 1.0}]})
        outputs.append(pixels(api, made["images"][0]["url"]))
    assert np.array_equal(outputs[0], outputs[2]) and not np.array_equal(outputs[0], outputs[1])
    plain = generate(api, SD, {**base, "loras": [{"path": out["lora"]["url"], "scale": 1.0}]})
    assert np.array_equal(pixels(api, plain["images"][0]["url"]), outputs[0])  # same weights, same image


def test_lora_urls_pickles_local_paths_and_private_urls(api: httpx.Client, folder: tuple[Path, str]) -> None:
    root, served = folder
    (root / "model.bin").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    (root / "plain.safetensors").write_bytes(b'\x0e\x00\x00\x00\x00\x00\x00\x00{"a":"b"}     ')
    cases = [
        (f"{served}/model.bin", "pickle"),
        (f"{served}/plain.safetensors", "not a valid safetensors file"),
        ("/etc/passwd", "never takes a local path"),
        ("file:///tmp/x.safetensors", "never takes a local path"),
        ("../weights.safetensors", "never takes a local path"),
        ("http://10.0.0.5/x.safetensors", "a private address"),
        ("http://169.254.169.254/x.safetensors", "metadata"),
        ("lora_0000000000000000", "there is no LoRA"),
    ]
    for path, words in cases:
        response = api.post(f"/v1/queue/{SD}", json={"prompt": "x", "loras": [{"path": path}]})
        assert response.status_code == 422, (path, response.text)
        detail = response.json()["detail"][0]
        assert words in detail["msg"], (path, detail)
        assert detail["loc"][:2] == ["body", "loras"]
    forged = api.post(f"/v1/queue/{SD}", json={"prompt": "x", "loras": [{"path": "lora_00000000", "file": "x"}]})
    assert forged.status_code == 422 and "set by the server" in forged.text


def test_a_lora_by_url_from_another_host(api: httpx.Client, trained: dict[str, Any], folder: tuple[Path, str]) -> None:
    root, served = folder
    # The id names the LoRA's current revision (another test may have promoted a checkpoint).
    current = api.get(f"/v1/loras/{trained['result']['lora']['id']}").json()
    (root / "mine.safetensors").write_bytes(api.get(current["url"]).content)
    by_url = generate(
        api, SD, {"prompt": "a photo of zxq", "seed": 14, "loras": [{"path": f"{served}/mine.safetensors"}]}
    )
    by_id = generate(api, SD, {"prompt": "a photo of zxq", "seed": 14, "loras": [{"path": current["id"]}]})
    assert by_url["loras"][0]["sha256"] == current["sha256"] == by_id["loras"][0]["sha256"]
    assert np.array_equal(pixels(api, by_url["images"][0]["url"]), pixels(api, by_id["images"][0]["url"]))


def test_zip_bombs_and_bad_training_inputs_are_refused(api: httpx.Client) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.png", b"\x00" * 5_000_000)  # 5 MB of zeros in a few KB
    response = api.post("/v1/files", content=bomb.getvalue())
    assert response.status_code == 422 and "zip bomb" in response.text
    response = api.post(f"/v1/queue/{TRAIN}", json={"images": [], "steps": 4})
    assert response.status_code == 422 and "images is empty" in response.text
    response = api.post(f"/v1/queue/{TRAIN}", json={"images": training_zip_uri(), "steps": 5000})
    assert response.status_code == 422 and "limits.max_steps" in response.text
    response = api.post(f"/v1/queue/{TRAIN}", json={"images": training_zip_uri(), "rank": 64})
    assert response.status_code == 422 and "limits.max_rank" in response.text
    response = api.post(f"/v1/queue/{TRAIN}", json={"images": training_zip_uri(), "prior_preservation": True})
    assert response.status_code == 422 and "class_prompt" in response.text


def training_zip_uri() -> str:
    import base64

    return "data:application/zip;base64," + base64.b64encode(training_zip()).decode()


def test_early_stopping(api: httpx.Client) -> None:
    body = {
        "images": training_zip_uri(),
        "steps": 200,
        "checkpoint_every": 50,
        "seed": 2,
        # No evaluation can improve on the first by 1e9: the run stops after `patience` more.
        "early_stopping": {"patience": 2, "min_delta": 1e9, "eval_every": 3},
    }
    out = generate_training(api, SLOW_TRAIN, body)
    assert out["stopped_early"] is True and "did not improve" in out["stop_reason"]
    assert out["steps_done"] == 9 and len(out["loss_curve"]) == 9
    assert out["best_checkpoint"] == 3
    assert out["checkpoints"][-1]["step"] == 9 and out["checkpoints"][-1]["heldout_loss"] is not None


def generate_training(api: httpx.Client, model: str, body: dict[str, Any]) -> dict[str, Any]:
    handle = submit(api, model, body)
    status = wait_done(api, model, handle["request_id"], timeout=600)
    assert status["state"] == "succeeded", status
    return result(api, model, handle["request_id"])


def test_cancel_mid_training(api: httpx.Client) -> None:
    handle = submit(api, SLOW_TRAIN, {"images": training_zip_uri(), "steps": 4000, "seed": 3})
    wait_state(api, SLOW_TRAIN, handle["request_id"], lambda s: s["progress"].get("step", 0) >= 3, timeout=300)
    assert api.put(handle["cancel_url"]).json()["status"] == "CANCELLATION_REQUESTED"
    final = wait_done(api, SLOW_TRAIN, handle["request_id"], timeout=120)
    assert final["state"] == "canceled"
    assert final["progress"]["step"] < 4000


def test_loras_belong_to_their_project(tmp_path: Path) -> None:
    """Keys on: a LoRA is its training key's project's; another project's key gets a 404 on it
    and cannot apply it; an admin key sees it."""
    catalog = tmp_path / "lora.yaml"
    catalog.write_text(CATALOG)
    live = start_live(catalog, env={"LIMNER_THREADS": "1"})
    try:
        made = subprocess.run(
            [sys.executable, "-m", "limner", "keys", "create", "--name", "ops", "--home", str(live.home)],
            env=live.env,
            capture_output=True,
            text=True,
            check=True,
        )
        admin = made.stdout.strip()
        keys = {}
        with httpx.Client(base_url=live.base, timeout=60, headers={"Authorization": f"Key {admin}"}) as http:
            for project in ("alpha", "beta"):
                keys[project] = http.post("/v1/keys", json={"name": project, "project": project}).json()["key"]
        clients = {
            name: httpx.Client(base_url=live.base, timeout=60, headers={"Authorization": f"Key {key}"})
            for name, key in {**keys, "admin": admin}.items()
        }
        alpha, beta, ops = clients["alpha"], clients["beta"], clients["admin"]
        body = {"images": training_zip_uri(), "steps": 2, "checkpoint_every": 2, "seed": 5}
        lora = generate_training(alpha, SLOW_TRAIN, body)["lora"]
        assert lora["project"] == "alpha"
        assert alpha.get(f"/v1/loras/{lora['id']}").status_code == 200
        assert [x["id"] for x in alpha.get("/v1/loras").json()["loras"]] == [lora["id"]]
        assert beta.get(f"/v1/loras/{lora['id']}").status_code == 404
        assert beta.delete(f"/v1/loras/{lora['id']}").status_code == 404
        assert beta.post(f"/v1/loras/{lora['id']}/promote", json={"step": 2}).status_code == 404
        assert beta.get("/v1/loras").json()["loras"] == []
        refused = beta.post(f"/v1/queue/{SD}", json={"prompt": "x", "loras": [{"path": lora["id"]}]})
        assert refused.status_code == 422 and "there is no LoRA" in refused.text
        assert ops.get(f"/v1/loras/{lora['id']}").status_code == 200
        assert alpha.delete(f"/v1/loras/{lora['id']}").json() == {"id": lora["id"], "deleted": True}
        assert alpha.get(f"/v1/loras/{lora['id']}").status_code == 404
        for client in clients.values():
            client.close()
    finally:
        stop_live(live)


def test_resume_after_sigkill_from_a_checkpoint(tmp_path: Path) -> None:
    catalog = tmp_path / "lora.yaml"
    catalog.write_text(CATALOG)
    stack = Stack(catalog)
    stack.env["LIMNER_THREADS"] = "1"
    try:
        stack.start_api()
        first = stack.start_worker()
        wait_workers(stack.base, 1)
        with httpx.Client(base_url=stack.base, timeout=60) as http:
            body = {"images": training_zip_uri(), "steps": 30, "checkpoint_every": 5, "seed": 4}
            handle = submit(http, SLOW_TRAIN, body)
            rid = handle["request_id"]
            mid = wait_state(http, SLOW_TRAIN, rid, lambda s: len(s.get("checkpoints") or []) >= 2, timeout=600)
            first.kill()  # SIGKILL mid-training
            saved = max(c["step"] for c in mid["checkpoints"])
            stack.start_worker()
            final = wait_done(http, SLOW_TRAIN, rid, timeout=600)
            # 2 attempts, or more when a loaded machine let a 2 s lease lapse: each resumes.
            assert final["state"] == "succeeded" and final["attempts"] >= 2
            out = result(http, SLOW_TRAIN, rid)
            resumed = out["resumed_from"]
            assert resumed is not None and resumed >= saved > 0
            assert out["steps_done"] == 30 and len(out["loss_curve"]) == 30  # the curve carried over
            assert [c["step"] for c in out["checkpoints"]] == [5, 10, 15, 20, 25, 30]
            logs = [line["message"] for line in http.get(handle["status_url"], params={"logs": 1}).json()["logs"]]
            assert f"resumed from the checkpoint at step {resumed} of 30 (not from step 0)" in logs
            assert any("returned to the queue" in m for m in logs)
    finally:
        stack.close()


def test_cli_trains_from_a_folder_and_lists_loras(stack: Live, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.png").write_bytes(_png(chelsea()))
    (photos / "cat.txt").write_text("zxq cat")
    (photos / "cup.png").write_bytes(_png(coffee()))
    (photos / "notes.md").write_text("not an image: left out of the zip")
    command = [sys.executable, "-m", "limner", "train", TRAIN, str(photos), "--trigger-word", "zxq", "--steps", "3",
               "-i", "checkpoint_every=3", "--url", stack.base]  # fmt: skip
    trained = subprocess.run(command, env=stack.env, capture_output=True, text=True, timeout=600, check=False)
    assert trained.returncode == 0, trained.stderr
    out = json.loads(trained.stdout)
    assert out["lora"]["trigger_word"] == "zxq" and out["steps_done"] == 3
    assert [image["caption"] for image in out["input"]["images"]] == ["zxq cat", None]
    listed = subprocess.run(
        [sys.executable, "-m", "limner", "loras", "list", "--url", stack.base],
        env={**stack.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out["lora"]["id"] in listed.stdout
