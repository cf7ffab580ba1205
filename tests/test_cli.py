"""The `limner` command against a live server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from PIL import Image

from tests.conftest import Live
from tests.jobs import submit


def limner(live: Live, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "limner", *args, "--url", live.base],
        capture_output=True,
        text=True,
        timeout=300,
        env=live.env,
    )


def test_run_saves_the_images(live: Live, tmp_path: Path) -> None:
    done = limner(
        live,
        "run",
        "limner/tiny-sd",
        "-i",
        "prompt=a small boat",
        "-i",
        "seed=3",
        "-i",
        "num_outputs=2",
        "--out",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["seed"] == 3 and len(body["images"]) == 2
    saved = sorted(tmp_path.glob("*.png"))
    assert [p.name for p in saved] == ["images-0.png", "images-1.png"]  # under their own names, as curl -o
    assert f"saved images → {tmp_path / 'images-0.png'}" in done.stderr
    assert Image.open(saved[0]).size == (64, 64)
    # A saved file goes back in as an input with key=@path.
    again = limner(live, "run", "limner/tiny-sd-img2img", "-i", "prompt=paint it", "-i", f"image=@{saved[0]}")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["images"][0]["width"] == 64


def test_run_reports_bad_input(live: Live) -> None:
    done = limner(live, "run", "limner/tiny-sd", "-i", "prompt=x", "-i", "width=4096")
    assert done.returncode == 1
    assert "max_width" in done.stderr


def test_models_and_jobs(live: Live, http: httpx.Client) -> None:
    listed = limner(live, "models", "list")
    assert listed.returncode == 0 and "limner/tiny-flux" in listed.stdout
    shown = json.loads(limner(live, "models", "show", "limner/tiny-sd").stdout)
    assert shown["input_schema"]["properties"]["width"]["maximum"] == 512
    handle = submit(http, "test/unserved", {"prompt": "cancel me from the CLI"})
    assert (
        limner(live, "jobs", "cancel", "test/unserved", handle["request_id"]).stdout.strip() == "CANCELLATION_REQUESTED"
    )
    shown_job = json.loads(limner(live, "jobs", "show", "test/unserved", handle["request_id"]).stdout)
    assert shown_job["state"] == "canceled" and shown_job["logs"]
    jobs = limner(live, "jobs", "list", "--status", "canceled", "--limit", "100")
    assert jobs.returncode == 0 and handle["request_id"][:8] in jobs.stdout


def test_no_wait_prints_the_handle(live: Live) -> None:
    done = limner(live, "run", "limner/tiny-sd", "-i", "prompt=later", "--no-wait")
    assert done.returncode == 0
    assert set(json.loads(done.stdout)) == {"request_id", "status_url", "response_url", "cancel_url"}
