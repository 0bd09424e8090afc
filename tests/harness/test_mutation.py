"""Mutation during capture (#18): files grow, shrink, are replaced or removed and directories
are renamed or removed while the walk reads the tree. The snapshot must either be consistent
(every path restores as it was before the backup or as it is after it) or its warnings must
name the paths that are not.

The mutation is made from inside the walk (``walk_tree`` wrapped: after node k is recorded and
before the walk goes on) or, for a file grown or truncated while read, between the open and the
read (``PartWriter._store`` wrapped), so a drawn example replays exactly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from harness.budget import bounded
from harness.compare import Difference, explained
from harness.conftest import Examples, fresh, remove
from harness.kinds import on
from harness.roundtrip import PREFIX, back_up, open_repository
from harness.trees import CHUNK, SMALL
from sbx.repository import parts as parts_module
from sbx.repository.parts import PartWriter
from sbx.repository.walk import Node, walk_tree

MUTATIONS = [
    *(["grow", "truncate", "replace", "remove", "add_file"] if on("mutate_files") else []),
    *(["rename_dir", "remove_dir"] if on("mutate_dirs") else []),
]


@dataclass
class Plan:
    dirs: list[str]  # relative, parents first
    files: dict[str, int]  # relative path -> size
    mutation: str
    victim: int  # index into the files or dirs the mutation applies to
    at_node: int  # the mutation is made after the walk records this node (0 = the root)
    while_read: bool = False  # grow/truncate: made once the file is open, before it is read


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    dirs: list[str] = []
    for index in range(draw(st.integers(1, 3))):
        parent = draw(st.sampled_from(["", *dirs]))
        dirs.append(f"{parent}/d{index}" if parent else f"d{index}")
    files = {}
    for index in range(draw(st.integers(2, 6))):
        parent = draw(st.sampled_from(["", *dirs]))
        size = draw(st.sampled_from([1, 100, SMALL + 3, 2 * CHUNK + 5]))
        files[f"{parent}/f{index}" if parent else f"f{index}"] = size
    nodes = 1 + len(dirs) + len(files)
    mutation = draw(st.sampled_from(MUTATIONS))
    return Plan(
        dirs=dirs,
        files=files,
        mutation=mutation,
        victim=draw(st.integers(0, 20)),
        at_node=draw(st.integers(0, nodes - 1)),
        while_read=mutation in ("grow", "truncate") and draw(st.booleans()),
    )


State = tuple[Any, ...] | None


def states(root: Path) -> dict[str, State]:
    """Per relative path: a file's content hash, a directory's sorted children."""
    found: dict[str, State] = {}
    for here, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(here, root)
        rel = "" if rel == "." else rel
        found[rel] = ("dir", tuple(sorted(dirnames + filenames)))
        for name in filenames:
            path = Path(here) / name
            found[f"{rel}/{name}" if rel else name] = (
                "file",
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return found


def mutate(plan: Plan, tree: Path) -> None:
    files = sorted(plan.files)
    dirs = plan.dirs
    if plan.mutation in ("rename_dir", "remove_dir"):
        victim = tree / dirs[plan.victim % len(dirs)]
        if plan.mutation == "rename_dir":
            victim.rename(victim.with_name(victim.name + "-moved"))
        else:
            shutil.rmtree(victim)
        return
    path = tree / files[plan.victim % len(files)]
    if not path.exists():  # its directory went first
        return
    if plan.mutation == "grow":
        with path.open("ab") as out:
            out.write(b"grown" * 1000)
    elif plan.mutation == "truncate":
        os.truncate(path, path.stat().st_size // 2)
    elif plan.mutation == "replace":
        new = path.with_name(path.name + ".new")
        new.write_bytes(b"replacement " * 50)
        new.replace(path)
    elif plan.mutation == "remove":
        path.unlink()
    else:
        path.with_name(path.name + "-added").write_bytes(b"added")


@bounded(60)
@given(plan=plans())
def test_mutation_during_capture_is_consistent_or_warned(
    plan: Plan, scratch: Path, examples: Examples
) -> None:
    examples.tick()
    work = fresh(scratch)
    try:
        tree = work / "tree"
        tree.mkdir()
        for rel in plan.dirs:
            (tree / rel).mkdir()
        for rel, size in plan.files.items():
            (tree / rel).write_bytes(os.urandom(size))
        before = states(tree)
        real_walk = walk_tree

        def walk(*args: Any, **kwargs: Any) -> Iterator[Node]:
            for index, node in enumerate(real_walk(*args, **kwargs)):
                yield node
                if index == plan.at_node and not plan.while_read:
                    mutate(plan, tree)

        real_store = PartWriter._store
        victim = f"{PREFIX}/{sorted(plan.files)[plan.victim % len(plan.files)]}"

        def store(writer: PartWriter, path: str, *args: Any, **kwargs: Any) -> Any:
            if plan.while_read and path == victim:  # open and fstat'ed, not yet read
                mutate(plan, tree)
            return real_store(writer, path, *args, **kwargs)

        repo = open_repository(work / "repo")
        patched: Callable[..., Iterator[Node]] = walk
        with (
            mock.patch.object(parts_module, "walk_tree", patched),
            mock.patch.object(PartWriter, "_store", store),
        ):
            manifest, warnings = back_up(repo, tree)
        after = states(tree)
        assert repo.verify(manifest.id).ok
        repo.restore(manifest.id, work / "target")
        restored = states(work / "target" / PREFIX)
        wrong = []
        for path in sorted(before.keys() | after.keys() | restored.keys()):
            got = restored.get(path)
            if got in (before.get(path), after.get(path)):
                continue
            difference = Difference(
                os.fsencode(path), "state", (before.get(path), after.get(path)), got
            )
            if not explained(difference, warnings, PREFIX) and not _listing_explained(
                path, (before.get(path), after.get(path)), got, warnings
            ):
                wrong.append(difference)
        assert not wrong, (
            f"{plan.mutation} during the walk: restored neither as before nor as after, and no "
            "warning says so:\n"
            + "\n".join(f"  {one}" for one in wrong)
            + f"\nwarnings: {warnings!r}"
        )
    finally:
        remove(work)


def _listing_explained(
    path: str, references: tuple[Any, Any], got: Any, warnings: list[str]
) -> bool:
    """A directory restored with other entries than it had before (or after): explained when a
    warning names each entry that differs (a file vanished while the walk read its directory)."""
    if not got or got[0] != "dir":
        return False
    for ref in references:
        if not ref or ref[0] != "dir":
            continue
        differ = set(ref[1]) ^ set(got[1])
        if all(
            explained(
                Difference(os.fsencode(f"{path}/{name}" if path else name), "state", None, None),
                warnings,
                PREFIX,
            )
            for name in differ
        ):
            return True
    return False
