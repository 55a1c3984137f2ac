"""The publishing domain on SQLite and PostgreSQL: names, collaborators, revisions, review.

Real snap files (mksquashfs), the real inspector, the fixed test root signing
declarations and revisions, files on disk for blobs. Channels and releases are
in ``test_releases.py``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from iotstore import asserts
from iotstore.assertdb import trust_database
from iotstore.snaps.errors import (
    NotReleasable,
    SnapAccessDenied,
    SnapNameTaken,
    SnapNotFound,
    SnapRuleViolation,
    UploadNotFound,
)
from iotstore.snaps.models import Revision, Upload
from iotstore.snaps.services import valid_snap_name
from iotstore.snaps.sweep import MIN_SWEEP_AGE, SWEEP_AGE, sweep_orphan_blobs
from iotstore.stores.models import AuditEntry
from iotstore.web.publisher_api._uploads import CLAIM_WINDOW

from .conftest import PubWorld, new_world

# -- names ---------------------------------------------------------------------------

_REFERENCE = re.compile(r"(?=.*[a-z])[a-z0-9]+(?:-[a-z0-9]+)*")


@given(st.text(alphabet=string.ascii_lowercase + string.digits + "-_A. ", max_size=45))
def test_snap_name_rule_matches_the_stated_rule(name: str) -> None:
    expected = 2 <= len(name) <= 40 and bool(_REFERENCE.fullmatch(name))
    assert valid_snap_name(name) is expected


BAD_NAMES = ["a", "-ab", "ab-", "a--b", "Hello", "12", "a" * 41, "a_b", "héllo", "a b", ""]


def test_bad_names_are_refused(pub: PubWorld) -> None:
    for name in BAD_NAMES:
        with pytest.raises(SnapRuleViolation) as e, pub.unit() as p:
            p.snaps.register(pub.actor("publisher"), pub.store_id, name)
        assert e.value.field == "name", name


def test_register_gives_a_32_character_id_and_a_root_signed_declaration(pub: PubWorld) -> None:
    name = pub.register("hello-1x")
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        assert re.fullmatch(r"[A-Za-z0-9]{32}", snap.snap_id)
        assert snap.publisher_id == pub.people["publisher"]
        decl = p.snaps.declaration(snap)
        assert decl.headers["snap-name"] == name
        assert decl.headers["publisher-id"] == pub.people["publisher"]
        assert decl.authority_id == pub.backend.root.account_id
        assert decl.revision == 0
        # the publisher's account assertion came with it: a device can check the chain
        trust = trust_database(p.session, pub.backend.root.trusted)
        trust.find("account", (pub.people["publisher"],))
        trust.check(decl)
        entry = p.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "snap.register")
            .order_by(AuditEntry.id.desc())
        ).first()
        assert entry is not None and entry.target == snap.snap_id
        assert entry.actor_account_id == pub.people["publisher"]


def test_names_are_unique_per_deployment(pub: PubWorld) -> None:
    name = pub.register()
    other = new_world(pub.backend)
    with pytest.raises(SnapNameTaken), other.unit() as p:
        p.snaps.register(other.actor("publisher"), other.store_id, name)


def test_dry_run_writes_nothing(pub: PubWorld) -> None:
    with pub.unit() as p:
        snap = p.snaps.register(pub.actor("publisher"), pub.store_id, "dry-run-x1", dry_run=True)
        assert snap.name == "dry-run-x1"
    with pytest.raises(SnapNotFound), pub.unit() as p:
        p.snaps.by_name("dry-run-x1")


def test_kernel_and_gadget_names_only_by_the_brand(pub: PubWorld) -> None:
    name = f"k{pub.store_id[-8:]}"
    with pytest.raises(SnapAccessDenied), pub.unit() as p:
        p.snaps.register(pub.actor("publisher"), pub.store_id, name, snap_type="kernel")
    pub.register(name, who="brand-admin", snap_type="kernel")
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        # snapd accepts kernel and gadget snaps only from the model's brand
        assert snap.publisher_id == pub.brand_id
        assert p.snaps.declaration(snap).headers["publisher-id"] == pub.brand_id
        assert snap.registered_by == pub.people["brand-admin"]


def test_declaration_is_reissued_with_a_new_revision(pub: PubWorld) -> None:
    name = pub.register()
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        p.snaps.update_declaration(
            pub.actor("publisher"), snap, {"aliases": [{"name": "hi", "target": "hello"}]}
        )
    with pub.unit() as p:
        decl = p.snaps.declaration(p.snaps.by_name(name))
        assert decl.revision == 1
        assert decl.headers["aliases"]
    with pytest.raises(SnapRuleViolation), pub.unit() as p:
        p.snaps.update_declaration(
            pub.actor("publisher"), p.snaps.by_name(name), {"snap-name": "x"}
        )


# -- collaborators -------------------------------------------------------------------


def test_collaborator_uploads_and_releases_that_snap_only(pub: PubWorld) -> None:
    mine, other = pub.register(), pub.register()
    helper = pub.people["outsider"]  # no role in the store at all
    with pub.unit() as p:
        p.snaps.add_collaborator(pub.actor("publisher"), p.snaps.by_name(mine), helper)
    with pub.unit() as p:
        snap = p.snaps.by_name(mine)
        dev = p.snaps._signer.trust.find("snap-developer", (snap.snap_id, snap.publisher_id))
        assert isinstance(dev, asserts.SnapDeveloper)
        assert [d.developer_id for d in dev.developers] == [helper]
        assert snap in p.snaps.account_snaps(helper)
    status = pub.publish(mine, who="outsider")
    assert status["code"] == "ready_to_release", status
    with pub.unit() as p:
        p.releases.release(pub.actor("outsider"), p.snaps.by_name(mine), 1, ["edge"])
    # nothing on the snap it does not collaborate on, not even seeing it
    with pytest.raises(SnapNotFound):
        pub.publish(other, who="outsider")
    # a collaborator does not hand out the role itself
    with pytest.raises(SnapAccessDenied), pub.unit() as p:
        p.snaps.add_collaborator(pub.actor("outsider"), p.snaps.by_name(mine), helper)


def test_another_publisher_of_the_store_needs_the_role(pub: PubWorld) -> None:
    name = pub.register()
    with pytest.raises(SnapAccessDenied):
        pub.publish(name, who="publisher2")
    with pub.unit() as p:
        p.snaps.set_collaborators(
            pub.actor("publisher"), p.snaps.by_name(name), [pub.people["publisher2"]]
        )
    assert pub.publish(name, who="publisher2")["revision"] == 1


def test_removed_collaborator_loses_the_role_and_is_revoked_in_snap_developer(
    pub: PubWorld,
) -> None:
    name = pub.register()
    helper = pub.people["publisher2"]
    with pub.unit() as p:
        p.snaps.add_collaborator(pub.actor("publisher"), p.snaps.by_name(name), helper)
    with pub.unit() as p:
        p.snaps.remove_collaborator(pub.actor("publisher"), p.snaps.by_name(name), helper)
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        assert p.snaps.collaborators(snap) == []
        dev = p.snaps._signer.trust.find("snap-developer", (snap.snap_id, snap.publisher_id))
        assert isinstance(dev, asserts.SnapDeveloper)
        assert dev.revision == 1
        (entry,) = dev.developers
        assert entry.developer_id == helper and entry.since == entry.until
    with pytest.raises(SnapAccessDenied):
        pub.publish(name, who="publisher2")


# -- uploads and revisions -----------------------------------------------------------


def test_push_numbers_revisions_and_signs_snap_revision(pub: PubWorld) -> None:
    name = pub.register()
    path = pub.snap_file(name, "1.0", architectures=("amd64", "arm64"))
    digest = hashlib.sha3_384(path.read_bytes()).digest()
    upload_id = pub.upload("publisher", path)
    with pub.unit() as p:
        status = p.revisions.push(pub.actor("publisher"), p.snaps.by_name(name), upload_id)
    assert status.as_json()["processed"] is True
    assert (status.code, status.revision) == ("ready_to_release", 1)
    assert pub.publish(name, "2.0")["revision"] == 2
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        rev = p.revisions.get(snap, 1)
        assert rev.sha3_384 == digest.hex()  # lower-case hex in JSON
        assert rev.architectures == ["amd64", "arm64"]
        assert (rev.version, rev.grade, rev.status) == ("1.0", "stable", "approved")
        b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        trust = trust_database(p.session, pub.backend.root.trusted)
        sr = trust.find("snap-revision", (b64, "global-upload"))
        assert isinstance(sr, asserts.SnapRevision)
        assert (sr.snap_id, sr.snap_revision, sr.snap_size) == (
            snap.snap_id,
            1,
            path.stat().st_size,
        )
        assert sr.developer_id == pub.people["publisher"]
        trust.check(sr)
        assert [r.revision for r in p.revisions.revisions(snap)] == [2, 1]


def _refused(pub: PubWorld, name: str, path_name: str, **kw: object) -> list[dict[str, str]]:
    upload_id = pub.upload("publisher", pub.snap_file(path_name, **kw))  # type: ignore[arg-type]
    with pub.unit() as p:
        status = p.revisions.push(pub.actor("publisher"), p.snaps.by_name(name), upload_id)
    assert (status.code, status.processed, status.revision) == ("processing_error", True, None)
    with pub.unit() as p:
        assert p.session.get(Upload, upload_id).status == "failed"  # type: ignore[union-attr]
        count = select(func.count()).select_from(Revision)
        assert p.session.scalar(count.where(Revision.snap_id == p.snaps.by_name(name).snap_id)) == 0
        # and the poll says the same afterwards
        again = p.revisions.status(upload_id, pub.people["publisher"])
        assert again.errors == status.errors
    return status.errors


def test_name_mismatch_is_refused_with_a_reason(pub: PubWorld) -> None:
    name = pub.register()
    errors = _refused(pub, name, "something-else")
    assert errors[0]["code"] == "name-mismatch"
    assert "something-else" in errors[0]["message"]


def test_kernel_upload_to_an_app_name_is_refused(pub: PubWorld) -> None:
    name = pub.register()
    errors = _refused(pub, name, name, snap_type="kernel", base=None)
    assert [e["code"] for e in errors] == ["type-not-allowed"]


def test_identical_digest_is_refused(pub: PubWorld) -> None:
    name = pub.register()
    path = pub.snap_file(name)
    first = pub.upload("publisher", path)
    second = pub.upload("publisher", path)
    with pub.unit() as p:
        assert p.revisions.push(pub.actor("publisher"), p.snaps.by_name(name), first).revision == 1
    with pub.unit() as p:
        status = p.revisions.push(pub.actor("publisher"), p.snaps.by_name(name), second)
    assert status.code == "processing_error"
    assert status.errors[0]["code"] == "duplicate-digest"
    assert "revision 1" in status.errors[0]["message"]


def test_a_file_that_is_not_a_snap_is_refused(pub: PubWorld) -> None:
    name = pub.register()
    junk = pub.backend.files / f"{name}-junk.snap"
    junk.write_bytes(b"PK\x03\x04 this is a zip, not a squashfs" * 10)
    upload_id = pub.upload("publisher", junk)
    with pub.unit() as p:
        status = p.revisions.push(pub.actor("publisher"), p.snaps.by_name(name), upload_id)
    assert status.code == "processing_error"
    assert status.errors[0]["code"] == "not-squashfs"


def test_uploads_are_bound_to_their_uploader(pub: PubWorld) -> None:
    name = pub.register()
    with pub.unit() as p:
        p.snaps.add_collaborator(
            pub.actor("publisher"), p.snaps.by_name(name), pub.people["publisher2"]
        )
    theirs = pub.upload("publisher2", pub.snap_file(name))
    with pytest.raises(UploadNotFound), pub.unit() as p:
        p.revisions.push(pub.actor("publisher"), p.snaps.by_name(name), theirs)
    with pytest.raises(UploadNotFound), pub.unit() as p:
        p.revisions.status(theirs, pub.people["publisher"])
    with pytest.raises(UploadNotFound), pub.unit() as p:
        p.revisions.push(pub.actor("publisher"), p.snaps.by_name(name), "no-such-upload")


def test_pushing_twice_answers_the_same_status(pub: PubWorld) -> None:
    name = pub.register()
    upload_id = pub.upload("publisher", pub.snap_file(name))
    with pub.unit() as p:
        first = p.revisions.push(pub.actor("publisher"), p.snaps.by_name(name), upload_id)
    with pub.unit() as p:
        again = p.revisions.push(pub.actor("publisher"), p.snaps.by_name(name), upload_id)
    assert first == again


def test_blob_keys_of_uploads_and_revisions_are_referenced(pub: PubWorld) -> None:
    name = pub.register()
    pending = pub.upload("publisher", pub.snap_file(name, "0.1"))
    pub.publish(name)
    with pub.unit() as p:
        keys = p.uploads.referenced_blob_keys()
        assert p.session.get(Upload, pending).blob_key in keys  # type: ignore[union-attr]
        assert p.revisions.get(p.snaps.by_name(name), 1).blob_key in keys


# -- review --------------------------------------------------------------------------


def test_manual_review_holds_revisions_until_accepted(reviewed: PubWorld) -> None:
    pub = reviewed
    name = pub.register()
    status = pub.publish(name, channels=["edge"])
    assert (status["code"], status["processed"], status["revision"]) == (
        "need_manual_review",
        True,
        1,
    )
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        assert [r.revision for _, r in p.revisions.review_queue(pub.store_id)] == [1]
        assert p.releases.channel_map(snap) == []
        with pytest.raises(NotReleasable, match="pending-review"):
            p.releases.release(pub.actor("publisher"), snap, 1, ["stable"])
    # a publisher is no reviewer
    with pytest.raises(SnapAccessDenied), pub.unit() as p:
        p.revisions.accept(pub.actor("publisher"), p.snaps.by_name(name), 1)
    with pub.unit() as p:
        p.revisions.accept(pub.actor("reviewer"), p.snaps.by_name(name), 1)
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        # the channels asked for at push time are released on acceptance
        assert [e.channel.name for e in p.releases.channel_map(snap)] == ["latest/edge"]
        assert p.revisions.review_queue(pub.store_id) == []
        rev = p.revisions.get(snap, 1)
        assert rev.reviewed_by == pub.people["reviewer"]
        b64 = base64.urlsafe_b64encode(bytes.fromhex(rev.sha3_384)).rstrip(b"=").decode()
        trust_database(p.session, pub.backend.root.trusted).find(
            "snap-revision", (b64, "global-upload")
        )


def test_rejected_revision_shows_the_reason_and_is_never_released(reviewed: PubWorld) -> None:
    pub = reviewed
    name = pub.register()
    upload_id = pub.upload("publisher", pub.snap_file(name))
    with pub.unit() as p:
        p.revisions.push(pub.actor("publisher"), p.snaps.by_name(name), upload_id)
    with pytest.raises(SnapRuleViolation), pub.unit() as p:
        p.revisions.reject(pub.actor("reviewer"), p.snaps.by_name(name), 1, "   ")
    with pub.unit() as p:
        p.revisions.reject(pub.actor("reviewer"), p.snaps.by_name(name), 1, "uses a bad plug")
    with pub.unit() as p:
        status = p.revisions.status(upload_id, pub.people["publisher"])
        assert status.code == "rejected" and status.processed
        assert status.errors == [{"code": "rejected", "message": "uses a bad plug"}]
        snap = p.snaps.by_name(name)
        assert p.revisions.get(snap, 1).review_reason == "uses a bad plug"
        with pytest.raises(NotReleasable, match="uses a bad plug"):
            p.releases.release(pub.actor("publisher"), snap, 1, ["stable"])
        with pytest.raises(NotReleasable):
            p.revisions.accept(pub.actor("reviewer"), snap, 1)


def test_every_change_is_audited(reviewed: PubWorld) -> None:
    pub = reviewed
    name = pub.register()
    pub.publish(name)
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        p.snaps.add_collaborator(pub.actor("publisher"), snap, pub.people["publisher2"])
        p.revisions.accept(pub.actor("reviewer"), snap, 1)
        p.snaps.create_track(pub.actor("publisher"), snap, "2.0")
        p.releases.release(pub.actor("publisher"), snap, 1, ["2.0/stable", "edge"])
        p.releases.close(pub.actor("publisher"), snap, ["edge"])
    with pub.unit() as p:
        actions = list(
            p.session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.store_id == pub.store_id, AuditEntry.action.like("snap.%"))
                .order_by(AuditEntry.id)
            )
        )
    assert actions == [
        "snap.register",
        "snap.push",
        "snap.collaborator.add",
        "snap.review.accept",
        "snap.track.create",
        "snap.release",
        "snap.close",
    ]


# -- orphaned blobs ---------------------------------------------------------------------

_LONG_AGO = timedelta(days=2)


def _age(pub: PubWorld, key: str) -> None:
    # the file store dates a blob by its mtime: make it older than the sweep's grace
    then = (datetime.now(UTC) - _LONG_AGO).timestamp()
    os.utime(pub.backend.blobs.path(key), (then, then))  # type: ignore[attr-defined]


def test_sweep_deletes_refused_and_unclaimed_blobs_never_a_revisions(pub: PubWorld) -> None:
    name = pub.register()
    path = pub.snap_file(name)
    first = pub.upload("publisher", path)
    # the same file again: refused as a duplicate digest; and a file of another name
    dup_id = pub.upload("publisher", path)
    refused_id = pub.upload("publisher", pub.snap_file("not-this-name"))
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        released = p.revisions.push(pub.actor("publisher"), snap, first, channels=["stable"])
        assert released.revision == 1
    with pub.unit() as p:
        snap = p.snaps.by_name(name)
        for upload_id in (refused_id, dup_id):
            status = p.revisions.push(pub.actor("publisher"), snap, upload_id)
            assert status.code == "processing_error"
        keys = {u: p.uploads.get(u, None).blob_key for u in (refused_id, dup_id)}
        rev = p.revisions.get(snap, 1)
        rev_key, rev_upload_id = rev.blob_key, rev.upload_id
        assert p.releases.channel_map(snap)
    loose = pub.backend.files / f"{name}-loose.snap"
    loose.write_bytes(b"an upload nobody pushed")
    unclaimed = pub.backend.blobs.put_file(loose)
    loose.write_bytes(b"an upload that may still be pushed")
    young = pub.backend.blobs.put_file(loose)
    old = datetime.now(UTC) - _LONG_AGO
    with pub.unit() as p:
        p.session.execute(
            update(Upload)
            .where(Upload.id.in_([refused_id, dup_id, rev_upload_id]))
            .values(created_at=old, pushed_at=old)
        )
    for key in {*keys.values(), rev_key, unclaimed.key}:
        _age(pub, key)

    result = sweep_orphan_blobs(pub.backend.database, pub.backend.blobs)

    assert result.released >= 2
    assert not pub.backend.blobs.exists(keys[refused_id])
    assert not pub.backend.blobs.exists(unclaimed.key)
    # the duplicate's own copy goes; a key it shared with the revision would stay
    assert pub.backend.blobs.exists(keys[dup_id]) is (keys[dup_id] == rev_key)
    assert pub.backend.blobs.exists(young.key)
    # the released revision keeps its file, however old, whatever upload shared its digest
    assert pub.backend.blobs.exists(rev_key)
    with pub.unit() as p:
        assert p.resolver.revision(p.snaps.by_name(name).snap_id, 1).blob_key == rev_key
        # the refused upload still tells the publisher why
        status = p.revisions.status(refused_id, pub.people["publisher"])
        assert status.errors[0]["code"] == "name-mismatch"
    # a second sweep finds nothing more to do
    again = sweep_orphan_blobs(pub.backend.database, pub.backend.blobs)
    assert (again.released, again.deleted) == (0, 0)


def test_sweep_grace_outlasts_the_claim_window(pub: PubWorld) -> None:
    assert SWEEP_AGE > MIN_SWEEP_AGE > CLAIM_WINDOW
    with pytest.raises(ValueError):
        sweep_orphan_blobs(pub.backend.database, pub.backend.blobs, older_than=CLAIM_WINDOW)
