"""Named volumes as a part: captured and restored through Docker (tasks/clients/docker_volumes.py).

Capture: the volume's tar is streamed to a scratch directory under ``<stack>/.sbx/`` (the
stack's disk, not a small /tmp), unpacked there with owners, modes and times kept, and the tree
stored as ``volumes/<name>/`` like any other. The services that mount the volume read-write
are stopped for the read (a cold copy, as ``stop-copy``) and always started again.

Restore in place: the staged ``volumes/<name>/`` is packed into a tar, the services that mount
the volume are stopped, the volume's current content is kept as
``.sbx/restores/<time>/volumes/<name>.tar``, the volume emptied and the tar unpacked into it.
"""

from __future__ import annotations

import tarfile
import tempfile
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

from blocks.config import PartConfig
from sbx.errors import DockerOperationFailed
from sbx.repository import PartWriter
from tasks.backup.context import CaptureContext, stop_writers
from tasks.clients.docker_volumes import MOUNT_POINT
from tasks.clients.docker_volumes import connect as connect_volumes

TOP = MOUNT_POINT.strip("/")


def scratch_dir(stack_dir: Path) -> Path:
    where = stack_dir / ".sbx" / "tmp"
    where.mkdir(parents=True, exist_ok=True)
    return where


def capture_volumes(
    out: PartWriter, paths: list[str], part: PartConfig, ctx: CaptureContext
) -> None:
    """Each named volume of the part's sources, read through a helper container."""
    volumes = [s for s in ctx.sources.get(out.name, []) if s.kind == "volume"]
    captured = []
    with connect_volumes() as docker_volumes, ExitStack() as running_again:
        missing = [s for s in volumes if not docker_volumes.exists(s.location)]
        required = [s.location for s in missing if s.required and not part.optional]
        if required:
            out.fail(
                f"named volume {', '.join(required)} (named by the compose file) does not exist. "
                "Start the stack once ('docker compose up -d') so compose creates it, remove it "
                f"from the compose file, or mark the part optional ([parts.{out.name}] "
                "optional = true)."
            )
            return
        gone = {s.location for s in missing}
        for line in out.detail.get("sources", []):
            if line["from"] in gone:
                line["status"] = "missing"
        writers = {svc for s in volumes if s not in missing for svc in s.writers}
        stop_writers(running_again, ctx, writers, out.name)
        for src in volumes:
            if src in missing:
                continue
            if src.image is None:
                out.fail(f"volume {src.location}: its service names no image to read it with")
                return
            with tempfile.TemporaryDirectory(dir=scratch_dir(ctx.stack_dir)) as tmp:
                tar = Path(tmp) / "volume.tar"
                docker_volumes.read_to_tar(src.location, src.image, tar)
                unpack(tar, Path(tmp) / "tree")
                out.add_tree(
                    Path(tmp) / "tree" / TOP,
                    src.stored_as,
                    include=part.include,
                    exclude=part.exclude,
                )
            captured.append(src.location)
    out.detail.update(mode="docker-volume", volumes=captured)


def unpack(tar: Path, dest: Path) -> None:
    """Unpack a tar Docker made of one mount point, owners, modes and times kept.

    Docker walks a real tree, so no entry lies below a symlink; one that would (or one with
    ``..`` or an absolute name) means the archive is not what it claims, and is refused.
    """
    dest.mkdir()
    links: set[PurePosixPath] = set()
    with tarfile.open(tar) as archive:
        members = archive.getmembers()
        for member in members:
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts:
                raise DockerOperationFailed(f"Docker's archive holds the unsafe name {name}.")
            if any(parent in links for parent in name.parents):
                raise DockerOperationFailed(f"Docker's archive holds {name} below a link.")
            if member.issym() or member.islnk():
                links.add(name)
        # names checked above; links are data and kept verbatim, as everywhere in sbx
        archive.extractall(  # noqa: S202
            dest, members=members, numeric_owner=True, filter="fully_trusted"
        )


def pack(tree: Path, tar: Path) -> None:
    """A tar of ``tree``'s content, paths relative to it, owners and modes kept."""
    with tarfile.open(tar, "w") as archive:
        archive.add(tree, arcname=".", recursive=True)
