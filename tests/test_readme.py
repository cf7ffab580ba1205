"""The README's first session, run line for line against a live server: if a newcomer's paste
would fail, this fails."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.conftest import Live
from tests.services import ROOT


def session_blocks(readme: str) -> list[str]:
    """The ```sh blocks of the README's "A first session" section, in order."""
    section = readme.split("## A first session", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def test_the_readme_session_runs_as_written(live: Live, tmp_path: Path) -> None:
    blocks = session_blocks((ROOT / "README.md").read_text())
    assert len(blocks) == 2, "the session is the curl block and the CLI block"
    script = "\n".join(blocks)
    # The only changes: this server's address, and the CLI of this test's Python.
    script = script.replace("http://127.0.0.1:7860", live.base).replace(
        ".venv/bin/limner", f"{sys.executable} -m limner"
    )
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=tmp_path,
        env={**live.env, "LIMNER_URL": live.base},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    out = done.stdout
    # Each step did what its comment says.
    assert '"limner/tiny-sd"' in out
    assert '"status": "COMPLETED"' in out or '"status":"COMPLETED"' in out.replace(" ", "")
    with Image.open(tmp_path / "lighthouse.png") as image:
        assert image.format == "PNG" and image.size == (64, 64)
    start = out.index('{"detail":[{"loc":["body","width"]')  # curl prints no newline after a body
    refused, _ = json.JSONDecoder().raw_decode(out[start:])
    assert refused["error_type"] == "limit_exceeded" and "limits.max_width" in refused["detail"][0]["msg"]
    with Image.open(tmp_path / "out" / "images-0.png") as image:
        assert image.format == "PNG"
    assert "saved images → out/images-0.png" in done.stderr
    assert done.stdout.rstrip().endswith("ALREADY_COMPLETED")
