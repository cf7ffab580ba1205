"""Memory levers per catalog entry: reported in /v1/models, refused clearly where the hardware can't."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from limner.catalog import entry as catalog_entry
from limner.catalog.families import FAMILIES
from limner.catalog.loader import parse_entries
from limner.errors import CatalogError
from tests.jobs import fetch_image, generate, submit, wait_done

NF4_ENTRY = """
- id: test/quantized
  task: text-to-image
  family: diffusers-image
  source: hf://someone/something
  runtime: {quantization: nf4}
"""


def test_levers_are_reported(http: httpx.Client) -> None:
    nf4 = http.get("/v1/models/test/nf4-sd").json()
    assert nf4["runtime"]["quantization"] == "nf4" and nf4["runtime"]["offload"] == "model"
    assert nf4["levers"] == ["model CPU offload", "4-bit NF4 weights (bitsandbytes)"]
    bf16 = http.get("/v1/models/test/bf16-sd").json()
    assert bf16["levers"] == ["dtype bfloat16", "VAE slicing"]
    assert http.get("/v1/models/limner/tiny-sd").json()["runtime"]["quantization"] == "none"


def test_nf4_without_cuda_fails_with_model_unavailable(http: httpx.Client) -> None:
    handle = submit(http, "test/nf4-sd", {"prompt": "x"})
    final = wait_done(http, "test/nf4-sd", handle["request_id"])
    assert final["state"] == "failed" and final["error_type"] == "model_unavailable"
    assert "runtime.quantization nf4 needs bitsandbytes and a CUDA GPU; this worker has no CUDA GPU" in final["error"]
    assert http.get(handle["response_url"]).status_code == 503


def test_float16_on_the_cpu_is_refused(http: httpx.Client) -> None:
    handle = submit(http, "test/fp16-sd", {"prompt": "x"})
    final = wait_done(http, "test/fp16-sd", handle["request_id"])
    assert final["state"] == "failed" and final["error_type"] == "model_unavailable"
    assert "runtime.dtype float16 needs a GPU" in final["error"]


def test_bfloat16_runs_on_the_cpu(http: httpx.Client) -> None:
    body = generate(http, "test/bf16-sd", {"prompt": "a lighthouse", "seed": 3, "num_outputs": 2})
    assert len(body["images"]) == 2
    for info in body["images"]:
        image = fetch_image(http, info["url"])
        assert image.size == (64, 64) and image.mode == "RGB"


def test_a_family_without_quantization_refuses_it_at_catalog_load(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_entries(NF4_ENTRY, "x.yaml")[0].runtime.quantization == "nf4"
    # Quantization support is a property of the family (FAMILIES): take nf4 away from diffusers-image.
    plain = dataclasses.replace(FAMILIES["diffusers-image"], quantization=frozenset())
    monkeypatch.setattr(catalog_entry, "FAMILIES", {**FAMILIES, "diffusers-image": plain})
    with pytest.raises(
        CatalogError, match=r"(?s)x\.yaml:\d+: model test/quantized: .*quantization nf4 is not supported by family"
    ):
        parse_entries(NF4_ENTRY, "x.yaml")


def test_nf4_config_covers_the_denoiser_and_text_encoders(tmp_path: Path) -> None:
    import torch

    from limner.adapters.loading import diffusers_quantization, require_quantization_support
    from limner.errors import ModelUnavailable
    from limner.tiny import build_tiny

    (entry,) = parse_entries(NF4_ENTRY, "x.yaml")
    build_tiny("sd", tmp_path / "sd")
    config = diffusers_quantization(entry, tmp_path / "sd", torch.bfloat16)
    assert config is not None
    assert config.quant_backend == "bitsandbytes_4bit"
    assert sorted(config.components_to_quantize) == ["text_encoder", "unet"]
    assert config.quant_kwargs["bnb_4bit_quant_type"] == "nf4"
    assert config.quant_kwargs["bnb_4bit_compute_dtype"] == torch.bfloat16
    with pytest.raises(ModelUnavailable, match="needs bitsandbytes and a CUDA GPU"):
        require_quantization_support(entry, "cpu")
