"""Text to 3D and image to 3D end to end: a live API and worker, over real HTTP.

Every mesh is downloaded and loaded back with trimesh; the turntable preview is decoded with
PyAV. The tiny Shap-E builds have random weights except for their renderer, which is set up
to describe a closed, coloured blob (see limner.tiny.shap_e), so the meshes are real surfaces.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import trimesh
from PIL import Image

from limner.media.mesh import encode_mesh, render_turntable
from limner.tiny import build_tiny
from limner.tiny.marching_cubes import EDGES, lookup_table, triangles_for
from tests.jobs import data_uri, generate

TEXT = "limner/tiny-shap-e"
IMAGE = "limner/tiny-shap-e-img2img"


def load_mesh(http: httpx.Client, item: dict[str, Any], fmt: str) -> trimesh.Trimesh:
    response = http.get(item["url"])
    assert response.status_code == 200
    assert item["content_type"] == {"glb": "model/gltf-binary", "ply": "model/ply"}[fmt]
    if fmt == "glb":  # the files route guesses types from extensions, and Python's table has no .ply
        assert response.headers["content-type"] == "model/gltf-binary"
    mesh = trimesh.load(io.BytesIO(response.content), file_type=fmt, force="mesh", process=False)
    assert isinstance(mesh, trimesh.Trimesh)
    return mesh


def test_text_to_3d(http: httpx.Client) -> None:
    body = generate(http, TEXT, {"prompt": "a small teapot", "seed": 4, "preview_frames": 8, "preview_size": 48})
    glb, ply = body["meshes"]
    assert glb["url"].endswith(".glb") and ply["url"].endswith(".ply")
    meshes = [load_mesh(http, glb, "glb"), load_mesh(http, ply, "ply")]
    for info, mesh in zip((glb, ply), meshes, strict=True):
        assert len(mesh.vertices) > 100 and len(mesh.faces) > 100
        assert (info["vertices"], info["faces"]) == (len(mesh.vertices), len(mesh.faces))
        assert np.isfinite(mesh.vertices).all() and mesh.faces.max() < len(mesh.vertices)
        # Vertex colours from Shap-E's colour head travel with the mesh.
        visual = mesh.visual
        assert isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind == "vertex"
        assert np.ptp(np.asarray(visual.vertex_colors)[:, :3]) > 0
    # Both files hold the same surface, and it is closed.
    assert np.allclose(meshes[0].vertices, meshes[1].vertices, atol=1e-5)
    assert trimesh.Trimesh(meshes[1].vertices, meshes[1].faces).is_watertight

    (preview,) = body["previews"]
    response = http.get(preview["url"])
    assert response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.content), mode="r") as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.average_rate == Fraction(12, 1)
    assert len(frames) == 8 == preview["frames"] and frames[0].shape == (48, 48, 3)
    # A turntable: the object is in view, and the views differ as it turns.
    assert frames[0].std() > 5 and np.abs(frames[0].astype(int) - frames[2]).mean() > 0.5


def test_image_to_3d_with_one_format_and_no_preview(http: httpx.Client) -> None:
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    image = Image.fromarray(np.stack([ramp, ramp.T, 255 - ramp], axis=-1))
    body = generate(http, IMAGE, {"image": data_uri(image), "seed": 2, "output_formats": ["ply"], "preview": False})
    (ply,) = body["meshes"]
    assert "previews" not in body
    mesh = load_mesh(http, ply, "ply")
    assert len(mesh.faces) > 100 and ply["faces"] == len(mesh.faces)


def test_same_seed_same_mesh_and_resolution_matters(http: httpx.Client) -> None:
    request = {"prompt": "a rock", "seed": 9, "output_formats": ["ply"], "preview": False}
    first, again = (generate(http, TEXT, request)["meshes"][0] for _ in range(2))
    assert http.get(first["url"]).content == http.get(again["url"]).content
    other = generate(http, TEXT, {**request, "seed": 10})["meshes"][0]
    assert http.get(other["url"]).content != http.get(first["url"]).content
    finer = generate(http, TEXT, {**request, "mesh_resolution": 64})["meshes"][0]
    assert finer["faces"] > 2 * first["faces"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"prompt": "x", "mesh_resolution": 200}, "mesh_resolution", "max_mesh_resolution"),
        ({"prompt": "x", "output_formats": ["obj"]}, "output_formats", "glb"),
        ({"prompt": "x", "output_formats": ["ply", "ply"]}, "output_formats", "twice"),
        ({"prompt": "x", "output_formats": []}, "output_formats", "at least 1"),
        ({"prompt": "x", "preview_size": 72}, "preview_size", "multiple of 16"),
        ({"prompt": "x", "preview_size": 512}, "preview_size", "max_preview_size"),
        ({"prompt": "x", "preview_frames": 100}, "preview_frames", "max_frames"),
        ({"prompt": "x", "negative_prompt": "y"}, "negative_prompt", "Extra inputs"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    http: httpx.Client, body: dict[str, Any], field: str, words: str
) -> None:
    response = http.post(f"/v1/queue/{TEXT}", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"][:2] == ["body", field] and words in detail["msg"]


def test_image_to_3d_needs_a_readable_image(http: httpx.Client) -> None:
    response = http.post(f"/v1/queue/{IMAGE}", json={"image": "data:image/png;base64,bm90IGFuIGltYWdl"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "image"]


# -- the pieces on their own -------------------------------------------------------------------


def test_marching_cubes_table_closes_surfaces() -> None:
    """Every corner pattern's triangles use exactly the cube edges whose ends differ (at most 5
    triangles), and the diffusers mesh decoder with this table turns a sphere's field into a
    closed mesh whose normals point out."""
    cases, masks = lookup_table()
    assert cases.shape == (256, 5, 3) and masks.shape == (256, 5)
    for case in range(256):
        inside = [(case >> c) & 1 for c in range(8)]
        crossing = {e for e, (a, b) in enumerate(EDGES) if inside[a] != inside[b]}
        assert {e for triangle in triangles_for(case) for e in triangle} == crossing
        assert masks[case].sum() == len(triangles_for(case))
    torch = pytest.importorskip("torch")
    renderer: Any = pytest.importorskip("diffusers.pipelines.shap_e.renderer")
    decoder = renderer.MeshDecoder()
    decoder.cases.copy_(torch.from_numpy(cases))
    decoder.masks.copy_(torch.from_numpy(masks))
    axis = torch.linspace(-1, 1, 34)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    field = 0.6 - torch.sqrt(x**2 + y**2 + (1.5 * z) ** 2)
    out = decoder(field, torch.tensor([-1.0, -1.0, -1.0]), torch.tensor([2.0, 2.0, 2.0]))
    mesh = trimesh.Trimesh(out.verts.numpy(), out.faces.numpy())
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.6**3 / 1.5, rel=0.05)  # positive: normals point out


@pytest.mark.parametrize("name", ["shap-e", "shap-e-img2img"])
def test_tiny_shap_e_builds_are_reproducible_and_hold_the_table(name: str, tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    from safetensors.numpy import load_file

    build_tiny(name, tmp_path / "a")
    build_tiny(name, tmp_path / "b")
    weights = sorted((tmp_path / "a").rglob("*.safetensors"))
    assert weights and not list((tmp_path / "a").rglob("*.bin"))
    for path in weights:
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    renderer = load_file(tmp_path / "a" / "shap_e_renderer" / "diffusion_pytorch_model.safetensors")
    cases, masks = lookup_table()
    assert np.array_equal(renderer["mesh_decoder.cases"], cases)
    assert np.array_equal(renderer["mesh_decoder.masks"], masks)


def test_turntable_renders_the_mesh() -> None:
    box = trimesh.creation.box(extents=(1.0, 0.5, 0.25))
    frames = render_turntable(box, 4, 64)
    assert frames.shape == (4, 64, 64, 3) and frames.dtype == np.uint8
    background = frames[0, 0, 0].copy()
    covered = [(f != background).any(axis=-1).mean() for f in frames]
    assert all(0.05 < c < 0.9 for c in covered)
    assert covered[0] > covered[1]  # a quarter turn shows the box's narrow side
    empty = render_turntable(trimesh.Trimesh(), 2, 16)
    assert (empty == empty[0, 0, 0]).all()
    for fmt in ("glb", "ply"):
        media = encode_mesh(box, fmt)
        assert media.properties == {"vertices": 8, "faces": 12}
