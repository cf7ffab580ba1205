"""``python -m limner`` is the ``limner`` command."""

from limner.cli.main import main

main()
