"""Build real snap files for tests and benchmarks, the way snapcraft packs them.

:func:`build_snap` writes ``meta/snap.yaml`` (plus any extra files) into a
scratch tree and packs it with Debian's ``mksquashfs`` using snapcraft's flags,
so the result is byte-for-byte the kind of file a publisher uploads.
:func:`mksquashfs` packs a tree you laid out yourself (symlinks, odd names...).

Test-only: needs ``mksquashfs`` (Debian package ``squashfs-tools``) on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

__all__ = ["COMPRESSIONS", "build_snap", "mksquashfs", "snap_yaml"]

#: Compressions mksquashfs can write and the inspector reads.
COMPRESSIONS = ("xz", "lzo", "zstd", "gzip")

# Characters kept in output file names; anything else (a test may pass an
# invalid version such as "1/2") becomes "_" so the path stays inside ``directory``.
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9.+~-]")

# Random padding is written in chunks so a benchmark's 1 GB snap never sits in memory.
_PAD_CHUNK = 1 << 20


def mksquashfs(
    source: Path,
    output: Path,
    *,
    compression: str = "xz",
    fragments: bool = False,
    extra_args: Sequence[str] = (),
) -> Path:
    """Pack the tree ``source`` into the squashfs file ``output`` with snapcraft's flags.

    ``fragments=True`` drops ``-no-fragments`` (mksquashfs's default packing, which
    older snaps used); ``extra_args`` go to mksquashfs as they are (``-noI`` keeps
    metadata uncompressed, so tests can patch it). Returns ``output``. Raises
    ``subprocess.CalledProcessError`` if mksquashfs fails.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
    mksquashfs_bin = shutil.which("mksquashfs")
    if mksquashfs_bin is None:
        raise FileNotFoundError("mksquashfs not found: install the squashfs-tools package")
    subprocess.run(  # noqa: S603 - fixed program, arguments are paths we chose
        [
            mksquashfs_bin,
            str(source),
            str(output),
            "-noappend",
            "-comp",
            compression,
            *([] if fragments else ["-no-fragments"]),
            "-no-progress",
            "-all-root",
            "-no-xattrs",
            *extra_args,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return output


def snap_yaml(
    name: str,
    version: str = "1.0",
    *,
    snap_type: str = "app",
    base: str | None = "core22",
    architectures: Sequence[str] = ("amd64",),
    confinement: str = "strict",
    grade: str = "stable",
    extra_yaml: Mapping[str, object] | None = None,
) -> str:
    """Return the text of a ``meta/snap.yaml`` with these fields (``extra_yaml`` keys win)."""
    document: dict[str, object] = {
        "name": name,
        "version": version,
        "summary": f"{name} test snap",
        "description": f"The {name} snap, built for tests.",
        "type": snap_type,
    }
    if base is not None:
        document["base"] = base
    document["architectures"] = list(architectures)
    document["confinement"] = confinement
    document["grade"] = grade
    if extra_yaml:
        document.update(extra_yaml)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def build_snap(
    directory: Path,
    name: str,
    version: str = "1.0",
    *,
    snap_type: str = "app",
    base: str | None = "core22",
    architectures: Sequence[str] = ("amd64",),
    confinement: str = "strict",
    grade: str = "stable",
    compression: str = "xz",
    extra_yaml: Mapping[str, object] | None = None,
    files: Mapping[str, bytes] | None = None,
    padding: int = 0,
) -> Path:
    """Build a snap file in ``directory`` and return its path (never overwrites a file).

    The snap holds ``meta/snap.yaml`` made by :func:`snap_yaml` from the arguments,
    then ``files`` (relative path -> content; a ``"meta/snap.yaml"`` entry replaces
    the generated one, so tests can ship any text), then, if ``padding`` > 0, a file
    ``padding.bin`` of that many random bytes (incompressible, so the snap grows
    by about that much). The file is named ``NAME_VERSION.snap`` (with ``-2``,
    ``-3``... appended when that name is taken).
    """
    directory.mkdir(parents=True, exist_ok=True)
    stem = _UNSAFE_FILENAME.sub("_", f"{name}_{version}") or "snap"
    output = directory / f"{stem}.snap"
    counter = 2
    while output.exists():
        output = directory / f"{stem}-{counter}.snap"
        counter += 1
    # Claim the name now so parallel builders in the same directory never collide.
    output.touch(exist_ok=False)
    try:
        _pack(
            output,
            snap_yaml(
                name,
                version,
                snap_type=snap_type,
                base=base,
                architectures=architectures,
                confinement=confinement,
                grade=grade,
                extra_yaml=extra_yaml,
            ),
            files or {},
            padding,
            compression,
        )
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    return output


def _pack(
    output: Path, text: str, files: Mapping[str, bytes], padding: int, compression: str
) -> None:
    with tempfile.TemporaryDirectory(prefix="snap-tree-", dir=output.parent) as scratch:
        tree = Path(scratch)
        meta = tree / "meta"
        meta.mkdir()
        (meta / "snap.yaml").write_text(text, encoding="utf-8")
        for relative, content in files.items():
            target = tree / relative
            if not target.resolve().is_relative_to(tree.resolve()):
                raise ValueError(f"file path {relative!r} leaves the snap tree")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        if padding > 0:
            with (tree / "padding.bin").open("wb") as out:
                remaining = padding
                while remaining:
                    chunk = min(remaining, _PAD_CHUNK)
                    out.write(os.urandom(chunk))
                    remaining -= chunk
        mksquashfs(tree, output, compression=compression)
