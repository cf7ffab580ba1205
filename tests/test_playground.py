"""The web playground in a real Chromium: Playwright drives Debian's chromium (never a browser
that `playwright install` downloads) against limner servers of this module's own.

Skipped when /usr/bin/chromium is absent, unless LIMNER_REQUIRE_CHROMIUM=1 (then it fails), as
LIMNER_REQUIRE_POSTGRES does for PostgreSQL. One browser for the session; a fresh tab (and so
a fresh sessionStorage) per test. A screenshot of each page goes to $LIMNER_TEST_ARTIFACTS (or
tests/artifacts/)/playground/; LIMNER_UPDATE_DOCS=1 also writes docs/playground.png."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.jobs import wait_done
from tests.services import ROOT, Proc, child_env, free_port, wait_http, wait_workers

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    if os.environ.get("LIMNER_REQUIRE_CHROMIUM") == "1":
        pytest.fail("/usr/bin/chromium is not installed, and LIMNER_REQUIRE_CHROMIUM=1", pytrace=False)
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import BrowserContext, Page, expect, sync_playwright  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("LIMNER_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts") / "playground"
DOCS_SHOT = ROOT / "docs" / "playground.png"
WAIT_MS = 180_000  # how long a step may take on a loaded 2-core machine (not a bound on speed)
expect.set_options(timeout=WAIT_MS)

CATALOG = """
models:
  - id: test/ui-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    title: Tiny SD with room for many steps
    description: Random weights at toy size, for the playground's tests.
    defaults: {width: 64, height: 64, num_inference_steps: 4, guidance_scale: 5.0}
    limits: {max_width: 256, max_height: 256, max_steps: 5000, max_outputs: 2}
    runtime: {dtype: float32, max_batch_size: 1, memory_mb: 64}
  - id: test/ui-faults
    task: text-to-image
    family: faults
    source: builtin://faults
    title: Fails on request
    defaults: {width: 64, height: 64, num_inference_steps: 1}
  - id: test/ui-offline
    task: text-to-image
    family: diffusers-image
    source: hf://limner-tests/not-on-this-machine
    title: A hub model this machine cannot reach
    runtime: {dtype: float32}
workflows:
  - id: test/ui-chain
    title: Draft, then restyle the draft
    inputs:
      prompt: {type: string, required: true}
      seed: {type: integer}
    steps:
      - id: draft
        model: test/ui-sd
        input: {prompt: $input.prompt, seed: $input.seed, num_inference_steps: 2}
      - id: restyle
        model: limner/tiny-sd-img2img
        input: {image: $draft.images.0.url, prompt: "${input.prompt}, oil painting", seed: $input.seed,
                num_inference_steps: 2}
    output: {images: $restyle.images, draft: $draft.images.0.url}
"""
# Only the API knows this one: its jobs stay queued, which is all a long history needs.
UNSERVED = """
models:
  - id: test/ui-unserved
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {width: 64, height: 64, num_inference_steps: 2}
"""


class Server:
    """``limner serve --workers 0`` and (optionally) one ``limner worker`` on a fresh home and
    SQLite file, restartable on the same port and store."""

    def __init__(self, folder: Path, *, worker: bool = True, env: dict[str, str] | None = None) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="limner-ui-"))
        self.served, self.unserved = folder / "ui.yaml", folder / "ui-unserved.yaml"
        self.served.write_text(CATALOG)
        self.unserved.write_text(UNSERVED)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = child_env(self.home, {"LIMNER_STORE": f"sqlite:///{self.home / 'ui.db'}", **(env or {})})
        self.with_worker = worker
        self.procs: list[Proc] = []

    def start(self) -> None:
        cat = ["--catalog", str(self.served)]
        api = Proc(
            ["serve", "--workers", "0", "--port", str(self.port), *cat, "--catalog", str(self.unserved)],
            self.env,
            self.home / "api.log",
        )
        self.procs = [api]
        wait_http(f"{self.base}/healthz", api)
        if self.with_worker:
            self.procs.append(Proc(["worker", *cat], self.env, self.home / "worker.log"))
            wait_workers(self.base, 1)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs = []

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Key {key}"} if key else {}
        return httpx.Client(base_url=self.base, timeout=60, headers=headers)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    live = Server(tmp_path_factory.mktemp("ui"))
    live.start()
    yield live
    live.stop()


# Module-scoped, not session-scoped: Playwright's sync API keeps an event loop running in the
# main thread while it is open, and later modules' asyncio.run() would refuse to start.
@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    profile = tempfile.mkdtemp(prefix="limner-chromium-")
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    tab = browser.new_page()
    tab.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    tab.close()
    assert not errors, f"the page raised: {errors}"


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def png(colour: tuple[int, int, int], size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def run_card(page: Page) -> Any:
    """The newest run on a model page."""
    return page.locator("#runs .run").first


def loaded_width(page: Page, selector: str) -> int:
    """The decoded width of the first image matching ``selector`` (0 until it has loaded)."""
    width: int = page.eval_on_selector(selector, "img => img.complete ? img.naturalWidth : 0")
    return width


def submit_prompt(page: Page, server: Server, model: str, prompt: str, seed: int, steps: int | None = None) -> None:
    page.goto(f"{server.base}/#/model/{model}")
    page.fill("#field-prompt", prompt)
    page.fill("#field-seed", str(seed))
    if steps is not None:
        page.click("#advanced summary")
        page.fill("#field-num_inference_steps", str(steps))
    page.click("#submit")


# -- the tests ----------------------------------------------------------------------------------


def test_models_page_searches_filters_and_shows_availability(page: Page, server: Server) -> None:
    page.goto(f"{server.base}/")
    expect(page.locator('[data-model="test/ui-sd"]')).to_be_visible()
    offline = page.locator('[data-model="test/ui-offline"]')
    expect(offline.locator(".badge.no")).to_have_text("unavailable")
    expect(page.locator('[data-model="test/ui-sd"] .badge.ok')).to_have_text("available")
    shot(page, "models")
    page.fill("#model-search", "ui-chain")
    expect(page.locator("#model-grid .card")).to_have_count(1)
    page.fill("#model-search", "")
    page.select_option("#task-filter", "workflow")
    tasks = page.locator("#model-grid .card .badge.task").all_inner_texts()
    assert tasks and set(tasks) == {"workflow"}
    assert page.locator('[data-model="test/ui-chain"]').count() == 1
    page.select_option("#task-filter", "")
    page.check("#available-only")
    expect(page.locator('[data-model="test/ui-offline"]')).to_have_count(0)
    expect(page.locator('[data-model="test/ui-sd"]')).to_have_count(1)


def test_form_submit_shows_progress_then_the_image(page: Page, server: Server) -> None:
    page.goto(f"{server.base}/#/model/test/ui-sd")
    # The form follows the schema: limits on the number fields, an enum select, the seed's dice.
    page.click("#advanced summary")
    assert page.get_attribute("#field-width", "max") == "256"
    assert page.get_attribute("#field-num_inference_steps", "max") == "5000"
    options = page.locator("#field-output_format option").all_inner_texts()
    assert options == ["png", "webp", "jpeg"]
    page.click("#dice")
    assert page.input_value("#field-seed").isdigit()
    page.fill("#field-prompt", "a lighthouse at dusk")
    page.fill("#field-seed", "11")
    # Enough steps that denoising lasts far longer than the worker's coalescing of progress
    # writes (at most one every 0.2 s), so the stream has denoising updates to deliver.
    page.fill("#field-num_inference_steps", "300")
    page.click("#submit")
    run = run_card(page)
    expect(run.locator(".stage")).to_have_attribute("data-stage", "denoising")
    assert 0 < float(run.locator(".progress > div").evaluate("bar => parseFloat(bar.style.width)")) <= 100
    expect(run).to_have_attribute("data-done", "true")
    expect(run).to_have_attribute("data-state", "succeeded")
    stages = (run.locator(".timeline").get_attribute("data-stages") or "").split("|")
    assert "denoising" in stages and stages[-1] == "completed", stages
    assert "succeeded" in run.locator(".logs").inner_text()
    if page.locator("#field-preview").count():  # a server with step previews: on by default here
        assert page.is_checked("#field-preview")
        assert "/v1/files/" in (run.locator("img.step-preview").get_attribute("src") or "")
    image = run.locator("img.result-image")
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 64", arg=image.element_handle())
    # A second run with another seed: the two results side by side, with what differs.
    page.fill("#field-seed", "12")
    page.click("#submit")
    expect(page.locator("#runs .run")).to_have_count(2)
    expect(run_card(page)).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#compare .compare img")).to_have_count(2)
    expect(page.locator("#compare")).to_contain_text("seed: 11 → 12")
    path = shot(page, "model-run")
    if os.environ.get("LIMNER_UPDATE_DOCS") == "1":
        DOCS_SHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS_SHOT)


def test_cancel_a_running_job(page: Page, server: Server) -> None:
    submit_prompt(page, server, "test/ui-sd", "a very long one", seed=5, steps=4000)
    run = run_card(page)
    expect(run.locator(".stage")).to_have_attribute("data-stage", "denoising")
    request_id = run.get_attribute("data-request")
    run.locator("button.cancel").click()
    expect(run).to_have_attribute("data-state", "canceled")
    expect(run.locator("button.cancel")).to_be_hidden()
    shot(page, "cancelled")
    with server.client() as http:
        status = http.get(f"/v1/queue/test/ui-sd/requests/{request_id}/status").json()
    assert status["state"] == "canceled" and status["progress"]["step"] < 4000


def test_upload_an_input_file_by_picker_and_by_drop(page: Page, server: Server, tmp_path: Path) -> None:
    picture = tmp_path / "red.png"
    picture.write_bytes(png((220, 30, 30)))
    page.goto(f"{server.base}/#/model/limner/tiny-sd-img2img")
    page.set_input_files("#field-image-file", str(picture))
    expect(page.locator('[data-name="image"] .upload-state')).to_contain_text("uploaded image/png")
    first = page.input_value("#field-image")
    assert first.startswith(f"{server.base}/v1/files/") and first.endswith(".png"), first
    # Drag and drop: a PNG drawn in the page, dropped on the field's drop zone.
    page.evaluate(
        """async () => {
            const canvas = Object.assign(document.createElement("canvas"), {width: 64, height: 64});
            const g = canvas.getContext("2d"); g.fillStyle = "#1e90ff"; g.fillRect(0, 0, 64, 64);
            const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
            const data = new DataTransfer();
            data.items.add(new File([blob], "blue.png", {type: "image/png"}));
            document.querySelector('[data-name="image"] .drop')
                .dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }"""
    )
    expect(page.locator("#field-image")).not_to_have_value(first)
    dropped = page.input_value("#field-image")
    # Paste: a file on the clipboard, pasted into the URL field.
    page.evaluate(
        """async () => {
            const canvas = Object.assign(document.createElement("canvas"), {width: 64, height: 64});
            const g = canvas.getContext("2d"); g.fillStyle = "#2e8b57"; g.fillRect(0, 0, 64, 64);
            const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
            const data = new DataTransfer();
            data.items.add(new File([blob], "green.png", {type: "image/png"}));
            document.querySelector("#field-image")
                .dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
        }"""
    )
    expect(page.locator("#field-image")).not_to_have_value(dropped)
    pasted = page.input_value("#field-image")
    page.fill("#field-image", dropped)
    assert dropped.startswith(f"{server.base}/v1/files/"), dropped
    with server.client() as http:
        colour = Image.open(io.BytesIO(http.get(dropped).content)).convert("RGB").getpixel((5, 5))
        green = Image.open(io.BytesIO(http.get(pasted).content)).convert("RGB").getpixel((5, 5))
    assert colour == (30, 144, 255) and green == (46, 139, 87)
    page.fill("#field-prompt", "the same, in oil")
    page.fill("#field-seed", "3")
    page.click("#submit")
    run = run_card(page)
    expect(run).to_have_attribute("data-state", "succeeded")
    expect(run.locator("img.result-image")).to_be_visible()
    shot(page, "upload")


def test_a_422_is_shown_beside_its_field(page: Page, server: Server) -> None:
    page.goto(f"{server.base}/#/model/test/ui-sd")
    page.fill("#field-prompt", "too wide")
    page.click("#advanced summary")
    page.fill("#field-width", "1000")
    page.click("#submit")
    error = page.locator("#error-width")
    expect(error).to_contain_text("256")
    expect(page.locator('[data-name="width"]')).to_have_class("field invalid")
    expect(page.locator("#error-prompt")).to_be_empty()
    assert page.locator("#runs .run").count() == 0
    shot(page, "invalid-field")
    page.fill("#field-width", "64")
    page.fill("#field-prompt", "")
    page.click("#submit")
    expect(page.locator("#error-prompt")).not_to_be_empty()
    expect(error).to_be_empty()


def test_workflow_steps_as_a_graph(page: Page, server: Server) -> None:
    page.goto(f"{server.base}/#/model/test/ui-chain")
    expect(page.locator('svg.graph [data-step="restyle"]')).to_have_attribute("data-status", "pending")
    page.fill("#field-prompt", "a boat")
    page.fill("#field-seed", "4")
    page.click("#submit")
    run = run_card(page)
    expect(run).to_have_attribute("data-state", "succeeded")
    for step in ("draft", "restyle"):
        expect(run.locator(f'svg.graph [data-step="{step}"]')).to_have_attribute("data-status", "succeeded")
    assert run.locator("svg.graph path").count() >= 1  # the arrow draft -> restyle
    expect(run.locator("img.result-image").first).to_be_visible()
    shot(page, "workflow")


def test_batches_show_counts_rate_and_failed_rows(page: Page, server: Server) -> None:
    rows = [{"custom_id": f"row-{i}", "input": {"prompt": p, "seed": i}} for i, p in enumerate(["plain", "raise", "x"])]
    with server.client() as http:
        made = http.post("/v1/batches", json={"model": "test/ui-faults", "rows": rows, "priority": "high"})
        assert made.status_code == 202, made.text
        batch = made.json()["id"]
        wait_for_batch(http, batch)
    page.goto(f"{server.base}/#/batches")
    line = page.locator(f'#batches tr[data-batch="{batch}"]')
    expect(line).to_contain_text("2/3 done")
    expect(line).to_contain_text("rows/min")
    line.locator("button").click()
    expect(page.locator("#batch-failures table.failures tbody tr")).to_have_count(1)
    expect(page.locator("#batch-failures")).to_contain_text("row-1")
    expect(page.locator("#batch-failures")).to_contain_text("model_error")
    shot(page, "batches")


def wait_for_batch(http: httpx.Client, batch: str) -> None:
    """Until the batch ends (the test's own timeout bounds it)."""
    while http.get(f"/v1/batches/{batch}").json()["status"] not in ("completed", "failed", "cancelled"):
        time.sleep(0.1)


def test_history_reopens_after_a_restart_reruns_and_copies_code(page: Page, server: Server) -> None:
    with server.client() as http:
        for i in range(30):  # a long history: more than one page of the gallery
            assert http.post("/v1/queue/test/ui-unserved", json={"prompt": f"waiting {i}"}).status_code == 202
        body = {"prompt": "kept across restarts", "seed": 21, "num_inference_steps": 2}
        job = http.post("/v1/queue/test/ui-sd", json=body).json()["request_id"]
        wait_done(http, "test/ui-sd", job)
    server.stop()
    server.start()
    page.goto(f"{server.base}/#/history")
    card = page.locator(f'#history-grid [data-request="{job}"]')
    expect(card.locator("img.thumb")).to_be_visible()
    shot(page, "history")
    # Infinite scroll: the gallery loads its next page as its end comes into view.
    page.select_option("#history-status", "queued")
    expect(page.locator("#history-grid .card").first).to_be_visible()
    page.fill("#history-model", "test/ui-unserved")
    page.dispatch_event("#history-model", "change")
    for _ in range(5):
        page.locator(".sentinel").scroll_into_view_if_needed()
        if page.locator("#history-grid .card").count() == 30:
            break
        page.wait_for_timeout(300)
    expect(page.locator("#history-grid .card")).to_have_count(30)
    expect(page.locator("#history-end")).to_have_text("that is all")

    page.goto(f"{server.base}/#/request/test/ui-sd/{job}")
    expect(page.locator(".result-view img.result-image")).to_be_visible()
    assert json.loads(page.inner_text("pre.input"))["prompt"] == "kept across restarts"
    shot(page, "request")
    snippets = {}
    for tab in ("curl", "python", "fal-client", "openai"):
        page.click(f'[data-tab="{tab}"]')
        snippets[tab] = page.inner_text("#code")
    # The code is for exactly this request: curl and the Python SDK, run, queue the same input.
    curl = subprocess.run(["bash", "-c", snippets["curl"]], capture_output=True, text=True, check=True)
    queued = json.loads(curl.stdout)["request_id"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    sdk = subprocess.run([sys.executable, "-c", snippets["python"]], capture_output=True, text=True, env=env)
    assert sdk.returncode == 0, sdk.stderr
    assert '"seed": 21' in snippets["fal-client"] and "fal_client.subscribe" in snippets["fal-client"]
    assert 'size="64x64"' in snippets["openai"] and '"seed": 21' in snippets["openai"]
    with server.client() as http:
        again = wait_done(http, "test/ui-sd", queued)
        assert again["state"] == "succeeded"
        first_input = http.get(f"/v1/queue/test/ui-sd/requests/{job}").json()["input"]
        assert http.get(f"/v1/queue/test/ui-sd/requests/{queued}").json()["input"] == first_input
    assert "'seed': 21" in sdk.stdout or '"seed": 21' in sdk.stdout
    # Re-run with a new seed: a new request, followed live on its own page.
    page.click("#rerun-seed")
    page.wait_for_url(lambda url: job not in url and "/request/" in url)
    # Followed live (a .run) until it ends, then shown as a finished request, with its result.
    expect(page.locator(".result-view img.result-image")).to_be_visible()
    new_seed = json.loads(page.inner_text("pre.input"))["seed"]
    assert new_seed != 21


def test_api_keys_each_project_sees_only_its_own(browser: BrowserContext, tmp_path: Path) -> None:
    keyed = Server(tmp_path, worker=False)
    keyed.start()
    try:
        made = subprocess.run(
            [sys.executable, "-m", "limner", "keys", "create", "--name", "ops", "--home", str(keyed.home)],
            env=keyed.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        admin = made.stdout.strip()
        keys, jobs = {}, {}
        with keyed.client(admin) as http:
            for project in ("alpha", "beta"):
                answer = http.post("/v1/keys", json={"name": f"team {project}", "project": project})
                keys[project] = answer.json()["key"]
        for project, key in keys.items():
            with keyed.client(key) as http:
                answer = http.post("/v1/queue/test/ui-sd", json={"prompt": f"{project}'s secret"})
                jobs[project] = answer.json()["request_id"]
        for project, other in (("alpha", "beta"), ("beta", "alpha")):
            tab = browser.new_page()
            tab.set_default_timeout(WAIT_MS)
            try:
                tab.goto(f"{keyed.base}/#/history")
                expect(tab.locator("#key-dialog")).to_be_visible()
                if project == "alpha":
                    tab.fill("#key-input", "lmk_not_a_key")
                    tab.click("#key-save")
                    expect(tab.locator("#key-error")).to_contain_text("not known")
                    shot(tab, "api-key")
                tab.fill("#key-input", keys[project])
                tab.click("#key-save")
                expect(tab.locator("#key-dialog")).to_be_hidden()
                expect(tab.locator(f'#history-grid [data-request="{jobs[project]}"]')).to_be_visible()
                expect(tab.locator(f'#history-grid [data-request="{jobs[other]}"]')).to_have_count(0)
                expect(tab.locator("#history-grid .card")).to_have_count(1)
                assert tab.evaluate("sessionStorage.getItem('limner.key')") == keys[project]
                tab.goto(f"{keyed.base}/#/request/test/ui-sd/{jobs[other]}")  # another project's: a 404
                expect(tab.locator("main .error")).to_contain_text(jobs[other])
            finally:
                tab.close()
    finally:
        keyed.stop()


def test_a_mesh_shows_its_turntable_and_a_rotatable_glb(page: Page, server: Server) -> None:
    page.goto(f"{server.base}/#/model/limner/tiny-shap-e")
    page.fill("#field-prompt", "a chair")
    page.fill("#field-seed", "2")
    page.click("#advanced summary")
    page.fill("#field-mesh_resolution", "8")
    page.fill("#field-preview_frames", "4")
    page.check('[data-name="output_formats"] input[value="glb"]')
    page.click("#submit")
    run = run_card(page)
    expect(run).to_have_attribute("data-state", "succeeded")
    expect(run.locator("video")).to_have_count(1)  # the turntable preview
    viewer = run.locator("model-viewer")
    expect(viewer).to_have_count(1)
    # The vendored viewer (served by limner, no network) defines the element and loads the GLB.
    page.wait_for_function("() => customElements.get('model-viewer') !== undefined")
    page.wait_for_function("() => document.querySelector('#runs model-viewer').loaded === true")
    shot(page, "mesh")


def test_a_training_shows_its_loss_curve_and_checkpoints(page: Page, server: Server) -> None:
    with server.client() as http:
        images = [
            http.post("/v1/files", files={"file": (f"{i}.png", png(c), "image/png")}).json()["url"]
            for i, c in enumerate([(200, 40, 40), (40, 200, 40)])
        ]
        body = {
            "images": images,
            "trigger_word": "sks",
            "steps": 8,
            "resolution": 32,
            "checkpoint_every": 4,
            "validation_prompts": ["a photo of sks"],
        }
        answer = http.post("/v1/queue/limner/train-lora-tiny-sd", json=body)
        assert answer.status_code == 202, answer.text
        job = answer.json()["request_id"]
    page.goto(f"{server.base}/#/request/limner/train-lora-tiny-sd/{job}")
    # Followed live, then shown finished: the result's loss curve and each checkpoint's images.
    curve = page.locator(".request-main .training svg.curve path")
    expect(curve).to_have_count(1)
    expect(page.locator(".request-main .checkpoint")).to_have_count(2)
    expect(page.locator(".request-main .checkpoint img").first).to_be_visible()
    assert (curve.get_attribute("d") or "").count("L") >= 1
    shot(page, "training")


def test_replay_and_diff_when_the_server_has_them(page: Page, server: Server) -> None:
    with server.client() as http:
        paths = http.get("/openapi.json").json()["paths"]
        if "/v1/requests/{request_id}/replay" not in paths or "/v1/requests/{a}/diff/{b}" not in paths:
            page.goto(f"{server.base}/#/history")  # the page hides both: check it says nothing of them
            job = http.get("/v1/requests", params={"status": "succeeded", "limit": 1}).json()["requests"][0]
            page.goto(f"{server.base}/#/request/{job['model_id']}/{job['request_id']}")
            expect(page.locator("#code")).to_be_visible()
            assert page.locator("#replay").count() == 0 and page.locator("#diff").count() == 0
            pytest.skip("this server has no replay and diff routes (the backend half of issue 15)")
        jobs = []
        for seed in (31, 32):
            body = {"prompt": "the same twice", "seed": seed, "num_inference_steps": 2}
            jobs.append(http.post("/v1/queue/test/ui-sd", json=body).json()["request_id"])
            wait_done(http, "test/ui-sd", jobs[-1])
    page.goto(f"{server.base}/#/request/test/ui-sd/{jobs[0]}")
    page.click("#replay")
    expect(page.locator(".replay-verdict")).to_have_text("identical outputs")
    page.fill("#diff-other", jobs[1])
    page.click("#diff")
    expect(page.locator("table.differences")).to_contain_text("seed")
    expect(page.locator(".diff-verdict")).to_contain_text("the outputs differ")
    shot(page, "replay-diff")


def test_a_mask_is_drawn_over_its_image(page: Page, server: Server, tmp_path: Path) -> None:
    picture = Image.new("RGB", (96, 96), (250, 250, 250))
    picture.paste((200, 30, 30), (28, 28, 68, 68))
    path = tmp_path / "object.png"
    picture.save(path)
    page.goto(f"{server.base}/#/model/limner/grabcut-background-removal")
    page.set_input_files("#field-image-file", str(path))
    expect(page.locator('[data-name="image"] .upload-state')).to_contain_text("uploaded")
    page.click("#submit")
    run = run_card(page)
    expect(run).to_have_attribute("data-state", "succeeded")
    overlay = run.locator(".overlay")
    expect(overlay.locator("img.mask")).to_be_visible()
    assert overlay.locator("img").first.get_attribute("src") == page.input_value("#field-image")
    run.locator('input[aria-label="mask opacity"]').fill("0.9")
    assert overlay.locator("img.mask").evaluate("m => m.style.opacity") == "0.9"
    shot(page, "mask")


def test_speech_plays_in_an_audio_player(page: Page, server: Server) -> None:
    page.goto(f"{server.base}/#/model/limner/piper-joe-us")
    page.fill("#field-text", "Hello from the playground.")
    page.click("#submit")
    run = run_card(page)
    expect(run).to_have_attribute("data-state", "succeeded")
    audio = run.locator("audio")
    expect(audio).to_have_count(1)
    page.wait_for_function("a => a.readyState >= 1 && a.duration > 0.3", arg=audio.element_handle())
    shot(page, "speech")


def test_a_queued_job_shows_its_position_and_can_be_cancelled(page: Page, server: Server) -> None:
    page.goto(f"{server.base}/#/model/test/ui-unserved")  # no worker serves it: it stays queued
    page.fill("#field-prompt", "waits its turn")
    page.click("#submit")
    run = run_card(page)
    expect(run).to_have_attribute("data-state", "queued")
    expect(run.locator(".position")).to_contain_text("in the queue")
    run.locator("button.cancel").click()
    expect(run).to_have_attribute("data-state", "canceled")
