"""Prove the snapd harness itself against the golden vectors.

Before snapdcheck and the snap CLI can judge iotstore, they must reproduce
what the spec recorded from snapd 2.57.6: every positive vector accepted,
every negative one refused with snapd's exact words, snapd's signer giving
the same content, and a brand key made by ``snap create-key`` usable end to
end once our root certifies it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from . import golden
from .snapcli import SnapKey
from .snapd import SnapdCheck, SnapdCheckError, VerifyLine

pytestmark = pytest.mark.snapd

MANIFEST = {entry["file"]: entry for entry in golden.manifest_entries()}
ROOT_ACCOUNT = "test-root"
ROOT_KEY_ID = "xdnw-WEYxFGg5sAPCaczXlhPO2mG7zZ1h-bBQ973pxzIRtaZSeJTcGVLBb_sAtCP"
BRAND = "acme"


def _root() -> bytes:
    return golden.read(golden.ROOT_STREAM)


def _content(assertion: bytes) -> bytes:
    """Signed content: everything before the blank line that precedes the signature."""
    return assertion[: assertion.rindex(b"\n\n")]


def _describe(lines: list[VerifyLine]) -> str:
    return "\n".join(json.dumps(line) for line in lines)


def test_all_positive_vectors_accepted_in_one_database(snapdcheck: SnapdCheck) -> None:
    files = golden.positive_files()
    lines = snapdcheck.verify(_root(), *(golden.read(f) for f in files))

    assert all(line["ok"] for line in lines), _describe(lines)
    # One line per assertion: every file holds one, stream.assert holds four.
    assert len(lines) == len(files) + 3
    # stream.assert repeats four single files byte for byte: snapd answers
    # "revision 0 is already the current revision", reported as a duplicate.
    stream = files.index("stream.assert")
    assert [line.get("note") for line in lines if line["stream"] == stream] == [
        "already present"
    ] * 4


@pytest.mark.parametrize(
    "name", [name for name in MANIFEST if name != golden.ROOT_STREAM and name != "stream.assert"]
)
def test_vector_alone_gives_recorded_result(snapdcheck: SnapdCheck, name: str) -> None:
    entry = MANIFEST[name]
    needs = [golden.read(n) for n in entry["needs"]]
    lines = snapdcheck.verify(_root(), *needs, golden.read(name))

    prerequisites = [line for line in lines if line["stream"] < len(needs)]
    assert all(line["ok"] for line in prerequisites), _describe(lines)
    [line] = [line for line in lines if line["stream"] == len(needs)]
    expect = entry["expect"]
    match expect["result"]:
        case "OK":
            assert line["ok"], _describe(lines)
        case "TRUSTED":
            # A byte-identical copy of a trusted assertion is skipped, as
            # snapd's own stream ingestion (asserts.Batch) does.
            assert (line["ok"], line.get("note")) == (True, "trusted"), _describe(lines)
        case "ERROR":
            assert (line["ok"], line["error"]) == (False, expect["message"])
            assert line["type"] == entry["type"]
        case "DECODE-ERROR":
            assert (line["ok"], line["error"]) == (False, "decode: " + expect["message"])
            assert "type" not in line
        case other:
            pytest.fail(f"unknown expected result {other!r} in manifest.json")


def test_stream_vector_alone(snapdcheck: SnapdCheck) -> None:
    lines = snapdcheck.verify(_root(), golden.read("stream.assert"))
    assert [(line["type"], line["ok"]) for line in lines] == [
        ("account", True),
        ("account-key", True),
        ("model", True),
        ("serial", True),
    ], _describe(lines)


def test_trusted_halves_clash_when_different(snapdcheck: SnapdCheck) -> None:
    """A different assertion under a trusted primary key is refused with snapd's words."""
    statement = json.loads(golden.read("inputs/account-root.json"))
    statement["display-name"] = "Impostor Root"
    impostor = snapdcheck.sign(statement, golden.key_pem("root"))

    [line] = snapdcheck.verify(_root(), impostor)

    assert not line["ok"]
    assert line["error"] == (
        'cannot add "account" assertion with primary key clashing with a trusted assertion: '
        f"[{ROOT_ACCOUNT}]"
    )


SIGNED_FROM_INPUT = [
    name for name, entry in MANIFEST.items() if "input" in entry and name.endswith(".assert")
]


@pytest.mark.parametrize("name", SIGNED_FROM_INPUT)
def test_snapd_signer_reproduces_content(snapdcheck: SnapdCheck, name: str) -> None:
    entry = MANIFEST[name]
    label = entry.get("sign-key") or entry["signed-with"]
    statement: dict[str, Any] = json.loads(golden.read(entry["input"]))

    signed = snapdcheck.sign(statement, golden.key_pem(label))

    assert _content(signed) == _content(golden.read(name))
    assert signed.endswith(b"\n") and not signed.endswith(b"\n\n")


def test_sign_model_core22_exactly(snapdcheck: SnapdCheck) -> None:
    """The brief's reference case, spelled out: content identical, signature verifies."""
    statement = json.loads(golden.read("inputs/model-core22.json"))
    signed = snapdcheck.sign(statement, golden.key_pem("brand"))

    assert _content(signed) == _content(golden.read("model-core22.assert"))
    snapdcheck.assert_accepted(
        _root(),
        golden.read("account-brand.assert"),
        golden.read("account-key-brand.assert"),
        signed,
    )


def test_sign_refusal_carries_snapd_message(snapdcheck: SnapdCheck) -> None:
    statement = json.loads(golden.read("inputs/model-core22.json"))
    del statement["authority-id"]
    with pytest.raises(SnapdCheckError, match='"authority-id" header is mandatory') as info:
        snapdcheck.sign(statement, golden.key_pem("brand"))
    assert info.value.returncode == 1


@pytest.mark.parametrize("label", ["root", "brand", "device", "device-4096", "acme-gpg"])
def test_keyid_matches_keys_json(snapdcheck: SnapdCheck, label: str) -> None:
    keys = json.loads(golden.read("keys/keys.json"))["keys"]
    pem = golden.key_pem(label)
    pkcs1 = serialization.load_pem_private_key(pem, password=None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pkcs1.startswith(b"-----BEGIN RSA PRIVATE KEY-----")

    expected = (keys[label]["key-id"], keys[label]["public-key"])
    assert snapdcheck.keyid(pem) == expected
    assert snapdcheck.keyid(pkcs1) == expected


def test_verify_now_pins_the_clock(snapdcheck: SnapdCheck) -> None:
    chain = [
        golden.read(n)
        for n in ("account-brand.assert", "account-key-brand.assert", "model-core22.assert")
    ]
    # Before the keys' since (2026-01-01): even the trusted root key is
    # refused, and snapd calls a not-yet-valid key "expired".
    early = snapdcheck.verify(_root(), *chain, now=datetime(2025, 6, 1, tzinfo=UTC))
    assert not any(line["ok"] for line in early)
    assert early[0]["error"] == (
        f'assertion is signed with expired public key "{ROOT_KEY_ID}" from "{ROOT_ACCOUNT}": '
        "current time is 2025-06-01T00:00:00Z but key is valid from 2026-01-01T00:00:00Z"
    )
    later = snapdcheck.verify(_root(), *chain, now="2026-06-01T00:00:00Z")
    assert all(line["ok"] for line in later), _describe(later)


def test_verify_reports_decode_error_after_good_assertions(snapdcheck: SnapdCheck) -> None:
    broken = golden.read("account-brand.assert") + b"\ntype: model\n"
    lines = snapdcheck.verify(_root(), broken)
    assert [(line.get("type"), line["ok"]) for line in lines] == [("account", True), (None, False)]
    assert lines[1]["error"].startswith("decode: ")


def test_verify_headers_show_snapd_decoding(snapdcheck: SnapdCheck) -> None:
    [line] = snapdcheck.verify(_root(), golden.read("model-core22.assert"), headers=True)
    assert not line["ok"]  # no brand key in the database, decoding still reported
    statement = json.loads(golden.read("inputs/model-core22.json"))
    decoded = line["headers"]
    for name, value in statement.items():
        assert decoded[name] == value
    assert line["body"] == ""


def test_snap_cli_key_certified_by_root_signs_accepted_model(
    snapdcheck: SnapdCheck, snap_key: SnapKey
) -> None:
    """Brand owner flow: snap create-key / export-key / sign, root certifies the key."""
    account = golden.read("account-brand.assert")
    request = snap_key.export(BRAND)

    # The account-key-request is self-signed (gpg layout) and accepted.
    [_, req_line] = snapdcheck.verify(_root(), account, request, headers=True)
    assert (req_line["ok"], req_line["type"]) == (True, "account-key-request"), req_line
    req = req_line["headers"]
    assert req["public-key-sha3-384"] == snap_key.key_id
    assert req["sign-key-sha3-384"] == snap_key.key_id
    assert req["account-id"] == BRAND
    assert req_line["body"].encode() + b"\n" == snap_key.keyring.public_key(snap_key.name)

    # The root certifies it, copying since from the request (= export time).
    account_key = snapdcheck.sign(
        {
            "type": "account-key",
            "authority-id": ROOT_ACCOUNT,
            "account-id": BRAND,
            "name": req["name"],
            "public-key-sha3-384": req["public-key-sha3-384"],
            "since": req["since"],
            "body": req_line["body"],
        },
        golden.key_pem("root"),
    )
    # A timestamp before since would be refused; since itself is the inclusive bound.
    model = snap_key.sign(
        {
            "type": "model",
            "authority-id": BRAND,
            "series": "16",
            "brand-id": BRAND,
            "model": "conformance-snap-cli",
            "architecture": "amd64",
            "gadget": "pc",
            "kernel": "pc-kernel",
            "timestamp": req["since"],
        }
    )

    lines = snapdcheck.assert_accepted(_root(), account, account_key, model)
    assert [line["type"] for line in lines] == ["account", "account-key", "model"]

    # Without the account-key, snapd cannot find the gpg key.
    refused = snapdcheck.verify(_root(), account, model)
    assert refused[1]["error"] == (
        f'no matching public key "{snap_key.key_id}" for signature by "{BRAND}"'
    )
