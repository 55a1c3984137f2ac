"""The publisher API snapcraft and craft-store call, unchanged (``spec/publisher-api.md``).

``sso``      login macaroons, with iotstore as the Ubuntu-One style discharger; whoami
``account``  the account, its snaps and registered keys
``storage``  ``/unscanned-upload/``: snap files streamed into the blob store
``snaps``    register a name, push an upload, poll its status, release, close, channel map

This package's ``__init__`` imports nothing: ``web.auth`` and ``web.errors``
use its helpers, and its routers use them back.
"""

from __future__ import annotations

__all__: list[str] = []
