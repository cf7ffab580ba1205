"""The API and client processes never import torch (it lives in workers only)."""

from __future__ import annotations

import subprocess
import sys


def test_api_client_and_cli_do_not_import_torch(tmp_path: object) -> None:
    code = f"""
import sys
from limner.settings import load_settings
from limner.api.app import create_app
import limner.client, limner.cli.main, limner.tiny, limner.catalog, limner.adapters
app = create_app(load_settings(home={str(tmp_path)!r}))
heavy = ("torch", "diffusers", "transformers", "accelerate", "sentence_transformers", "faiss", "mlflow")
heavy = sorted(m for m in heavy if m in sys.modules)
print(",".join(heavy) or "none")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


def test_sync_and_async_clients_import_neither_torch_nor_the_server() -> None:
    code = """
import sys, asyncio
from limner.client import AsyncClient, Client
Client("http://127.0.0.1:9").close()
asyncio.run(AsyncClient("http://127.0.0.1:9").aclose())
loaded = ("torch", "diffusers", "transformers", "limner.api", "limner.store", "sqlalchemy", "boto3", "fastapi")
print(",".join(sorted(m for m in loaded if m in sys.modules)) or "none")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"
