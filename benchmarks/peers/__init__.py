"""limner against the servers a team would pick instead (``benchmarks/peers.py``).

The ``*_app.py`` modules are the peers, each written the way its own documentation shows; they
run in ``.venv-peers`` (``make bench-peers``), never in limner's environment, and import
nothing of limner. The other modules drive them from limner's environment.
"""
