"""Keeping DADAM inside the folders the user named: confined paths, safe ids, iterative walks.

A plan, a box file and a manifest are data a user may have been sent, and each names files: a plan
item's id becomes ``<out>/images/<id>.png`` and its destination ``<images>/<path>``; a box row's
``image_id`` becomes ``<images>/<image_id>``. Each is checked here when it is read, so that
``../../x``, an absolute path or a symlink out of the folder never makes ``generate`` write above
``--out`` or ``import`` cut from a file outside ``--images``. Folders are walked with an explicit
stack (a tree 1,200 levels deep does not hit Python's recursion limit) and without following
folder symlinks, as ``fpsm_core.io.studies`` does. Temporary files carry the writer's process id,
so two runs into one folder never share one, and a killed run's leftovers are recognised (their
process is gone) and removed by the next run.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

# An id that is a plain file name: what ``make_plan`` writes (``dadam_000001``) and more, never a
# path.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_TMP = re.compile(r"\.(?P<name>.+?)(?:\.(?P<pid>\d+)(?:-[0-9a-f]+)?)?\.tmp")


def id_problem(item_id: object) -> str | None:
    """Why an id cannot name a file (None: a plain name of letters, digits, '.', '_', '-')."""
    if not isinstance(item_id, str) or not _SAFE_ID.fullmatch(item_id) or ".." in item_id:
        text = repr(item_id)
        return f"id {text[:60]} is not a plain file name (letters, digits, '.', '_', '-')"
    return None


def plain_relative(rel: object) -> bool:
    """True for a relative path without '..' (POSIX or Windows spelling), judged on its text."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        return False
    posix, windows = PurePosixPath(rel), PureWindowsPath(rel)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        return False
    return ".." not in posix.parts and ".." not in windows.parts


def confined(root: str | os.PathLike[str], rel: str) -> Path | None:
    """``root / rel`` when it stays inside ``root`` after ``resolve()``; None when it does not.

    Refused: absolute paths (POSIX or Windows, drive letters included), any ``..`` part, and paths
    whose resolution (symlinks followed) leaves ``root``.
    """
    if not plain_relative(rel):
        return None
    base = Path(root)
    path = base / rel
    try:
        if not path.resolve().is_relative_to(base.resolve()):
            return None
    except (OSError, RuntimeError):  # a symlink loop
        return None
    return path


def walk_files(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Every regular file under ``root`` (hidden entries skipped, folder symlinks not followed).

    Sorted within each folder; iterative, so depth is bounded by the file system, not by Python.
    """
    stack = [Path(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(Path(entry.path))
                elif entry.is_file():
                    yield Path(entry.path)
            except OSError:
                continue
        stack.extend(reversed(subfolders))


def temp_name(path: Path) -> Path:
    """A temporary name beside ``path`` that no other process uses: ``.<name>.<pid>-<rand>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process, or cannot tell: leave its file alone
    return True


def remove_stale_temps(folder: str | os.PathLike[str], *, recursive: bool = False) -> int:
    """Delete ``.<name>.<pid>[-rand].tmp`` files in ``folder`` whose process is gone; returns count.

    A live process's temporary file (another run writing into the same folder) is left alone.
    ``recursive`` looks in subfolders too (symlinked folders not followed).
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if recursive and entry.is_dir(follow_symlinks=False):
            removed += remove_stale_temps(entry.path, recursive=True)
            continue
        m = _TMP.fullmatch(entry.name)
        # no pid: the name older versions used, whose writer cannot be told; taken as stale
        if m and (m.group("pid") is None or not _alive(int(m.group("pid")))):
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed
