#!/usr/bin/env python3
"""Build the stand-in images offline, cached by content.

No image can be pulled on the machines this runs on, so the base image is made from scratch:
``debootstrap --variant=minbase --include=python3 bookworm`` into a temporary directory, trimmed,
tarred into ``${XDG_CACHE_HOME:-~/.cache}/sbx/`` and ``docker import``-ed as
``sbx-standin-base:<key>``, where the key hashes the debootstrap parameters and RECIPE_VERSION.
Each stand-in folder beside this file (vllm, qdrant, webui, proxy, agent) is then built ``FROM``
that base as ``sbx-standin-<name>:<hash of its files and the base tag>`` and also tagged ``:dev``
(the tag the compose file uses).

Every step is skipped when its result already exists: a second run costs a few ``docker image
inspect`` calls. A lost image is re-imported from the cached rootfs tarball in seconds. A file lock
keeps two processes from building at once.

Usage: ``python examples/stack/images/build.py [--force]`` prints ``name=tag`` lines.
Stdlib only on purpose: it runs before any virtual environment exists and drives the docker CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
STANDINS = ("vllm", "qdrant", "webui", "proxy", "agent")
# Bump when the way the base or a stand-in is made changes (trimming, import options, labels).
RECIPE_VERSION = "1"
SUITE = "bookworm"
VARIANT = "minbase"
INCLUDE = ("python3",)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What the base keeps out of its rootfs: package caches and docs, never needed at run time.
TRIM = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV PYTHONDONTWRITEBYTECODE=1",
    'CMD ["python3"]',
)
LABEL = "sbx.standin"


class BuildError(RuntimeError):
    """A stand-in image could not be built; the message names the next step."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sbx"


def _log(msg: str) -> None:
    print(f"[build.py] {msg}", file=sys.stderr, flush=True)


def _docker_env() -> dict[str, str]:
    env = dict(os.environ)
    if "DOCKER_BUILDKIT" not in env and not _has_buildx():
        # The classic builder resolves FROM against local images, which is all we have.
        env["DOCKER_BUILDKIT"] = "0"
    return env


@functools.cache
def _has_buildx() -> bool:
    proc = subprocess.run(
        ["docker", "buildx", "version"], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0


def _docker(*args: str, check: bool = True, stdin: IO[bytes] | None = None) -> str:
    proc = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        check=False,
        env=_docker_env(),
        stdin=stdin,
    )
    if check and proc.returncode != 0:
        raise BuildError(
            f"'docker {' '.join(args)}' failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return proc.stdout.strip()


def _check_docker() -> None:
    if shutil.which("docker") is None:
        raise BuildError(
            "The docker CLI is not installed. Install it with 'apt-get install -y docker.io'."
        )
    proc = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise BuildError(
            f"The Docker Engine at {host} is not reachable ({proc.stderr.strip()[-300:]}). "
            "Start it (as root: 'dockerd > /tmp/dockerd.log 2>&1 &') and run this again."
        )


def _image_exists(tag: str) -> bool:
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode == 0


def _image_id(tag: str) -> str:
    return _docker("image", "inspect", "--format", "{{.Id}}", tag)


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / "build.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _arch() -> str:
    if shutil.which("dpkg"):
        return subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
    return os.uname().machine


def base_key() -> str:
    """Hash of everything that decides the base rootfs (the mirror only decides where from)."""
    params = {
        "recipe": RECIPE_VERSION,
        "suite": SUITE,
        "variant": VARIANT,
        "include": list(INCLUDE),
        "arch": _arch(),
        "trim": list(TRIM),
        "changes": list(IMPORT_CHANGES),
    }
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _debootstrap(tarball: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise BuildError(
            "debootstrap is not installed; the stand-in base image is made with it. "
            "Install it with 'apt-get install -y debootstrap'."
        )
    if os.geteuid() != 0:
        raise BuildError("debootstrap needs root to make the base rootfs; run this as root.")
    mirror = os.environ.get("SBX_DEBOOTSTRAP_MIRROR", DEFAULT_MIRROR)
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sbx-rootfs-", dir=tarball.parent) as tmp:
        root = Path(tmp) / "rootfs"
        cmd = [
            "debootstrap",
            f"--variant={VARIANT}",
            f"--include={','.join(INCLUDE)}",
            SUITE,
            str(root),
            mirror,
        ]
        _log(f"running {' '.join(cmd)} (about a minute)")
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BuildError(
                f"debootstrap failed (exit {proc.returncode}); is {mirror} reachable? "
                f"Set SBX_DEBOOTSTRAP_MIRROR to use another mirror.\n{proc.stdout[-3000:]}"
                f"{proc.stderr[-2000:]}"
            )
        for rel in TRIM:
            target = root / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir(parents=True)
        partial = tarball.with_suffix(".partial")
        # numeric owners: the rootfs must not depend on this host's user names
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], check=True
        )
        partial.replace(tarball)
        _log(f"rootfs {tarball} made in {time.monotonic() - started:.0f} s")


def build_base(*, force: bool = False) -> str:
    """Return the base image tag, importing it (from the cached tarball, else debootstrap)."""
    key = base_key()
    tag = f"sbx-standin-base:{key}"
    if not force and _image_exists(tag):
        return tag
    tarball = cache_dir() / f"standin-base-{key}.tar"
    if not tarball.is_file():
        _debootstrap(tarball)
    started = time.monotonic()
    changes = [arg for change in IMPORT_CHANGES for arg in ("--change", change)]
    with tarball.open("rb") as fh:
        _docker(
            "import",
            *changes,
            "--message",
            f"sbx stand-in base, recipe {RECIPE_VERSION}",
            "-",
            tag,
            stdin=fh,
        )
    _log(f"imported {tag} in {time.monotonic() - started:.1f} s")
    return tag


def folder_hash(folder: Path) -> str:
    """Hash of the folder's files (paths, modes, bytes); caches and editor debris left out."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if "__pycache__" in rel.parts or path.suffix in {".pyc", ".swp"}:
            continue
        digest.update(f"{rel.as_posix()}\0{path.stat().st_mode & 0o111:o}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def standin_tag(name: str, base: str | None = None, *, root: Path = HERE) -> str:
    """The content-hashed tag of a stand-in as these sources build it (nothing is built).

    A test stack names these rather than ``:dev``, which the last build on the daemon moves:
    checkouts with different stand-in sources share one dockerd."""
    base = base or f"sbx-standin-base:{base_key()}"
    digest = hashlib.sha256(
        f"{RECIPE_VERSION}\0{base}\0{folder_hash(root / name)}".encode()
    ).hexdigest()[:16]
    return f"sbx-standin-{name}:{digest}"


def build_standin(name: str, base: str, *, root: Path = HERE, force: bool = False) -> str:
    folder = root / name
    if not (folder / "Dockerfile").is_file():
        raise BuildError(f"{folder}/Dockerfile is missing; the stand-in '{name}' cannot be built.")
    tag = standin_tag(name, base, root=root)
    dev = f"sbx-standin-{name}:dev"
    if force or not _image_exists(tag):
        started = time.monotonic()
        args = ["build", "--build-arg", f"BASE={base}", "--label", f"{LABEL}={name}"]
        if force:
            args.append("--no-cache")
        _docker(*args, "-t", tag, str(folder))
        _log(f"built {tag} in {time.monotonic() - started:.1f} s")
    if not _image_exists(dev) or _image_id(dev) != _image_id(tag):
        _docker("tag", tag, dev)
    _prune_stale(f"sbx-standin-{name}", keep={tag, dev})
    return tag


def _prune_stale(repo: str, keep: set[str]) -> None:
    """Untag older content-hashed builds of ``repo``; an image a container still uses stays.

    ``SBX_STANDIN_KEEP_STALE=1`` keeps them: several checkouts testing different stand-in
    sources on one dockerd would otherwise untag each other's images mid-run.
    """
    if os.environ.get("SBX_STANDIN_KEEP_STALE") == "1":
        return
    listed = _docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo, check=False)
    for ref in listed.splitlines():
        if ref not in keep and not ref.endswith(":<none>"):
            _docker("image", "rm", ref, check=False)


def build_images(*, force: bool = False, root: Path | None = None) -> dict[str, str]:
    """Build (or find) the base and every stand-in; return {"base": tag, "vllm": tag, ...}.

    ``force`` re-imports the base (from the cached rootfs tarball; delete it under
    ``~/.cache/sbx/`` to re-run debootstrap) and rebuilds the stand-ins without the build cache.
    ``root`` is the folder holding the stand-in folders (this file's folder by default).
    """
    _check_docker()
    with _lock():
        base = build_base(force=force)
        tags = {"base": base}
        for name in STANDINS:
            tags[name] = build_standin(name, base, root=root or HERE, force=force)
        _prune_stale("sbx-standin-base", keep={base})
        return tags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    try:
        tags = build_images(force=args.force)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, tag in tags.items():
        print(f"{name}={tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
