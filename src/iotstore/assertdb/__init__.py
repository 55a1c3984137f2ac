"""SQL storage of assertions behind :class:`iotstore.asserts.Backstore`."""

from .services import SqlBackstore, trust_database

__all__ = ["SqlBackstore", "trust_database"]
