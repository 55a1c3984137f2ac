"""The ``iotstore`` command."""
