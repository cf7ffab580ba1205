"""The catalog: models as data, checked when loaded, shown with their schemas and limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from limner.catalog import load_catalog
from limner.catalog.inputs import batch_key, finalize_input, parse_input
from limner.errors import CatalogError, InvalidInput, LimitExceeded, UnknownModel
from limner.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "extra.yaml"
    path.write_text(text)
    return path


def test_default_catalog_has_offline_and_production_models() -> None:
    catalog = load_catalog()
    ids = {e.id for e in catalog}
    assert {
        "limner/tiny-sd",
        "limner/tiny-flux",
        "limner/tiny-sd-inpaint",
        "black-forest-labs/flux.1-schnell",
        "black-forest-labs/flux.1-dev",
        "stabilityai/sdxl",
        "stabilityai/sd3.5-large",
        "stabilityai/sd-turbo",
    } <= ids
    assert {e.task for e in catalog} >= {"text-to-image", "image-to-image", "inpainting"}
    with pytest.raises(UnknownModel):
        catalog.get("nobody/nothing")


def test_extra_files_add_and_override(tmp_path: Path) -> None:
    extra = write(
        tmp_path,
        """
models:
  - id: limner/tiny-sd
    task: text-to-image
    family: diffusers-image
    source: tiny://sd
    defaults: {width: 128, height: 128}
  - id: acme/local-sdxl
    task: text-to-image
    family: diffusers-image
    source: file:///models/sdxl
""",
    )
    catalog = load_catalog([extra])
    assert catalog.get("limner/tiny-sd").defaults["width"] == 128
    assert catalog.get("acme/local-sdxl").source == "file:///models/sdxl"


@pytest.mark.parametrize(
    ("yaml_text", "words"),
    [
        ("- {id: a/b, task: make-coffee, family: diffusers-image, source: tiny://sd}", "make-coffee"),
        ("- {id: a/b, task: text-to-image, family: magic, source: tiny://sd}", "magic"),
        ("- {id: a/b, task: text-to-image, family: diffusers-image, source: s3://x}", "must start with"),
        ("- {id: nope, task: text-to-image, family: diffusers-image, source: tiny://sd}", "id"),
        (
            "- {id: a/b, task: text-to-image, family: diffusers-image, source: tiny://sd, defaults: {colour: red}}",
            "colour",
        ),
        (
            "- {id: a/b, task: text-to-image, family: diffusers-image, source: tiny://sd,"
            " defaults: {width: 4096}, limits: {max_width: 1024}}",
            "max_width",
        ),
        (
            "- {id: a/b, task: text-to-image, family: diffusers-image, source: tiny://sd, runtime: {dtype: int3}}",
            "dtype",
        ),
        (
            "- {id: a/b, task: text-to-image, family: diffusers-image, source: tiny://sd,"
            " runtime: {ip_adapter: {source: 'hf://h94/IP-Adapter', weight_name: ip-adapter_sd15.bin}}}",
            "safetensors",
        ),
        ("- {id: a/b, task: text-to-image, family: diffusers-image, source: pip://a/b/c}", "pip://"),
        ("models: [oops", "not valid YAML"),
    ],
)
def test_bad_catalogs_fail_at_load_naming_the_problem(tmp_path: Path, yaml_text: str, words: str) -> None:
    with pytest.raises(CatalogError, match=words):
        load_catalog([write(tmp_path, yaml_text)])


def test_input_schema_shows_defaults_and_limits() -> None:
    entry = load_catalog().get("black-forest-labs/flux.1-schnell")
    schema = entry.input_schema()
    props = schema["properties"]
    assert props["num_inference_steps"]["default"] == 4 and props["num_inference_steps"]["maximum"] == 12
    assert props["width"]["multipleOf"] == 16 and props["width"]["maximum"] == 2048
    assert "negative_prompt" not in props  # unsupported by FLUX
    assert schema["required"] == ["prompt"]


def test_inputs_get_defaults_seed_and_batch_keys() -> None:
    entry = load_catalog().get("limner/tiny-sd")
    a = finalize_input(entry, parse_input(entry, {"prompt": "a"}))
    b = finalize_input(entry, parse_input(entry, {"prompt": "b", "seed": 5}))
    assert a.model_dump()["width"] == 64 and a.model_dump()["seed"] is not None
    assert batch_key(entry, a) == batch_key(entry, b)  # prompt and seed may differ in a batch
    c = finalize_input(entry, parse_input(entry, {"prompt": "c", "num_inference_steps": 7}))
    assert batch_key(entry, c) != batch_key(entry, a)
    with pytest.raises(LimitExceeded):
        finalize_input(entry, parse_input(entry, {"prompt": "a", "width": 4096}))
    with pytest.raises(InvalidInput):
        parse_input(entry, {"prompt": "a", "width": "wide"})


def test_settings_from_env_and_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIMNER_HOME", str(tmp_path))
    monkeypatch.setenv("LIMNER_PORT", "9000")
    monkeypatch.setenv("LIMNER_CATALOG", f"{tmp_path}/a.yaml,{tmp_path}/b.yaml")
    settings = load_settings(port=9100, workers=None)
    assert settings.port == 9100  # a flag beats the environment
    assert settings.store == f"sqlite:///{tmp_path}/limner.db"
    assert settings.storage == (tmp_path / "files").as_uri()
    assert [p.name for p in settings.catalog] == ["a.yaml", "b.yaml"]
    env = settings.to_env()
    assert env["LIMNER_PORT"] == "9100" and env["LIMNER_CATALOG"].count(",") == 1
