"""Login macaroons in-process: what verifies, what does not; the parsers under Hypothesis."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymacaroons import Macaroon

from iotstore.accounts.errors import BadCredentials
from iotstore.blobstore import BlobInfo
from iotstore.errors import IotstoreError
from iotstore.web.publisher_api import _macaroons, _uploads
from tests.web._support import PASSWORD, World

SECRET = b"s" * 32


def _login(client: httpx.Client, email: str, **acl: Any) -> tuple[str, str]:
    root = client.post("/dev/api/acl/", json={"permissions": ["package_access"], **acl})
    assert root.status_code == 200, root.text
    macaroon = root.json()["macaroon"]
    (caveat,) = list(Macaroon.deserialize(macaroon).third_party_caveats())
    assert caveat.location == "testserver"  # the SSO netloc craft-store compares
    d = client.post(
        "/api/v2/tokens/discharge",
        json={"email": email, "password": PASSWORD, "caveat_id": caveat.caveat_id},
    )
    assert d.status_code == 200, d.text
    return macaroon, d.json()["discharge_macaroon"]


def _token_id(discharge: str) -> str:
    (caveat,) = Macaroon.deserialize(discharge).first_party_caveats()
    inner = str(caveat.caveat_id).removeprefix("iotstore-token = ")
    return str(Macaroon.deserialize(inner).identifier)


def _header(root: str, discharge: str, quoted: bool = False) -> dict[str, str]:
    bound = Macaroon.deserialize(root).prepare_for_request(Macaroon.deserialize(discharge))
    q = '"' if quoted else ""
    return {"Authorization": f"Macaroon root={q}{root}{q}, discharge={q}{bound.serialize()}{q}"}


def test_login_verifies_only_as_issued(world: World) -> None:
    person = world.factory.person(password=PASSWORD)
    client = world.client
    root, discharge = _login(client, person.email)
    for quoted in (False, True):  # craft-store sends no quotes, snapd quotes
        r = client.get("/api/v2/tokens/whoami", headers=_header(root, discharge, quoted))
        assert r.status_code == 200, r.text
        assert r.json()["account"]["id"] == person.account_id
        assert r.json()["permissions"] == ["package_access"]
    # the unbound discharge, another login's discharge, a tampered root: refused
    other_root, other_discharge = _login(client, person.email)
    unbound = {"Authorization": f"Macaroon root={root}, discharge={discharge}"}
    crossed = _header(root, other_discharge)
    tampered = Macaroon.deserialize(root)
    tampered.add_first_party_caveat("iotstore-token = forged")
    for headers in (unbound, crossed, _header(tampered.serialize(), discharge)):
        r = client.get("/api/v2/tokens/whoami", headers=headers)
        assert r.status_code == 401, r.text
        assert r.json()["error_list"][0]["code"] == "unauthorized"
    # the root alone is not a credential
    r = client.get("/api/v2/tokens/whoami", headers={"Authorization": f"Macaroon root={root}"})
    assert r.status_code == 401
    # a login is an ordinary token: revoking it ends it
    tokens = client.get("/api/v1/tokens", headers=person.headers).json()["items"]
    login_token = next(t for t in tokens if t["id"] == _token_id(discharge))
    assert login_token["permissions"] == sorted(_macaroons.our_permissions(["package_access"]))
    revoked = client.delete(f"/api/v1/tokens/{login_token['id']}", headers=person.headers)
    assert revoked.status_code < 300, revoked.text
    assert client.get("/api/v2/tokens/whoami", headers=_header(root, discharge)).status_code == 401
    assert (
        client.get(
            "/api/v2/tokens/whoami", headers=_header(other_root, other_discharge)
        ).status_code
        == 200
    )


def test_refresh_hands_back_only_our_discharges(world: World) -> None:
    person = world.factory.person(password=PASSWORD)
    _, discharge = _login(world.client, person.email)
    r = world.client.post("/api/v2/tokens/refresh", json={"discharge_macaroon": discharge})
    assert r.status_code == 200 and r.json()["discharge_macaroon"] == discharge
    forged = Macaroon(location="x", identifier="iotstore-u1c:abc.def", key=b"k" * 32)
    r = world.client.post("/api/v2/tokens/refresh", json={"discharge_macaroon": forged.serialize()})
    assert r.status_code == 401


def test_acl_refuses_unknown_permissions_and_past_expiry(world: World) -> None:
    r = world.client.post("/dev/api/acl/", json={"permissions": ["launch_rockets"]})
    assert r.status_code == 400 and "launch_rockets" in r.text
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    r = world.client.post("/dev/api/acl/", json={"permissions": [], "expires": past})
    assert r.status_code == 400


def test_discharge_refuses_foreign_caveats_and_wrong_passwords(world: World) -> None:
    person = world.factory.person(password=PASSWORD)
    r = world.client.post(
        "/api/v2/tokens/discharge",
        json={"email": person.email, "password": PASSWORD, "caveat_id": "not-ours"},
    )
    assert r.status_code == 401
    assert r.json()["code"] == "INVALID_CREDENTIALS"


def test_expired_login_is_refused() -> None:
    request = _macaroons.LoginRequest(["package_access"], "", datetime.now(UTC), None, None)
    root = _macaroons.mint_root(SECRET, "http://x", "x", request)
    caveat_id = Macaroon.deserialize(root).third_party_caveats()[0].caveat_id
    discharge = _macaroons.discharge(SECRET, "x", caveat_id, "token")
    bound = Macaroon.deserialize(root).prepare_for_request(Macaroon.deserialize(discharge))
    later = datetime.now(UTC) + timedelta(seconds=5)
    with pytest.raises(BadCredentials, match="expired"):
        _macaroons.unwrap(SECRET, root, bound.serialize(), now=later)
    assert _macaroons.unwrap(SECRET, root, bound.serialize(), now=later - timedelta(seconds=10))


_FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(st.text(max_size=300))
def test_any_caveat_id_opens_or_is_bad_credentials(text: str) -> None:
    with contextlib.suppress(BadCredentials):
        _macaroons.open_caveat_id(SECRET, text)


@_FAST
@given(st.text(max_size=300), st.text(max_size=300))
def test_any_macaroon_pair_unwraps_or_is_bad_credentials(root: str, discharge: str) -> None:
    with pytest.raises(BadCredentials):
        _macaroons.unwrap(SECRET, root, discharge)


@_FAST
@given(st.text(max_size=400))
def test_any_upload_id_opens_or_is_refused(text: str) -> None:
    with contextlib.suppress(IotstoreError):
        _uploads.open_upload_id(SECRET, text)


@_FAST
@given(
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    st.integers(0, 2**40),
    st.binary(min_size=48, max_size=48),
    st.text(max_size=300),
)
def test_upload_ids_round_trip_and_resist_tampering(
    key: str, size: int, digest: bytes, filename: str
) -> None:
    created = datetime.now(UTC).replace(microsecond=0)
    info = BlobInfo(key=key, size=size, sha3_384=digest, created=created)
    value = _uploads.upload_id(SECRET, info, filename)
    claimed = _uploads.open_upload_id(SECRET, value)
    assert claimed.info == info and claimed.filename == filename[:255]
    with pytest.raises(IotstoreError):
        _uploads.open_upload_id(b"x" * 32, value)  # another deployment's
    with pytest.raises(IotstoreError):
        _uploads.open_upload_id(SECRET, value, now=created + _uploads.CLAIM_WINDOW * 2)


_BODIES = st.one_of(
    st.binary(max_size=2000),
    st.builds(
        lambda pre, data, post: pre + data + post,
        st.sampled_from(
            [
                b'--B\r\nContent-Disposition: form-data; name="binary"; filename="a"\r\n\r\n',
                b"--B\r\n\r\n",
                b'--B\r\nContent-Disposition: form-data; name="binary"\r\n',
                b"",
            ]
        ),
        st.binary(max_size=500),
        st.sampled_from([b"\r\n--B--\r\n", b"\r\n--B\r\n", b"--B--", b""]),
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    body=_BODIES,
    content_type=st.sampled_from(
        [
            "multipart/form-data; boundary=B",
            "multipart/form-data",
            "application/octet-stream",
            "text/plain",
            "",
        ]
    ),
)
def test_any_upload_body_is_stored_or_refused_never_a_5xx(
    world: World, body: bytes, content_type: str
) -> None:
    r = world.client.post(
        "/unscanned-upload/", content=body, headers={"content-type": content_type}
    )
    assert r.status_code < 500, r.text
    answer = r.json()
    if r.status_code == 200:
        assert answer["successful"] is True and answer["size"] > 0
    else:
        assert answer["successful"] is False and answer["error_list"][0]["message"]
