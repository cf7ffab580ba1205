"""Steps the text families share (causal language models and vision-language models): one
generate() per job, watched token by token.

``Watch`` is a transformers ``StoppingCriteria``, which generate() calls after every new token:
it decodes the text so far, puts it in the job's progress (stage ``generating``, step = tokens,
total = max_tokens, ``text``), ends generation at the first stop string, and stops the call
once its job is canceled (``Chunk.step`` raises ``Stopped``). transformers has a
``StopStringCriteria`` and a ``TextIteratorStreamer``; neither trims the text at the stop string
nor reports progress, and the streamer needs a second thread, so the few lines are written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from limner.adapters.base import Chunk, JobOutput, TextProgress
from limner.errors import LimitExceeded
from limner.tasks.base import Limits


@dataclass
class Generated:
    """What one generate() made: the text (cut at a stop string), token counts, why it ended."""

    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str

    def output(self) -> JobOutput:
        usage = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        return JobOutput(files={}, extra={"output": self.text, "usage": usage, "finish_reason": self.finish_reason})


class Watch(StoppingCriteria):
    """Progress with the text so far, stop strings and cancel, after each generated token."""

    def __init__(
        self, chunk: Chunk[Any, Any], tokenizer: Any, prompt_tokens: int, max_tokens: int, stop: list[str]
    ) -> None:
        self.chunk, self.tokenizer = chunk, tokenizer
        self.prompt_tokens, self.max_tokens, self.stop = prompt_tokens, max_tokens, stop
        self.text = ""
        self.tokens = 0
        self.stopped_at_string = False
        self.progress = chunk.ctx if isinstance(chunk.ctx, TextProgress) else None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        generated = input_ids[0, self.prompt_tokens :]
        self.tokens = int(generated.shape[0])
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        cut = cut_at_stop(text, self.stop)
        if cut is not None:
            text, self.stopped_at_string = cut, True
        self.text = text
        self.chunk.step(self.tokens, self.max_tokens)  # raises Stopped once the job is canceled
        if self.progress is not None:
            # The first token is written at once: what a client measures as time to first token.
            self.progress.figures({"text": text}, now=self.tokens == 1)
        done = torch.full((input_ids.shape[0],), self.stopped_at_string, dtype=torch.bool, device=input_ids.device)
        return done  # type: ignore[return-value]  # transformers annotates the legacy BoolTensor


def cut_at_stop(text: str, stop: list[str]) -> str | None:
    """``text`` up to the earliest stop string, or None when it holds none."""
    found = [index for s in stop if (index := text.find(s)) >= 0]
    return text[: min(found)] if found else None


def check_input_tokens(count: int, limits: Limits) -> None:
    if count > limits.max_input_tokens:
        raise LimitExceeded(
            f"the prompt is {count} tokens with the chat template, over this model's limit of "
            f"{limits.max_input_tokens} (limits.max_input_tokens)",
            loc=("body", "messages"),
        )


def sampling(spec: Any, generation_config: Any) -> dict[str, Any]:
    """generate()'s sampling arguments: greedy at temperature 0, else temperature and top_p.
    The checkpoint's own top_k (and other warpers) are turned off so that only the request's
    settings apply."""
    if spec.temperature == 0:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": spec.temperature, "top_p": spec.top_p, "top_k": None}


def generate(
    model: Any,
    chunk: Chunk[Any, Any],
    inputs: dict[str, Any],
    tokenizer: Any,
    *,
    stop: list[str],
    eos_ids: set[int],
    call_args: dict[str, Any],
) -> Generated:
    """One seeded generate() over one job's prepared inputs (``input_ids`` and the rest), with
    the entry's fixed ``call_args`` (e.g. ``repetition_penalty``, ``min_new_tokens``)."""
    spec = chunk.input
    prompt_tokens = int(inputs["input_ids"].shape[1])
    watch = Watch(chunk, tokenizer, prompt_tokens, spec.max_tokens, stop)
    torch.manual_seed(spec.seed or 0)  # one job per call: the global generator is this job's
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            max_new_tokens=spec.max_tokens,
            stopping_criteria=StoppingCriteriaList([watch]),
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0),
            **sampling(spec, model.generation_config),
            **call_args,
        )
    new = out[0, prompt_tokens:]
    if watch.tokens != int(new.shape[0]):  # generate() ended before the watch saw its last token
        watch.text = tokenizer.decode(new, skip_special_tokens=True)
    made = int(new.shape[0])
    # "stop": a stop string, or the model's own end of turn (an end token, or generate() ending
    # before max_tokens for another end token it knew of); "length": max_tokens ran out.
    ended = bool(made) and int(new[-1]) in eos_ids
    reason = "stop" if watch.stopped_at_string or ended or made < spec.max_tokens else "length"
    return Generated(watch.text, prompt_tokens, made, reason)


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token id that ends a turn: the generation config's and the tokenizer's."""
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(int(v) for v in value)
    return ids
