"""Family ``transformers-vlm``: image-to-text with transformers' vision-language models
(SmolVLM / Idefics3, Qwen2-VL, Qwen2.5-VL, Florence-2, and the tiny Idefics3 build).

Steps: 1. load (resolve the source; AutoProcessor + AutoModelForImageTextToText, safetensors
          only; the memory levers as for text: dtype, device map with CPU offload and 4-bit
          NF4 on CUDA, refused on the CPU)
       2. check (the prompt's token count, image tokens included, against
          limits.max_input_tokens)
       3. prepare (the processor's chat template with one image part and the prompt; a
          processor without a template, as Florence-2's, takes the prompt as it is, e.g.
          ``<MORE_DETAILED_CAPTION>``)
       4. call (one seeded generate() per job, watched token by token, as the causal LMs)
       5. encode ({output, usage: {input_tokens, output_tokens}, finish_reason}; no files)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transformers import AutoModelForImageTextToText, AutoProcessor

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.loading import (
    module_bytes,
    quiet_runtimes,
    release,
    require_quantization_support,
    resolve_dtype,
    resolve_source,
)
from limner.adapters.text_steps import Generated, check_input_tokens, eos_token_ids, generate
from limner.adapters.transformers_causal_lm import memory_levers
from limner.catalog.entry import CatalogEntry
from limner.errors import InvalidInput, ModelUnavailable
from limner.media.images import open_image
from limner.progress import Stage
from limner.tasks.text import ImageToTextInput

IMAGE_TEXT: Any = AutoModelForImageTextToText  # transformers' auto-class wrapper confuses mypy's view of it
DEFAULT_PROMPT = "Describe this image in detail."
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
# End-of-turn tokens some VLM tokenizers use besides their eos token (SmolVLM's).
TURN_ENDS = ("<end_of_utterance>", "<|im_end|>")


@dataclass
class VisionModel:
    model: Any
    processor: Any
    eos_ids: set[int]


@dataclass(frozen=True)
class Row:
    inputs: dict[str, Any]


class VLMAdapter(FamilyAdapter[ImageToTextInput, Row, Generated]):
    stage = Stage.GENERATING
    rows_per_call = 1

    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        require_quantization_support(entry, env.device)
        dtype = resolve_dtype(entry.runtime.dtype, env.device)
        folder, revision = resolve_source(entry, env, download=_download, marker="config.json")
        kwargs = memory_levers(entry, env.device, dtype)
        try:
            processor = AutoProcessor.from_pretrained(folder)
            model = IMAGE_TEXT.from_pretrained(folder, use_safetensors=True, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load {entry.id} from {folder}: {exc}") from exc
        if "device_map" not in kwargs:
            model.to(env.device)
        model.eval()
        tokenizer = processor.tokenizer
        eos = eos_token_ids(model, tokenizer)
        for token in TURN_ENDS:
            token_id = tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
                eos.add(token_id)
        handle = VisionModel(model, processor, eos)
        return LoadedModel(handle=handle, revision=revision, size_bytes=module_bytes(model), device=env.device)

    def unload(self, model: LoadedModel) -> None:
        model.handle = None
        release(model.device)

    # -- 2. check / 3. prepare ---------------------------------------------------------------

    def check(self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[ImageToTextInput]) -> None:
        inputs = model_inputs(model.handle, item)
        check_input_tokens(int(inputs["input_ids"].shape[1]), entry.limits)

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[ImageToTextInput]], ctx: RunContext
    ) -> list[list[Row]]:
        ctx.stage(Stage.PREPARING)
        vlm: VisionModel = model.handle
        rows = []
        for item in items:
            inputs = model_inputs(vlm, item)
            placed = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in inputs.items()}
            if "pixel_values" in placed:
                placed["pixel_values"] = placed["pixel_values"].to(vlm.model.dtype)
            rows.append([Row(placed)])
        return rows

    # -- 4. call / 5. encode -----------------------------------------------------------------

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[ImageToTextInput, Row]) -> list[Generated]:
        vlm: VisionModel = model.handle
        made = generate(
            vlm.model,
            chunk,
            chunk.rows[0].inputs,
            vlm.processor.tokenizer,
            stop=[],
            eos_ids=vlm.eos_ids,
            call_args=dict(entry.call_args),
        )
        return [made]

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[ImageToTextInput],
        results: list[Generated],
        ctx: RunContext,
    ) -> JobOutput:
        return results[0].output()


def make_adapter() -> VLMAdapter:
    quiet_runtimes()
    return VLMAdapter()


def _download(repo: str, revision: str | None, _variant: str | None) -> str:
    from huggingface_hub import snapshot_download

    folder: str = snapshot_download(repo, revision=revision, allow_patterns=HUB_FILES)
    return folder


def model_inputs(vlm: VisionModel, item: WorkItem[ImageToTextInput]) -> dict[str, Any]:
    """The processor's tensors for one image and its prompt."""
    try:
        image = open_image(item.files["image"])
    except Exception as exc:
        raise InvalidInput(f"image is not an image this model reads: {exc}", loc=("body", "image")) from None
    prompt = item.input.prompt or DEFAULT_PROMPT
    processor = vlm.processor
    if getattr(processor, "chat_template", None):
        chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = processor.apply_chat_template(chat, add_generation_prompt=True)
    else:
        text = prompt  # Florence-2: a task token such as <CAPTION>, or a question
    inputs: dict[str, Any] = dict(processor(text=[text], images=[image], return_tensors="pt"))
    return inputs
