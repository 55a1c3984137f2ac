"""The library against snapd's own golden output: byte for byte, and the same verdicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from iotstore import asserts

from .conftest import manifest, root_stream, vector_db, vector_key, vector_path

SINGLE = [f for f in manifest() if f["type"] != "stream"]
POSITIVE = [f for f in SINGLE if f["expect"]["result"] in ("OK", "TRUSTED")]
SNAPD_SIGNED = [f for f in POSITIVE if f.get("input") and not f["file"].startswith("gpg/")]


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["file"] for e in entries]


@pytest.mark.parametrize("entry", SINGLE, ids=_ids(SINGLE))
def test_single_decode_keeps_exact_bytes(entry: dict[str, Any]) -> None:
    data = vector_path(entry["file"]).read_bytes()
    single = entry["expect"].get("single-decode", "ok")
    if single != "ok":
        with pytest.raises(asserts.DecodeError) as caught:
            asserts.decode(data)
        assert str(caught.value) == single.removeprefix("error: ")
        return
    a = asserts.decode(data)
    assert a.to_bytes() == data
    assert a.type_name == entry["type"]
    assert [x.to_bytes() for x in asserts.decode_stream(data)] == [data]


@pytest.mark.parametrize("entry", SNAPD_SIGNED, ids=_ids(SNAPD_SIGNED))
def test_signer_reproduces_snapd_byte_for_byte(entry: dict[str, Any]) -> None:
    statement = json.loads(vector_path(entry["input"]).read_text())
    body = statement.pop("body", "")
    type_name = statement["type"]
    signed = asserts.sign(
        type_name,
        statement,
        vector_key(entry["sign-key"]),
        body,
        signed_at=datetime.fromtimestamp(entry["signature-time-unix"], UTC),
    )
    assert signed.to_bytes() == vector_path(entry["file"]).read_bytes()


@pytest.mark.parametrize("entry", POSITIVE, ids=_ids(POSITIVE))
def test_positive_vectors_are_accepted(entry: dict[str, Any]) -> None:
    db = vector_db(*entry["needs"])
    a = asserts.decode(vector_path(entry["file"]).read_bytes())
    if entry["expect"]["result"] == "TRUSTED":
        assert db.find(a.type_name, a.primary_key) == a
    elif a.type_name == "device-session-request":
        serial = db.find("serial", a.primary_key)
        assert isinstance(serial, asserts.Serial)
        asserts.verify_signature(a, serial.device_key)
    elif a.type_name == "serial-request":
        db.check(a)
    else:
        db.add(a)
        assert db.find(a.type_name, a.primary_key).to_bytes() == a.to_bytes()


NEGATIVE = [f for f in SINGLE if f["file"].startswith("negative/")]


@pytest.mark.parametrize("entry", NEGATIVE, ids=_ids(NEGATIVE))
def test_negative_vectors(entry: dict[str, Any]) -> None:
    data = vector_path(entry["file"]).read_bytes()
    expected = entry["expect"]["result"]
    # snapd's texts carry Go's OpenPGP package prefix; ours say the same without it
    message = entry["expect"].get("message", "").replace("openpgp: invalid signature: ", "")
    if expected == "DECODE-ERROR":
        with pytest.raises(asserts.DecodeError) as decode_error:
            list(asserts.decode_stream(data))
        assert str(decode_error.value) == message
        return
    (a,) = asserts.decode_stream(data)
    db = vector_db(*entry["needs"])
    if expected == "OK":
        db.add(a)
        return
    with pytest.raises((asserts.CheckError, asserts.SignatureError)) as refused:
        if a.type_name == "serial-request":
            db.check(a)
        else:
            db.add(a)
    assert str(refused.value) == message


def test_stream_vector_decodes_and_reencodes_identically() -> None:
    data = vector_path("stream.assert").read_bytes()
    members = list(asserts.decode_stream(data))
    assert [m.type_name for m in members] == ["account", "account-key", "model", "serial"]
    assert asserts.encode_stream(members) == data
    db = asserts.Database(root_stream(), clock=lambda: datetime(2026, 11, 27, tzinfo=UTC))
    assert db.add_many(members) == {}


def test_root_stream_is_the_trusted_set() -> None:
    data = vector_path("root.assert").read_bytes()
    root = list(asserts.decode_stream(data))
    assert asserts.encode_stream(root) == data
    db = asserts.Database(root)
    assert db.is_trusted_account("test-root")
    assert [a.type_name for a in db.trusted] == ["account", "account-key"]


def test_key_ids_and_encodings_match_snapd() -> None:
    keys = json.loads(vector_path("keys/keys.json").read_text())["keys"]
    for label, info in keys.items():
        public = vector_key(label).public_key
        assert public.id == info["key-id"], label
        assert public.encoded == info["public-key"], label
        assert asserts.PublicKey.decode(info["public-key"]) == public
