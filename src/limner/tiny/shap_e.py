"""Tiny random-weight Shap-E pipelines (text to 3D and image to 3D), built offline.

Same component classes and wiring as ``openai/shap-e`` and ``openai/shap-e-img2img``
(``PriorTransformer``, ``ShapERenderer``, ``HeunDiscreteScheduler``, a CLIP text encoder with
projection or a CLIP vision encoder), at the sizes diffusers' own tests use.

Random weights alone give a renderer whose signed distance never crosses zero, and a mesh
decoder whose marching-cubes table is all zeros: the mesh would be empty. So the renderer is
set up by hand, the way a trained one behaves: its MLP computes a smooth closed field
(``cos x + cos y + cos z - c``, positive inside a rounded ball), with density inside that ball
and a colour that varies over the surface, and the latents from the prior deform the ball
slightly through the low-frequency weights only (every seed gives a different, smooth shape).
The mesh decoder gets the real marching-cubes table (see ``limner.tiny.marching_cubes``).

torch / diffusers / transformers are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from limner.tiny.marching_cubes import lookup_table
from limner.tiny.sd import TEXT_HIDDEN, lib, seed_everything
from limner.tiny.tokenizers import build_clip_tokenizer

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

LATENT_DIM = 32  # the prior's embedding_dim, the renderer's d_latent
RENDERER_HIDDEN = 8
NUM_EMBEDDINGS = 4 * RENDERER_HIDDEN  # one latent row per projected MLP row
POSENC = 93  # 3 coordinates + sin and cos at 15 frequencies (diffusers' encode_position)
COS_DEG0 = 3 + 45  # index of cos(x) in the positional encoding; cos(y), cos(z) follow
SIN_DEG0 = 3  # index of sin(x); sin(y), sin(z) follow
THRESHOLD = 2.75  # cos x + cos y + cos z > 2.75: a rounded ball of radius ~0.7
LATENT_INFLUENCE = 0.02  # how far a latent may move the low-frequency weights
VISION_SIZE = 32


def _text_encoder(tokenizer: CLIPTokenizer) -> Any:
    """A 32-wide CLIP text encoder with its projection head (Shap-E reads ``text_embeds``)."""
    transformers = lib("transformers")
    config = transformers.CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=37,
        projection_dim=TEXT_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    seed_everything()
    return transformers.CLIPTextModelWithProjection(config).eval()


def _prior() -> Any:
    seed_everything()
    return lib("diffusers").PriorTransformer(
        num_attention_heads=2,
        attention_head_dim=16,
        embedding_dim=LATENT_DIM,
        num_embeddings=NUM_EMBEDDINGS,
        embedding_proj_dim=TEXT_HIDDEN,
        time_embed_dim=LATENT_DIM * 4,
        num_layers=1,
        clip_embed_dim=LATENT_DIM * 2,
        additional_embeddings=0,
        time_embed_act_fn="gelu",
        norm_in_type="layer",
        embedding_proj_norm_type="layer",
        encoder_hid_proj_type=None,
        added_emb_type=None,
    )


def _scheduler() -> Any:
    """Shap-E's scheduler config (Heun, exp schedule, predicting the sample)."""
    return lib("diffusers").HeunDiscreteScheduler(
        beta_schedule="exp",
        num_train_timesteps=1024,
        prediction_type="sample",
        use_karras_sigmas=True,
        clip_sample=True,
        clip_sample_range=1.0,
    )


def _renderer() -> Any:
    import torch

    seed_everything()
    renderer = lib("diffusers.pipelines.shap_e").ShapERenderer(
        param_shapes=((RENDERER_HIDDEN, POSENC), *((RENDERER_HIDDEN, RENDERER_HIDDEN),) * 3),
        d_latent=LATENT_DIM,
        d_hidden=RENDERER_HIDDEN,
        n_output=12,
        background=(255.0, 255.0, 255.0),
    )
    with torch.no_grad():
        _shape_field(renderer, torch)
        cases, masks = lookup_table()
        renderer.mesh_decoder.cases.copy_(torch.from_numpy(cases))
        renderer.mesh_decoder.masks.copy_(torch.from_numpy(masks))
    return renderer


def _shape_field(renderer: Any, torch: Any) -> None:
    """Make the MLP compute a closed, coloured shape (see the module docstring).

    Hidden unit 0 carries the field, units 1-3 carry sin x, sin y, sin z for colour; each
    hidden layer passes them on (x2 to undo silu's halving near zero, which keeps signs).
    The projected layers' weights come from ``ChannelsProj``: ``LayerNorm(latent @ W) *
    gamma + beta + bias``, so their bias holds the weights and gamma scales the latent's say.
    """
    layers = renderer.mlp.mlp
    first = torch.zeros(RENDERER_HIDDEN, POSENC)
    first[0, COS_DEG0 : COS_DEG0 + 3] = 1.0
    for axis in range(3):
        first[1 + axis, SIN_DEG0 + axis] = 1.0
    carry = torch.zeros(RENDERER_HIDDEN, RENDERER_HIDDEN)
    for unit in range(4):
        carry[unit, unit] = 2.0
    for index, layer in enumerate(layers[:-1]):
        layer.weight.zero_()
        layer.bias.zero_()
        if index == 0:
            layer.weight.copy_(first)
            layer.bias[0] = -THRESHOLD
        else:
            layer.weight[:, :RENDERER_HIDDEN] = carry
    out = layers[-1]
    out.weight.zero_()
    out.bias.zero_()
    out.weight[0, 0] = 8.0  # signed distance: positive inside
    out.weight[1:3, 0] = 200.0  # coarse and fine density: opaque inside
    for rows in ((3, 6), (6, 9), (9, 12)):  # stf, nerf coarse, nerf fine colours
        for k, row in enumerate(range(*rows)):
            out.weight[row, 1 + k] = 6.0
            out.bias[row] = 0.3
    low_frequency = torch.zeros(POSENC)
    low_frequency[:3] = 1.0
    low_frequency[SIN_DEG0 : SIN_DEG0 + 6] = 1.0
    low_frequency[COS_DEG0 : COS_DEG0 + 6] = 1.0
    for index, projection in enumerate(renderer.params_proj.projections.values()):
        rows, cols = projection.vectors, projection.channels
        weights = first if index == 0 else carry
        projection.proj.bias.copy_(weights.reshape(rows * cols))
        projection.norm.bias.zero_()
        gamma = low_frequency if cols == POSENC else torch.zeros(cols)
        projection.norm.weight.copy_(gamma * LATENT_INFLUENCE)


def build_shap_e(dest: Path) -> None:
    """Build the tiny text-to-3D Shap-E pipeline and ``save_pretrained`` it into ``dest``."""
    tokenizer = build_clip_tokenizer()
    text_encoder = _text_encoder(tokenizer)
    pipe = lib("diffusers").ShapEPipeline(
        prior=_prior(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=_scheduler(),
        shap_e_renderer=_renderer(),
    )
    pipe.save_pretrained(dest, safe_serialization=True)


def build_shap_e_img2img(dest: Path) -> None:
    """Build the tiny image-to-3D Shap-E pipeline and ``save_pretrained`` it into ``dest``."""
    transformers = lib("transformers")
    config = transformers.CLIPVisionConfig(
        hidden_size=TEXT_HIDDEN,
        image_size=VISION_SIZE,
        projection_dim=TEXT_HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        patch_size=4,
    )
    seed_everything()
    image_encoder = transformers.CLIPVisionModel(config).eval()
    processor = transformers.CLIPImageProcessor(
        crop_size=VISION_SIZE, size=VISION_SIZE, do_center_crop=True, do_normalize=True, do_resize=True
    )
    pipe = lib("diffusers").ShapEImg2ImgPipeline(
        prior=_prior(),
        image_encoder=image_encoder,
        image_processor=processor,
        scheduler=_scheduler(),
        shap_e_renderer=_renderer(),
    )
    pipe.save_pretrained(dest, safe_serialization=True)
