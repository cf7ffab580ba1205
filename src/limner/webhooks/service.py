"""Assembling the webhook machinery from settings: the signing secrets and the dispatcher."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from limner.net.guard import parse_allow_list
from limner.settings import Settings
from limner.store.deliveries import Deliveries
from limner.store.engine import Engines
from limner.store.secrets import WEBHOOK_SECRET, get_or_create
from limner.webhooks.sender import ALLOW_SETTING, RetryPolicy, SenderConfig, WebhookSender
from limner.webhooks.signing import Signer, generate_secret


def signing_secrets(settings: Settings, engines: Engines) -> tuple[str, ...]:
    """``LIMNER_WEBHOOK_SECRET`` when set; else the secret generated once and kept in the store
    (see ``limner.store.secrets`` for why there and not under LIMNER_HOME)."""
    if settings.webhook_secret:
        return settings.webhook_secret
    return (get_or_create(engines, WEBHOOK_SECRET, generate_secret),)


def sender_config(settings: Settings, engines: Engines) -> SenderConfig:
    return SenderConfig(
        signer=Signer(signing_secrets(settings, engines)),
        allow=parse_allow_list(settings.webhook_allow_hosts, ALLOW_SETTING),
        policy=RetryPolicy(settings.webhook_retry_schedule, settings.webhook_jitter),
        timeout_s=settings.webhook_timeout_s,
        poll_s=settings.webhook_poll_s,
        concurrency=settings.webhook_concurrency,
    )


def build_sender(
    settings: Settings, engines: Engines, render: Callable[[dict[str, Any]], dict[str, Any]]
) -> WebhookSender:
    return WebhookSender(Deliveries(engines), sender_config(settings, engines), render)
