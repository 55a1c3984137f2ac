"""Channels and releases on SQLite and PostgreSQL: tracks, risks, branches, closing,
progressive releases, the channel map, the history and what a device is served.

Also the fault rule: a failure inside the unit of work of a push or a release
leaves no half-visible revision or channel.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from iotstore.db import utcnow
from iotstore.snaps.channels import Channel, fallback_chain, parse_channel
from iotstore.snaps.errors import ChannelError, NotReleasable, SnapRuleViolation
from iotstore.snaps.models import ChannelRelease, ReleaseEvent, Revision, Upload
from iotstore.snaps.services import ChannelResolver, ResolveRequest, progressive_bucket
from iotstore.stores.services import StoreService

from .conftest import PubWorld, new_world

# -- channel names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("stable", None, ("latest", "stable", "")),
        ("edge", "2.0", ("2.0", "edge", "")),
        ("2.0", None, ("2.0", "stable", "")),
        ("2.0/beta", None, ("2.0", "beta", "")),
        ("beta/hotfix-1", None, ("latest", "beta", "hotfix-1")),
        ("latest/candidate/fix", None, ("latest", "candidate", "fix")),
    ],
)
def test_parse_channel(text: str, default: str | None, expected: tuple[str, str, str]) -> None:
    assert parse_channel(text, default) == Channel(*expected)


@pytest.mark.parametrize("text", ["", "a/b/c/d", "2.0/unstable", "-x/stable", "stable/-b", "/"])
def test_parse_channel_refuses(text: str) -> None:
    with pytest.raises(ChannelError):
        parse_channel(text)


@given(st.text(max_size=60))
def test_parse_channel_raises_only_its_error(text: str) -> None:
    try:
        channel = parse_channel(text)
    except ChannelError:
        return
    assert parse_channel(channel.name) == channel


def test_fallback_follows_more_stable_risks() -> None:
    chain = [c.name for c in fallback_chain(Channel("latest", "edge", "fix"))]
    assert chain == [
        "latest/edge/fix",
        "latest/edge",
        "latest/beta",
        "latest/candidate",
        "latest/stable",
    ]


def test_progressive_bucket_is_deterministic_and_spread() -> None:
    buckets = [progressive_bucket("snapid", 3, f"device-{i}") for i in range(2000)]
    assert buckets == [progressive_bucket("snapid", 3, f"device-{i}") for i in range(2000)]
    assert all(0 <= b < 100 for b in buckets)
    share = sum(b < 30 for b in buckets) / len(buckets)
    assert 0.25 < share < 0.35


# -- releases ------------------------------------------------------------------------


def _published(pub: PubWorld, revisions: int = 2, **kw: object) -> str:
    name = pub.register()
    for i in range(revisions):
        pub.publish(name, f"{i + 1}.0", **kw)  # type: ignore[arg-type]
    return name


def _resolve(
    pub: PubWorld, name: str, channel: str | None, device: str = "dev-1", arch: str = "amd64"
) -> tuple[int, str] | None:
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        got = p.resolver.resolve([ResolveRequest("k", snap.snap_id, channel)], arch, device)
    if "k" not in got:
        return None
    hit = got["k"]
    assert hit.channel is not None
    return hit.revision, hit.channel.name


def test_release_to_several_channels_per_architecture(pub: PubWorld) -> None:
    name = _published(pub, 1, architectures=("amd64", "arm64"))
    with pub.unit() as p:
        written = p.releases.release(
            pub.actor("publisher"), p.snaps.by_name(name), 1, ["stable", "beta"]
        )
    assert sorted((e.architecture, e.channel.name) for e in written) == [
        ("amd64", "latest/beta"),
        ("amd64", "latest/stable"),
        ("arm64", "latest/beta"),
        ("arm64", "latest/stable"),
    ]
    assert _resolve(pub, name, "stable", arch="arm64") == (1, "latest/stable")
    assert _resolve(pub, name, "stable", arch="riscv64") is None
    # edge and candidate are closed: devices there follow the next more stable risk
    assert _resolve(pub, name, "edge") == (1, "latest/beta")
    assert _resolve(pub, name, "candidate") == (1, "latest/stable")


def test_architecture_all_serves_every_architecture(pub: PubWorld) -> None:
    name = _published(pub, 1, architectures=("all",))
    with pub.unit() as p:
        p.releases.release(pub.actor("publisher"), p.snaps.by_name(name), 1, ["stable"])
    assert _resolve(pub, name, "stable", arch="armhf") == (1, "latest/stable")


def test_close_makes_devices_follow_the_next_more_stable_risk(pub: PubWorld) -> None:
    name = _published(pub)
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        p.releases.release(pub.actor("publisher"), snap, 1, ["stable"])
        p.releases.release(pub.actor("publisher"), snap, 2, ["edge"])
    assert _resolve(pub, name, "edge") == (2, "latest/edge")
    with pub.unit() as p:
        assert p.releases.close(pub.actor("publisher"), p.snaps.by_name(name), ["edge"]) == [
            "latest/edge"
        ]
    assert _resolve(pub, name, "edge") == (1, "latest/stable")
    with pub.unit() as p:
        p.releases.close(pub.actor("publisher"), p.snaps.by_name(name), ["stable"])
    assert _resolve(pub, name, "edge") is None


def test_tracks_and_the_default_track(pub: PubWorld) -> None:
    name = _published(pub)
    with pytest.raises(ChannelError, match="no track"), pub.unit() as p:
        p.releases.release(pub.actor("publisher"), p.snaps.by_name(name), 2, ["2.0/stable"])
    with pytest.raises(SnapRuleViolation), pub.unit() as p:
        p.snaps.create_track(pub.actor("publisher"), p.snaps.by_name(name), "beta")
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        p.snaps.create_track(pub.actor("publisher"), snap, "2.0")
        p.releases.release(pub.actor("publisher"), snap, 1, ["stable"])
        p.releases.release(pub.actor("publisher"), snap, 2, ["2.0/stable"])
        assert p.snaps.tracks(snap) == ["latest", "2.0"]
    assert _resolve(pub, name, None) == (1, "latest/stable")
    assert _resolve(pub, name, "2.0") == (2, "2.0/stable")
    with pub.unit() as p:
        p.snaps.set_default_track(pub.actor("publisher"), p.snaps.by_name(name), "2.0")
    # a device naming no track gets the default track, and is told to follow it
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        got = p.resolver.resolve([ResolveRequest("k", snap.snap_id, "stable")], "amd64", "d")
        assert (got["k"].revision, got["k"].redirect_channel) == (2, "2.0/stable")
        got = p.resolver.resolve([ResolveRequest("k", snap.snap_id, "latest/stable")], "amd64", "d")
        assert (got["k"].revision, got["k"].redirect_channel) == (1, None)


def test_branches_expire(pub: PubWorld) -> None:
    name = _published(pub)
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        p.releases.release(pub.actor("publisher"), snap, 1, ["stable"])
        (entry,) = p.releases.release(pub.actor("publisher"), snap, 2, ["stable/hotfix"])
        assert entry.expires_at is not None
        assert timedelta(days=29) < entry.expires_at - utcnow() <= timedelta(days=30)
        assert entry.as_json()["expiration-date"] is not None
    assert _resolve(pub, name, "stable/hotfix") == (2, "latest/stable/hotfix")
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        later = utcnow() + timedelta(days=31)
        assert [e.channel.name for e in p.releases.channel_map(snap, now=later)] == [
            "latest/stable"
        ]
        got = ChannelResolver(p.session, clock=lambda: later).resolve(
            [ResolveRequest("k", snap.snap_id, "stable/hotfix")], "amd64", "dev"
        )
        assert (got["k"].revision, got["k"].channel) == (1, Channel("latest", "stable"))


def test_progressive_release_raise_complete(pub: PubWorld) -> None:
    name = _published(pub)
    devices = [f"device-{i}" for i in range(200)]
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        p.releases.release(pub.actor("publisher"), snap, 1, ["stable"])
        (entry,) = p.releases.release(
            pub.actor("publisher"), snap, 2, ["stable"], progressive_percentage=20
        )
        assert (entry.revision, entry.previous_revision, entry.progressive_percentage) == (
            2,
            1,
            20,
        )
        assert entry.as_json()["progressive"]["percentage"] == 20

    def served() -> dict[str, int]:
        with pub.unit() as p:
            snap = p.snaps.by_name(name)
            out = {}
            for d in devices:
                got = p.resolver.resolve([ResolveRequest("k", snap.snap_id, "stable")], "amd64", d)
                out[d] = got["k"].revision
            return out

    first = served()
    chosen = {d for d, r in first.items() if r == 2}
    assert 0.1 < len(chosen) / len(devices) < 0.3
    assert served() == first  # deterministic per device
    with pub.unit() as p:
        p.releases.set_progress(pub.actor("publisher"), p.snaps.by_name(name), "stable", 60)
    raised = served()
    chosen_now = {d for d, r in raised.items() if r == 2}
    assert chosen <= chosen_now  # raising keeps every device already chosen
    assert 0.5 < len(chosen_now) / len(devices) < 0.7
    with pub.unit() as p:
        p.releases.complete(pub.actor("publisher"), p.snaps.by_name(name), "stable")
    assert set(served().values()) == {2}
    with pytest.raises(NotReleasable), pub.unit() as p:
        p.releases.complete(pub.actor("publisher"), p.snaps.by_name(name), "stable")


def test_progressive_release_abandon(pub: PubWorld) -> None:
    name = _published(pub)
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        p.releases.release(pub.actor("publisher"), snap, 1, ["stable"])
        p.releases.release(pub.actor("publisher"), snap, 2, ["stable"], progressive_percentage=50)
    with pytest.raises(SnapRuleViolation), pub.unit() as p:
        p.releases.set_progress(pub.actor("publisher"), p.snaps.by_name(name), "stable", 100)
    with pub.unit() as p:
        p.releases.abandon(pub.actor("publisher"), p.snaps.by_name(name), "stable")
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        (entry,) = p.releases.channel_map(snap)
        assert (entry.revision, entry.progressive_percentage) == (1, None)
    for i in range(50):
        assert _resolve(pub, name, "stable", device=f"d{i}") == (1, "latest/stable")


def test_a_progressive_release_into_an_empty_channel_reaches_everyone(pub: PubWorld) -> None:
    name = _published(pub, 1)
    with pub.unit() as p:
        (entry,) = p.releases.release(
            pub.actor("publisher"), p.snaps.by_name(name), 1, ["beta"], progressive_percentage=10
        )
    assert entry.progressive_percentage is None


def test_history_is_complete(pub: PubWorld) -> None:
    name = _published(pub)
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        a = pub.actor("publisher")
        p.releases.release(a, snap, 1, ["stable"])
        p.releases.release(a, snap, 2, ["stable"], progressive_percentage=10)
        p.releases.set_progress(a, snap, "stable", 50)
        p.releases.complete(a, snap, "stable")
        p.releases.close(a, snap, ["stable"])
    with pub.unit() as p:
        events = [
            (e.action, e.revision, e.progressive_percentage, f"{e.track}/{e.risk}")
            for e in reversed(p.releases.history(p.snaps.by_name(name)))
        ]
    assert events == [
        ("release", 1, None, "latest/stable"),
        ("release", 2, 10, "latest/stable"),
        ("progress", 2, 50, "latest/stable"),
        ("complete", 2, None, "latest/stable"),
        ("close", None, None, "latest/stable"),
    ]


def test_resolve_many_snaps_pinned_revisions_and_the_store_scope(pub: PubWorld) -> None:
    names = [_published(pub) for _ in range(3)]
    other = new_world(pub.backend)
    with pub.unit() as p:
        snaps = [p.snaps.by_name(n) for n in names]
        for s in snaps:
            p.releases.release(pub.actor("publisher"), s, 2, ["stable"])
    with pub.unit() as p:
        requests = [ResolveRequest(f"k{i}", s.snap_id, "stable") for i, s in enumerate(snaps)]
        requests.append(ResolveRequest("pinned", snaps[0].snap_id, None, revision=1))
        requests.append(ResolveRequest("unknown", "x" * 32, "stable"))
        scope = StoreService(p.session, p.audit).catalogue(pub.store_id)
        got = p.resolver.resolve(requests, "amd64", "dev", scope)
        assert {k: v.revision for k, v in got.items()} == {"k0": 2, "k1": 2, "k2": 2, "pinned": 1}
        hit = got["k0"]
        assert (hit.name, hit.snap_type, hit.base, hit.confinement) == (
            names[0], "app", "core22", "strict",
        )  # fmt: skip
        assert len(hit.sha3_384) == 96 and hit.size > 0 and hit.snap_yaml.startswith("name:")
        # another brand's store sees none of them
        scope = StoreService(p.session, p.audit).catalogue(other.store_id)
        assert p.resolver.resolve(requests, "amd64", "dev", scope) == {}
        assert p.resolver.revision(snaps[0].snap_id, 1).revision == 1
        assert p.resolver.available(snaps[0].snap_id) == [("amd64", "latest/stable")]
        assert set(p.resolver.lookup_names(names)) == set(names)


# -- nothing half-written ------------------------------------------------------------


class Boom(Exception):
    """The forced failure."""


def _counts(pub: PubWorld) -> dict[str, int]:
    with pub.unit() as p:
        return {
            t.__tablename__: p.session.scalar(select(func.count()).select_from(t)) or 0
            for t in (Revision, ChannelRelease, ReleaseEvent)
        }


def test_failure_mid_push_leaves_no_revision(pub: PubWorld) -> None:
    name = pub.register()
    upload_id = pub.upload("publisher", pub.snap_file(name))
    before = _counts(pub)
    with pytest.raises(Boom), pub.unit() as p:
        status = p.revisions.push(
            pub.actor("publisher"), p.snaps.by_name(name), upload_id, channels=["stable"]
        )
        assert status.revision == 1  # written and flushed inside the transaction...
        raise Boom  # ...when the unit of work fails before its commit
    assert _counts(pub) == before
    with pub.unit() as p:
        upload = p.session.get(Upload, upload_id)
        assert upload is not None and upload.status == "uploaded"
        assert p.revisions.status(upload_id, pub.people["publisher"]).code == "being_processed"
    # and the push works afterwards
    assert pub.publish(name, "2.0")["revision"] == 1


def test_failure_mid_release_leaves_no_channel(pub: PubWorld) -> None:
    name = _published(pub, 1, architectures=("amd64", "arm64"))
    before = _counts(pub)
    with pytest.raises(Boom), pub.unit() as p:
        p.releases.release(pub.actor("publisher"), p.snaps.by_name(name), 1, ["stable", "beta"])
        raise Boom
    assert _counts(pub) == before
    assert _resolve(pub, name, "stable") is None


def test_a_failing_signature_mid_push_leaves_nothing(pub: PubWorld) -> None:
    name = pub.register()
    upload_id = pub.upload("publisher", pub.snap_file(name))
    before = _counts(pub)
    real = pub.backend.keystore.signer

    def broken(name: str) -> object:
        raise Boom("the key store is down")

    pub.backend.keystore.signer = broken  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(Boom), pub.unit() as p:
            p.revisions.push(pub.actor("publisher"), p.snaps.by_name(name), upload_id)
    finally:
        pub.backend.keystore.signer = real  # type: ignore[method-assign]
    assert _counts(pub) == before


def test_epochs_offer_only_what_the_installed_revision_can_read(pub: PubWorld) -> None:
    name = pub.register()
    pub.publish(name, "1.0")  # epoch 0
    pub.publish(name, "2.0", extra_yaml={"epoch": "1"})  # reads only epoch 1
    pub.publish(name, "3.0", extra_yaml={"epoch": "1*"})  # reads 0 and 1, writes 1
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        for revision in (1, 2):
            p.releases.release(pub.actor("publisher"), snap, revision, ["stable"])

    def offered(epoch: dict[str, list[int]] | None) -> int | None:
        with pub.unit() as p:
            snap_id = p.snaps.by_name(name).snap_id
            request = ResolveRequest("k", snap_id, "stable", epoch=epoch)
            got = p.resolver.resolve([request], "amd64", "dev")
            return got["k"].revision if "k" in got else None

    assert offered(None) == 2  # an install takes what is released
    assert offered({"read": [1], "write": [1]}) == 2
    # a device at epoch 0 cannot read revision 2: it gets the older revision of the channel
    assert offered({"read": [0], "write": [0]}) == 1
    with pub.unit() as p:
        p.releases.release(pub.actor("publisher"), p.snaps.by_name(name), 3, ["stable"])
    assert offered({"read": [0], "write": [0]}) == 3
    assert offered({"read": [7], "write": [7]}) is None
