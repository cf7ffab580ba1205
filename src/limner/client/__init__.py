"""Python client for limner's HTTP API. Importing it never imports torch."""

from limner.client.errors import ApiError
from limner.client.sync import Client

__all__ = ["ApiError", "Client"]
