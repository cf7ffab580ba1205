"""fal's ``any-llm`` app on the queue: ``POST /v1/queue/fal-ai/any-llm`` with ``{prompt,
system_prompt, model}``, answered by a limner text-generation model; the result has fal's
``output`` (with limner's usage and finish reason beside it).

A thin alias: ``model`` names a limner text-generation model or an alias
(``LIMNER_MODEL_ALIASES``, e.g. ``google/gemini-flash-1.5=Qwen/qwen2.5-7b-instruct``); absent,
it is the ``any-llm`` alias's target, else SmolLM2-135M (real weights, offline). A name that is
neither is refused (422) rather than swapped for another model. The submit answers with the
chosen model's queue URLs, which fal clients follow.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from limner.api.accept import accept, read_json
from limner.api.context import ApiContext, get_ctx
from limner.api.openai.common import resolve_model
from limner.api.views import queue_urls
from limner.errors import InvalidInput

router = APIRouter(tags=["queue"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
APP_ID = "fal-ai/any-llm"
DEFAULT_TEXT_MODEL = "HuggingFaceTB/smollm2-135m-instruct"


@router.post(f"/v1/queue/{APP_ID}", status_code=202)
async def any_llm(request: Request, ctx: Ctx) -> JSONResponse:
    """Queue a prompt for a text model, fal's any-llm shape."""
    body: Any = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object: {prompt, system_prompt, model}", loc=("body",))
    fields = dict(body)
    model = fields.pop("model", None) or ctx.settings.aliases.get("any-llm", DEFAULT_TEXT_MODEL)
    entry = resolve_model(ctx, str(model), ("text-generation",))
    submitted = await accept(ctx, request, entry.id, fields)
    answer = queue_urls(ctx.base_url(request), submitted.job_id, entry.id)
    return JSONResponse(status_code=202, content=answer, headers={"X-Limner-Request-Id": submitted.job_id})
