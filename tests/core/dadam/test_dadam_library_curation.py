"""Curation: each call recorded in the history, undo / redo, gallery queries, two processes, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from fpsm_core.dadam.library import PatchLibrary

ROOT = Path(__file__).resolve().parents[3]
LABELS = ("Nodule", "Mass", "Pneumothorax")


def _library(root: Path, n: int = 6, spacing: bool = True) -> PatchLibrary:
    """n patches, label cycling Nodule/Mass/Pneumothorax, lesion side 4 + 2i px (i < 20), two
    data sets; every crop distinct (side and grey level)."""
    lib = PatchLibrary(root, user="tester")
    for i in range(n):
        side = 4 + 2 * (i % 20)
        pix = np.full((side + 6, side + 6), i % 251, np.uint8)
        lib.add_patch(
            pix, (3, 3, 3 + side, 3 + side), LABELS[i % 3], dataset="vindr" if i % 2 else "nih",
            image_id=f"img{i}", source_box=(10, 10, 10 + side, 10 + side), image_size=(100, 100),
            rel_center=(0.2, 0.2), spacing_mm=(0.5, 0.5) if spacing and i != 5 else None,
            reader="R1+R2" if i == 4 else "R1",
        )  # fmt: skip
    return lib


def test_each_curation_call_is_recorded_with_user_time_old_and_new(tmp_path: Path) -> None:
    with _library(tmp_path / "lib") as lib:
        cs = lib.set_state([1, 2, 99], "accepted")
        assert (cs.changed, cs.changes, cs.missing) == (2, 2, (99,))
        assert lib.set_state([1], "accepted").batch is None  # nothing changed, nothing recorded
        lib.set_rating([1, 3], 4)
        lib.set_notes(2, "rib overlap")
        assert lib.set_notes([4, 5], "both").patch_ids == (4, 5)
        lib.add_tags([1, 2], ["blurry", " edge ", ""])
        lib.remove_tags([2], "edge")
        lib.set_label([3], "mass")  # case forgiven, spelled as CXR-LT spells it
        with pytest.raises(ValueError, match="curation state"):
            lib.set_state([1], "maybe")
        with pytest.raises(ValueError, match="rating is 1 to 5"):
            lib.set_rating([1], 6)
        with pytest.raises(ValueError, match="not one of the 26 CXR-LT labels"):
            lib.set_label([1], "Nodule/Mass")
        p1, p2, p3 = lib.get_many([1, 2, 3])
        assert (p1.state, p1.rating, p1.tags) == ("accepted", 4, ("blurry", "edge"))
        assert (p2.notes, p2.tags, p3.label, p3.rating) == ("rib overlap", ("blurry",), "Mass", 4)
        hist = lib.history(limit=100)
        assert [(h.action, h.patch_id, h.field) for h in hist[:3]] == [
            ("set_label", 3, "label"),
            ("remove_tags", 2, "tags"),
            ("add_tags", 2, "tags"),
        ]
        assert all(h.user == "tester" and h.time > 0 for h in hist)
        tags2 = [h for h in lib.history(2) if h.field == "tags"]
        assert [(h.old, h.new) for h in tags2] == [
            (["blurry", "edge"], ["blurry"]),
            ([], ["blurry", "edge"]),
        ]
        assert [(h.field, h.old, h.new) for h in lib.history(3)] == [
            ("label", "Pneumothorax", "Mass"),
            ("rating", None, 4),
        ]
        assert lib.get(1).updated >= lib.get(1).created


def test_default_user_comes_from_the_os(tmp_path: Path) -> None:
    import getpass

    with PatchLibrary(tmp_path / "lib") as lib:
        assert lib.user == getpass.getuser()


def test_undo_and_redo_every_kind_of_edit(tmp_path: Path) -> None:
    with _library(tmp_path / "lib") as lib:
        steps = [
            (lambda: lib.set_state([1, 2], "rejected"), lambda: [p.state for p in lib.get_many([1, 2])]),
            (lambda: lib.set_rating([1], 2), lambda: lib.get(1).rating),
            (lambda: lib.set_notes(1, "n"), lambda: lib.get(1).notes),
            (lambda: lib.add_tags([1, 3], ["t"]), lambda: [lib.get(1).tags, lib.get(3).tags]),
            (lambda: lib.remove_tags([1], ["t"]), lambda: lib.get(1).tags),
            (lambda: lib.set_label([2], "Edema"), lambda: lib.get(2).label),
            (lambda: lib.delete_patch(4), lambda: (len(lib), lib.get(4).deleted)),
        ]  # fmt: skip
        for do, look in steps:
            before = look()
            cs = do()
            after = look()
            assert after != before and lib.can_undo
            undone = lib.undo()
            assert undone is not None and undone.action == "undo" and look() == before
            assert lib.can_redo
            redone = lib.redo()
            assert redone is not None and look() == after
        # Undo all the way back, in reverse order; each undo is recorded too.
        while lib.can_undo:
            lib.undo()
        assert lib.undo() is None
        assert [(p.state, p.rating, p.notes, p.tags, p.label) for p in lib.get_many([1, 2, 3])] == [
            ("unreviewed", None, "", (), "Nodule"),
            ("unreviewed", None, "", (), "Mass"),
            ("unreviewed", None, "", (), "Pneumothorax"),
        ]
        assert len(lib) == 6
        assert sum(h.action == "undo" for h in lib.history(limit=1000)) >= 7
        # A new edit after undo clears the redo stack.
        lib.set_rating([1], 3)
        assert not lib.can_redo and lib.redo() is None
        assert cs.batch is not None


def test_undo_leaves_a_field_someone_changed_since(tmp_path: Path) -> None:
    with _library(tmp_path / "lib") as lib, PatchLibrary(tmp_path / "lib", user="other") as two:
        lib.set_rating([1, 2], 3)
        two.set_rating([2], 5)  # another process rates patch 2 again
        cs = lib.undo()
        assert cs is not None and cs.patch_ids == (1,)
        assert cs.conflicts == ("patch 2 rating was changed since; left as it is",)
        assert (lib.get(1).rating, lib.get(2).rating) == (None, 5)
        # apply_inverse works on any recorded batch, from any session.
        batch = next(h.batch for h in two.history(2) if h.user == "other")
        assert two.apply_inverse(batch).changed == 1 and lib.get(2).rating == 3


def test_query_filters_sorts_and_pages(tmp_path: Path) -> None:
    with _library(tmp_path / "lib", n=9) as lib:
        lib.set_state([1, 4], "accepted")
        lib.set_state([7], "rejected")
        lib.set_rating([2], 5)
        lib.set_rating([3], 1)
        lib.set_notes(6, "Looks like a nipple shadow")
        lib.add_tags([8], ["nipple?"])
        lib.delete_patch(9)
        assert lib.query_ids() == [1, 2, 3, 4, 5, 6, 7, 8]
        assert lib.query_ids(labels=["Nodule"]) == [1, 4, 7]
        assert lib.query_ids(labels="Nodule", states=["accepted", "unreviewed"]) == [1, 4]
        assert lib.query_ids(datasets=["vindr"]) == [2, 4, 6, 8]
        assert lib.query_ids(min_size=8, max_size=12) == [3, 4, 5]  # px: 4 + 2 * (id - 1)
        assert lib.query_ids(min_size=4, max_size=8, size_unit="mm") == [3, 4, 5, 7]  # 6: no mm
        assert lib.query_ids(min_readers=2) == [5]
        assert lib.query_ids(text="NIPPLE") == [6, 8]
        assert lib.query_ids(text="%") == []  # LIKE wildcards are literal
        assert lib.query_ids(tags=["nipple?"]) == [8]
        assert lib.query_ids(sort="rating", descending=True)[:2] == [2, 3]
        assert lib.query_ids(sort="size", descending=True, limit=3) == [8, 7, 6]
        assert lib.query_ids(sort="size", limit=3, offset=3) == [4, 5, 6]
        assert lib.query_ids(sort="label") == [2, 5, 8, 1, 4, 7, 3, 6]
        assert lib.query_ids(sort="source")[:4] == [1, 3, 5, 7]  # nih before vindr
        assert lib.query_ids(include_deleted=True)[-1] == 9
        assert lib.query_count(labels=["Mass"]) == 3
        assert [p.id for p in lib.query(labels=["Mass"], sort="size", descending=True)] == [8, 5, 2]
        assert lib.state_counts()["Nodule"] == {"unreviewed": 0, "accepted": 2, "rejected": 1}
        assert lib.datasets() == {"nih": 4, "vindr": 4} and lib.tags() == {"nipple?": 1}
        with pytest.raises(ValueError, match="sort key"):
            lib.query_ids(sort="colour")


@pytest.fixture
def spawn() -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    """Start a Python child on a script (stdin/stdout piped); any child left is killed after."""
    children: list[subprocess.Popen[str]] = []

    def run(script: str) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script)],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        return child

    yield run
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=60)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def test_two_processes_curating_one_library_lose_no_update(
    tmp_path: Path, spawn: Callable[[str], subprocess.Popen[str]]
) -> None:
    n = 60
    _library(tmp_path / "lib", n=n).close()
    child = spawn(
        f"""
        from fpsm_core.dadam.library import PatchLibrary
        lib = PatchLibrary({str(tmp_path / "lib")!r}, user="child")
        print("ready", flush=True)
        input()
        for i in range(1, {n} + 1):
            lib.set_state([i], "accepted")
            lib.add_tags([i], ["child"])
        lib.set_state(range(1, {n} + 1), "accepted")
        print("done", flush=True)
        """
    )
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "ready"
    with PatchLibrary(tmp_path / "lib", user="parent") as lib:
        child.stdin.write("go\n")
        child.stdin.flush()
        for i in range(1, n + 1):
            lib.set_rating([i], 1 + i % 5)
            lib.add_tags([i], ["parent"])  # read-modify-write of the same field as the child
        assert child.stdout.readline().strip() == "done"
        assert child.wait(timeout=120) == 0
        patches = lib.get_many(range(1, n + 1))
        assert all(p.state == "accepted" for p in patches)
        assert [p.rating for p in patches] == [1 + i % 5 for i in range(1, n + 1)]
        assert all(p.tags == ("child", "parent") for p in patches)
        users = {h.user for h in lib.history(limit=10_000)}
        assert users == {"child", "parent"}


def test_kill_9_in_the_middle_of_a_batch_accept_keeps_each_batch_whole(
    tmp_path: Path, spawn: Callable[[str], subprocess.Popen[str]]
) -> None:
    n = 300
    _library(tmp_path / "lib", n=n).close()
    child = spawn(
        f"""
        import sys
        from fpsm_core.dadam import curation
        from fpsm_core.dadam.library import PatchLibrary
        lib = PatchLibrary({str(tmp_path / "lib")!r})
        lib.set_state(range(1, 101), "accepted")          # batch 1: committed
        calls = []
        def accept(old):
            calls.append(old)
            if len(calls) == 150:                          # half-way through batch 2
                print("in the middle", flush=True)
                sys.stdin.readline()                       # wait here to be killed
            return "accepted"
        curation.change(lib, "set_state", range(101, {n} + 1), "state", accept)
        print("not killed", flush=True)
        """
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "in the middle"
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    with PatchLibrary(tmp_path / "lib") as lib:
        states = [p.state for p in lib.get_many(range(1, n + 1))]
        assert states[:100] == ["accepted"] * 100
        assert states[100:] == ["unreviewed"] * (n - 100)
        hist = lib.history(limit=10_000)
        assert len(hist) == 100 and {h.batch for h in hist} == {hist[0].batch}
        # The library takes writes again at once (no stale lock, no half batch).
        assert lib.set_state(range(101, n + 1), "accepted").changed == n - 100
