"""Settings and catalogs that cannot work stop `limner serve` and `limner worker` at start, with
one line naming the setting or the file and line; a model whose weights are merely absent does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import ROOT, child_env

BAD_FAMILY = """models:
  - id: acme/ok
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
  - id: acme/typo
    task: text-to-image
    family: difusers-image
    source: tiny://sd
"""


def start(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the command until it exits on its own (a good setup would keep serving: the timeout
    would fail the test)."""
    return subprocess.run(
        [sys.executable, "-m", "limner", *args],
        env=child_env(home, env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("command", [["serve", "--workers", "0", "--port", "0"], ["worker", "--processes", "1"]])
@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"LIMNER_QUOTAS": '{"default": {"jobs_per_minute": "lots"}}'}, "LIMNER_QUOTAS: default.jobs_per_minute"),
        ({"LIMNER_QUOTAS": "/no/such/quotas.yaml"}, "LIMNER_QUOTAS: cannot read the quota file /no/such/quotas.yaml"),
        ({"LIMNER_STORE": "mysql://db/limner"}, "LIMNER_STORE: 'mysql://db/limner' is not a job store URL"),
        ({"LIMNER_STORAGE": "ftp://files"}, "LIMNER_STORAGE: 'ftp://files' is not a storage URL"),
        ({"LIMNER_BASE_URL": "not a url"}, "LIMNER_BASE_URL: 'not a url' is not an http(s) URL"),
        ({"LIMNER_LEASE_S": "-1"}, "LIMNER_LEASE_S: Input should be greater than 0"),
    ],
)
def test_bad_settings_stop_the_process_naming_the_setting(
    tmp_path: Path, command: list[str], env: dict[str, str], words: str
) -> None:
    done = start(command, tmp_path, **env)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], done.stderr


@pytest.mark.parametrize("command", [["serve", "--workers", "0", "--port", "0"], ["worker", "--processes", "1"]])
def test_a_bad_catalog_stops_the_process_naming_file_and_line(tmp_path: Path, command: list[str]) -> None:
    catalog = tmp_path / "acme.yaml"
    catalog.write_text(BAD_FAMILY)
    done = start([*command, "--catalog", str(catalog)], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith(f"error: {catalog}:6: model acme/typo: ") and "family 'difusers-image'" in line


def test_unreadable_yaml_names_its_line(tmp_path: Path) -> None:
    catalog = tmp_path / "broken.yaml"
    catalog.write_text("models:\n  - id: a/b\n    task: [text-to-image\n")
    done = start(["worker", "--catalog", str(catalog)], tmp_path)
    assert done.returncode == 2 and f"error: {catalog}:4: not valid YAML" in done.stderr, done.stderr
