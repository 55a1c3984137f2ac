"""craft-store's own client classes publish a snap to a live ``iotstore serve``.

``UbuntuOneStoreClient`` with the ``U1_SNAP_STORE`` endpoints is what
snapcraft builds (``snapcraft/store/client.py``); the dashboard calls that
snapcraft makes through it (register, push, poll, release, channel map) are
made exactly as snapcraft makes them: ``client.request(...)`` on the same
paths with the same bodies. Runs with snaps on disk and in S3, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import craft_store
import pytest
from craft_store import endpoints
from craft_store.errors import StoreServerError

from iotstore import asserts
from iotstore.asserts.testing import fixed_key
from iotstore.snaps.testing import build_snap
from tests.web._support import PASSWORD, unique

from .conftest import Publisher

SNAPCRAFT_ACLS = [
    "package_access",
    "package_manage",
    "package_metrics",
    "package_push",
    "package_register",
    "package_release",
    "package_update",
]


@pytest.fixture(autouse=True)
def _no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # craft-store retries 5xx eight times with back-off; a 5xx must fail the test at once
    monkeypatch.setenv("CRAFT_STORE_RETRIES", "0")


def store_client(url: str, environment_auth: str | None = None) -> craft_store.BaseClient:
    """The client snapcraft builds when its dashboard, upload and SSO URLs are all ``url``."""
    return craft_store.UbuntuOneStoreClient(
        base_url=url,
        storage_base_url=url,
        auth_url=url,
        endpoints=endpoints.U1_SNAP_STORE,
        application_name="snapcraft",
        user_agent="snapcraft/8.0 ubuntu/24.04 (amd64)",
        environment_auth=environment_auth,
        ephemeral=environment_auth is None,
    )


def login(url: str, email: str, **kwargs: Any) -> tuple[craft_store.BaseClient, str]:
    """Log in as snapcraft does; returns the client and the exported credentials."""
    client = store_client(url)
    credentials = client.login(
        permissions=kwargs.pop("permissions", SNAPCRAFT_ACLS),
        description="snapcraft@test-host",
        ttl=kwargs.pop("ttl", 3600),
        email=email,
        password=kwargs.pop("password", PASSWORD),
        **kwargs,
    )
    return client, credentials


def push_and_wait(
    client: craft_store.BaseClient, url: str, name: str, path: Path, **extra: Any
) -> dict[str, Any]:
    """snapcraft upload: pre-check, storage upload, notify, poll until processed."""
    client.request("POST", url + "/dev/api/snap-push/", json={"name": name, "dry_run": True})
    upload_id = client.upload_file(filepath=path)
    response = client.request(
        "POST",
        url + "/dev/api/snap-push/",
        json={
            "name": name,
            "series": "16",
            "updown_id": upload_id,
            "binary_filesize": path.stat().st_size,
            "source_uploaded": False,
            **extra,
        },
        headers={"Accept": "application/json"},
    )
    status_url = response.json()["status_details_url"]
    for _ in range(60):
        status: dict[str, Any] = client.request("GET", status_url).json()
        if status.get("processed"):
            return status
        time.sleep(0.2)
    pytest.fail(f"upload of {name} was not processed: {status}")


def _publish_end_to_end(p: Publisher, tmp_path: Path) -> None:
    url = p.url
    client, credentials = login(url, p.publisher.email)

    who = client.whoami()
    assert who["account"]["id"] == p.publisher.account_id
    assert who["account"]["email"] == p.publisher.email
    assert who["permissions"] == sorted(SNAPCRAFT_ACLS)
    assert who["expires"] and not who["expires"].endswith("Z")

    name = unique("hello")
    client.request(
        "POST",
        url + "/dev/api/register-name/",
        json={"snap_name": name, "is_private": False, "series": "16", "store": p.store},
    )
    account = client.request(
        "GET", url + "/dev/api/account", headers={"Accept": "application/json"}
    ).json()
    assert account["account_id"] == account["id"] == p.publisher.account_id
    entry = account["snaps"]["16"][name]
    assert entry["status"] == "Approved"
    snap_id = entry["snap-id"]
    assert len(snap_id) == 32

    snap = build_snap(tmp_path, name, "1.0")
    status = push_and_wait(client, url, name, snap, channels=["edge"])
    assert status["code"] == "ready_to_release", status
    assert status["errors"] == []
    assert status["revision"] == 1

    client.request(
        "POST",
        url + "/dev/api/snap-release/",
        json={"name": name, "revision": "1", "channels": ["stable", "candidate"]},
    )
    channel_map = client.request(
        "GET",
        url + f"/api/v2/snaps/{name}/channel-map",
        headers={"Accept": "application/json"},
    ).json()
    items = channel_map["channel-map"]
    released = {(e["channel"], e["architecture"]): e["revision"] for e in items}
    assert released == {
        ("latest/stable", "amd64"): 1,
        ("latest/candidate", "amd64"): 1,
        ("latest/edge", "amd64"): 1,
    }
    for item in channel_map["channel-map"]:
        required = {"architecture", "channel", "expiration-date", "progressive", "revision"}
        assert required <= set(item)
        assert {"paused", "percentage"} <= set(item["progressive"])
    (revision,) = channel_map["revisions"]
    assert revision["revision"] == 1 and revision["version"] == "1.0"
    assert revision["architectures"] == ["amd64"]
    assert revision["sha3-384"] == _sha3(snap)
    assert channel_map["snap"]["id"] == snap_id
    assert channel_map["snap"]["channels"], "snapcraft's schema wants at least one channel"
    for channel in channel_map["snap"]["channels"]:
        assert {"name", "track", "risk", "branch", "fallback"} <= set(channel)
    assert channel_map["snap"]["tracks"][0] == {
        "name": "latest", "status": "active", "creation-date": None, "version-pattern": None,
    }  # fmt: skip

    # close, as snapcraft does it (snap-id from the account)
    client.request(
        "POST", url + f"/dev/api/snaps/{snap_id}/close", json={"channels": ["candidate"]}
    )
    history = client.request("GET", url + f"/api/v2/snaps/{name}/releases").json()
    assert history["releases"][0]["channel"] == "latest/candidate"
    assert history["releases"][0]["revision"] is None  # closed
    assert history["revisions"][0]["status"] == "Published"

    # the blob is where the deployment keeps snaps, byte for byte
    assert _stored(p, snap.read_bytes()), "the snap is not in the deployment's blob store"

    # exported credentials work as SNAPCRAFT_STORE_CREDENTIALS (and snapd's UBUNTU_STORE_AUTH)
    exported = json.loads(base64.b64decode(credentials))
    assert exported["t"] == "u1-macaroon" and set(exported["v"]) == {"r", "d"}
    client.logout()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IOTSTORE_TEST_CREDENTIALS", credentials)
        again = store_client(url, environment_auth="IOTSTORE_TEST_CREDENTIALS")
        assert again.whoami()["account"]["id"] == p.publisher.account_id


def _sha3(path: Path) -> str:
    return hashlib.sha3_384(path.read_bytes()).hexdigest()


def _stored(p: Publisher, content: bytes) -> bool:
    for key in p.referenced():
        if p.blobs.exists(key) and p.blobs.size(key) == len(content):
            with p.blobs.open(key) as f:
                if f.read() == content:
                    return True
    return False


def test_craft_store_publishes_to_files_on_disk(publisher: Publisher, tmp_path: Path) -> None:
    _publish_end_to_end(publisher, tmp_path)


def test_craft_store_publishes_to_s3(s3_publisher: Publisher, tmp_path: Path) -> None:
    _publish_end_to_end(s3_publisher, tmp_path)


def test_wrong_password_is_refused_in_the_sso_shape(publisher: Publisher) -> None:
    with pytest.raises(StoreServerError) as raised:
        login(publisher.url, publisher.publisher.email, password="not the password")
    response = raised.value.response
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "INVALID_CREDENTIALS"  # snapd's SSO client reads this
    assert body["error_list"][0]["code"] == "unauthorized"  # craft-store reads this
    assert "Store operation failed" in str(raised.value)


def test_manual_review_ends_the_upload_and_blocks_release_until_accepted(
    publisher: Publisher, tmp_path: Path
) -> None:
    p = publisher
    client, _ = login(p.url, p.publisher.email)
    name = unique("reviewed")
    client.request(
        "POST",
        p.url + "/dev/api/register-name/",
        json={"snap_name": name, "series": "16", "store": p.reviewed_store},
    )
    status = push_and_wait(client, p.url, name, build_snap(tmp_path, name))
    # snapcraft's upload command must finish: processed, no errors
    assert status["code"] == "need_manual_review" and status["errors"] == []
    with pytest.raises(StoreServerError) as raised:
        client.request(
            "POST",
            p.url + "/dev/api/snap-release/",
            json={"name": name, "revision": "1", "channels": ["stable"]},
        )
    assert raised.value.response.status_code == 409
    assert "pending-review" in str(raised.value)
    client.logout()


def test_restricted_login_only_reaches_its_snaps_and_channels(
    publisher: Publisher, tmp_path: Path
) -> None:
    p = publisher
    owner, _ = login(p.url, p.publisher.email)
    names = [unique("pkg"), unique("pkg")]
    for name in names:
        owner.request(
            "POST", p.url + "/dev/api/register-name/", json={"snap_name": name, "store": p.store}
        )
    push_and_wait(owner, p.url, names[0], build_snap(tmp_path, names[0]))
    push_and_wait(owner, p.url, names[1], build_snap(tmp_path, names[1]))
    owner.logout()

    restricted, _ = login(
        p.url,
        p.publisher.email,
        packages=[endpoints.Package(package_name=names[0], package_type="snap")],
        channels=["edge"],
    )
    who = restricted.whoami()
    assert who["packages"] == [{"series": "16", "name": names[0]}]
    assert who["channels"] == ["edge"]
    restricted.request(
        "POST",
        p.url + "/dev/api/snap-release/",
        json={"name": names[0], "revision": "1", "channels": ["edge"]},
    )
    for body in (
        {"name": names[0], "revision": "1", "channels": ["stable"]},
        {"name": names[1], "revision": "1", "channels": ["edge"]},
    ):
        with pytest.raises(StoreServerError) as raised:
            restricted.request("POST", p.url + "/dev/api/snap-release/", json=body)
        assert raised.value.response.status_code == 403
    restricted.logout()


def test_register_key_as_snapcraft_does(publisher: Publisher) -> None:
    p = publisher
    client, _ = login(p.url, p.other.email, permissions=["modify_account_key"], ttl=86400)
    account_id = client.request("GET", p.url + "/dev/api/account").json()["account_id"]
    key = fixed_key("vault")
    request = asserts.sign(
        "account-key-request",
        {
            "account-id": account_id,
            "name": "my-key",
            "public-key-sha3-384": key.public_key.id,
            "since": asserts.format_time(datetime.now(UTC) - timedelta(minutes=1)),
        },
        key,
        key.public_key.encoded,
    )
    client.request(
        "POST",
        p.url + "/dev/api/account/account-key",
        json={"account_key_request": request.to_bytes().decode()},
    )
    account = client.request("GET", p.url + "/dev/api/account").json()
    assert account["account_keys"] == account["account-keys"]
    (listed,) = account["account_keys"]
    assert listed["name"] == "my-key" and listed["public-key-sha3-384"] == key.public_key.id
    with pytest.raises(StoreServerError) as raised:  # once
        client.request(
            "POST",
            p.url + "/dev/api/account/account-key",
            json={"account_key_request": request.to_bytes().decode()},
        )
    assert raised.value.response.status_code == 409
    with pytest.raises(StoreServerError) as raised:  # not a request at all
        client.request(
            "POST", p.url + "/dev/api/account/account-key", json={"account_key_request": "x"}
        )
    assert raised.value.response.status_code == 400
    client.logout()
