"""Session fixtures for conformance tests against snapd and the snap command.

* ``snapdcheck`` -- a :class:`~.snapd.SnapdCheck` (Go program built once per
  session from ``conformance/snapdcheck``).
* ``snap_keyring`` -- an empty :class:`~.snapcli.SnapKeyring` in a temporary
  ``SNAP_GNUPG_HOME``.
* ``snap_key`` -- one RSA-4096 key made by ``snap create-key`` in that
  keyring (a :class:`~.snapcli.SnapKey`; created once per session because
  gpg key generation is slow).
* ``vectors`` -- the golden vectors directory (see :mod:`.golden`).

Missing tools or vectors make the tests fail with a message saying what to
install; they are never skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import golden
from .snapcli import SnapKey, SnapKeyring
from .snapd import SnapdCheck


@pytest.fixture(scope="session")
def snapdcheck() -> SnapdCheck:
    return SnapdCheck()


@pytest.fixture(scope="session")
def snap_keyring(tmp_path_factory: pytest.TempPathFactory) -> SnapKeyring:
    return SnapKeyring(tmp_path_factory.mktemp("snap-gnupg"))


@pytest.fixture(scope="session")
def snap_key(snap_keyring: SnapKeyring) -> SnapKey:
    name = "conformance-key"
    return SnapKey(snap_keyring, name, snap_keyring.create_key(name))


@pytest.fixture(scope="session")
def vectors() -> Path:
    return golden.vectors_dir()
