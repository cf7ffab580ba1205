"""A tiny random-weight Idefics3 (SmolVLM's architecture), built offline.

The real classes: a SigLIP-style vision encoder (32-pixel tiles of 8-pixel patches), the pixel
shuffle connector (scale factor 2: 4 image tokens per tile) and a Llama text model, with the
``Idefics3Processor`` (its image processor resizes to the 32-pixel edge, no splitting) and a
ChatML chat template that places ``<image>`` where a message's image part is, as SmolVLM's
does. Saved like a hub snapshot (``config.json``, ``model.safetensors``, processor and
tokenizer files), it loads through ``AutoProcessor`` / ``AutoModelForImageTextToText``.
"""

from __future__ import annotations

from pathlib import Path

from limner.tiny.sd import lib, seed_everything
from limner.tiny.text import build_text_tokenizer

IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"]
TILE = 32
PATCH = 8
SCALE_FACTOR = 2
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_idefics3(dest: Path) -> None:
    transformers = lib("transformers")
    tokenizer = build_text_tokenizer(chat=True)
    tokenizer.add_special_tokens({"additional_special_tokens": IMAGE_TOKENS})
    vision = transformers.Idefics3VisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=TILE,
        patch_size=PATCH,
    )
    text = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=0.2,
    )
    config = transformers.Idefics3Config(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        scale_factor=SCALE_FACTOR,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    seed_everything()
    model = transformers.Idefics3ForConditionalGeneration(config).eval()
    model.generation_config = transformers.GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    images = transformers.Idefics3ImageProcessorPil(
        size={"longest_edge": TILE}, max_image_size={"longest_edge": TILE}, do_image_splitting=False
    )
    seq_len = (TILE // PATCH) ** 2 // SCALE_FACTOR**2
    processor = transformers.Idefics3Processor(
        image_processor=images, tokenizer=tokenizer, image_seq_len=seq_len, chat_template=CHAT_TEMPLATE
    )
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
