"""HTTP transport: the app factory, error mapping, authentication and the APIs."""

from .app import create_app

__all__ = ["create_app"]
