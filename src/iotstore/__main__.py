"""``python -m iotstore``: the same as the ``iotstore`` command."""

from iotstore.cli.main import main

main()
