"""Executors: where models run.

``local`` (the default) is limner's own worker processes (``limner.runtime``). ``ray`` runs
models as Ray Serve deployments on a Ray cluster: ``executors.ray_serve`` is the deployment
(a replica loads and runs models), ``executors.dispatch`` feeds it from the job store. Ray is an
optional extra (``pip install 'limner[ray]'``); this module imports neither ray nor torch, so
the CLI can say clearly that Ray is missing before it starts anything.
"""

from __future__ import annotations

import importlib.util

RAY_MISSING = "the ray executor needs Ray Serve, which is not installed: pip install 'limner[ray]'"


def ray_missing() -> str | None:
    """Why the ray executor cannot run here, or None when Ray is installed."""
    return RAY_MISSING if importlib.util.find_spec("ray") is None else None
