"""snapd's own snap.yaml code as the judge of parse_snap_yaml (``conformance/snapyaml``).

Every document we accept must be one snapd 2.57.6 accepts (snap.InfoFromSnapYaml +
snap.Validate: what it runs before installing a snap file), read the same way:
name, version, type, base, confinement, epoch and provenance. Where we refuse what
snapd accepts, it must be one of the store's own stricter rules (grade, known
architectures, summary length, YAML hygiene); nothing else may differ.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotstore.snaps.inspection import SNAP_TYPES, InspectionError, SnapMetadata, parse_snap_yaml
from tests.conformance.snapd import build_conformance_program

pytestmark = pytest.mark.snapd

# Our rules that snapd does not have: the store refuses more than a device would.
STORE_ONLY = {"invalid-grade", "invalid-architectures", "invalid-summary", "invalid-yaml"}

OMIT = object()
POOLS: dict[str, list[Any]] = {
    "name": ["ab", "hello-iot", "a1", "a", "A", "-ab", "ab-", "a--b", "1234", "x" * 40, "x" * 41,
             "under_score", "", "yes", "123a", "null", OMIT],
    "version": ["1.0", "1.10", "1", "", "1 0", "v1.0-beta+git~1", ".1", "1.", "a" * 32, "a" * 33,
                "ünï", "1_0", "~1", "1~", "null", "0x10", "1e5", "1:2", OMIT],
    "type": [OMIT, "app", "application", "base", "gadget", "kernel", "os", "snapd", "core", "App",
             ""],
    "base": [OMIT, "core22", "core_22", "Core", "none", "bare", "c", ""],
    "confinement": [OMIT, "strict", "devmode", "classic", "none", ""],
    "grade": [OMIT, "stable", "devel", "beta"],
    "epoch": [OMIT, "0", "1", "1*", "0*", "01", "-1", "4294967295", "4294967296", "x", "", 5,
              {"read": [1, 2]}, {"read": [2, 1]}, {"read": [1], "write": [2]}, {"read": []},
              {"write": [3]}, {"read": [0], "write": [0]}, {"read": list(range(1, 12))}, ["1"]],
    "title": [OMIT, "t", "t" * 40, "t" * 41, "é" * 40],
    "description": [OMIT, "d", "d" * 4096, "d" * 4097],
    "provenance": [OMIT, "my-store", "global-upload", "bad prov", "-x", "a-b-c"],
    "license": [OMIT, "MIT", "Apache-2.0", "GPL-3.0-or-later OR MIT", "not a license", "MIT AND",
                "(MIT", "MIT)", "()", "( MIT )", "(MIT) AND (BSD-3-Clause)", "(MIT) BSD-3-Clause",
                "GPL-2.0 WITH Classpath-exception-2.0", "MIT WITH GPL-2.0", "GPL-2.0+", "", "  ",
                "MIT\tOR BSD-2-Clause", "WITH MIT", "MIT OR OR BSD-2-Clause", "MIT WITH (x)"],
    "apps": [OMIT, {"a": {"command": "bin/a"}}, {"bad_name": {"command": "x"}},
             {"App-1": {"command": "x"}}],
    "plugs": [OMIT, {"home": None}, {"Bad": None}, {"net": {"interface": "network"}}],
    "slots": [OMIT, {"s": None}, {"9s": None}, {"home": None}],
}  # fmt: skip


def documents() -> Iterator[str]:
    """Each pool value once on a good base document, then seeded random mixtures."""
    good = {"name": "good-snap", "version": "1.0"}
    for key, values in POOLS.items():
        for value in values:
            doc = dict(good)
            if value is OMIT:
                doc.pop(key, None)
            else:
                doc[key] = value
            yield yaml.safe_dump(doc)
    rng = random.Random(20261127)
    for _ in range(600):
        doc = {}
        for key, values in POOLS.items():
            value = rng.choice(values)
            if value is not OMIT:
                doc[key] = value
        yield yaml.safe_dump(doc)
    # YAML written by hand: plain scalars snapd reads as text
    yield "name: ab\nversion: 1.10\n"
    yield "name: ab\nversion: 2\nepoch: 3\n"
    yield "name: ab\nversion: ~\n"
    yield "name: ab\nversion: '1'\ntype: application\n"


@pytest.fixture(scope="module")
def snapyaml() -> Path:
    return build_conformance_program("snapyaml")


def judge(binary: Path, texts: list[str]) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(binary)],
        input=json.dumps(texts).encode(),
        capture_output=True,
        check=True,
        timeout=300,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(texts)
    return lines


def ours(text: str) -> SnapMetadata | InspectionError:
    try:
        return parse_snap_yaml(text.encode())
    except InspectionError as e:
        return e


def disagreements(texts: list[str], verdicts: list[dict[str, Any]]) -> tuple[list[str], int]:
    """What parse_snap_yaml and snapd disagree on, and how many the store alone refused."""
    problems = []
    refused_by_store_only = 0
    for text, snapd in zip(texts, verdicts, strict=True):
        mine = ours(text)
        if isinstance(mine, InspectionError):
            if snapd["ok"]:
                refused_by_store_only += 1
                # text PostgreSQL cannot store is the store's own refusal too, whatever the field
                if mine.code not in STORE_ONLY and "NUL or an unpaired" not in mine.message:
                    problems.append(
                        f"we refuse ({mine.code}: {mine.message}), snapd accepts:\n{text}"
                    )
            continue
        if not snapd["ok"]:
            problems.append(f"we accept, snapd refuses ({snapd['error']}):\n{text}")
            continue
        read = {
            "name": mine.name,
            "version": mine.version,
            "type": mine.snap_type,
            "base": mine.base or "",
            "confinement": mine.confinement,
            "epoch": str(mine.epoch),
            "provenance": mine.provenance or "",
        }
        theirs = {key: snapd.get(key, "") for key in read}
        if read != theirs:
            problems.append(f"read differently: ours {read}, snapd {theirs}:\n{text}")
    return problems, refused_by_store_only


def test_we_accept_only_what_snapd_accepts_and_read_it_the_same(snapyaml: Path) -> None:
    texts = list(dict.fromkeys(documents()))
    verdicts = judge(snapyaml, texts)
    problems, refused_by_store_only = disagreements(texts, verdicts)
    assert not problems, "\n\n".join(itertools.islice(problems, 10))
    # the corpus exercises both sides
    assert sum(v["ok"] for v in verdicts) > 50
    assert sum(not v["ok"] for v in verdicts) > 50
    assert refused_by_store_only > 0


ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=45)
some_text = ascii_text | st.text(max_size=45)
numbers = st.integers(0, 12).map(str) | st.sampled_from(["01", "-1", "4294967296", "2*", "0*"])
field_values: dict[str, st.SearchStrategy[Any]] = {
    "name": st.from_regex(r"[a-z0-9-]{0,42}", fullmatch=True) | ascii_text,
    "version": st.from_regex(r"[a-zA-Z0-9:.+~_ -]{0,34}", fullmatch=True) | some_text,
    "type": st.sampled_from(sorted(SNAP_TYPES)) | ascii_text,
    "base": st.from_regex(r"[a-z0-9_-]{0,12}", fullmatch=True),
    "confinement": st.sampled_from(["strict", "devmode", "classic"]) | ascii_text,
    "epoch": numbers
    | st.dictionaries(
        st.sampled_from(["read", "write"]), st.lists(st.integers(0, 12), max_size=4), max_size=2
    ),
    "title": some_text,
    "provenance": st.from_regex(r"[a-zA-Z0-9-]{0,12}", fullmatch=True),
    "apps": st.dictionaries(ascii_text, st.just({"command": "x"}), max_size=2),
    "plugs": st.dictionaries(ascii_text, st.none(), max_size=2),
}
generated_documents = st.fixed_dictionaries(
    {
        "name": st.just("good-snap") | field_values["name"],
        "version": st.just("1.0") | field_values["version"],
    },
    optional={k: v for k, v in field_values.items() if k not in {"name", "version"}},
).map(lambda doc: yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(generated_documents, min_size=150, max_size=150))
def test_generated_documents_agree_with_snapd(snapyaml: Path, texts: list[str]) -> None:
    verdicts = judge(snapyaml, texts)
    problems, _ = disagreements(texts, verdicts)
    assert not problems, "\n\n".join(itertools.islice(problems, 10))
