"""The gateway's durable job queue: received instances on disk, their state in SQLite.

Receiving is one transaction: the row is inserted, the file is written under a temporary name,
flushed to disk and renamed to ``files/<job id>.dcm``, and only then is the transaction committed;
the C-STORE success status is sent after the commit. A crash before the commit leaves at most an
orphan file, removed at the next start, and the sender, which never saw a success, sends again.
An instance whose SOP Instance UID is already queued or done is acknowledged without a second job.

A job goes ``queued`` -> ``running`` -> ``written`` (its DICOM outputs are on disk under
``outputs/<job id>/`` and recorded) -> ``done``, or ``failed`` with a reason. At start, a
``running`` job (killed mid-inference, nothing sent yet) goes back to ``queued``; a ``written``
job is sent again with the same files and so the same SOP Instance UIDs, which a PACS stores
once. So a kill -9 at any point loses nothing received and sends no result twice.

The queue is bounded: :meth:`JobQueue.admit` refuses (:class:`QueueFull`) when the open jobs
reach ``max_jobs``, when the files held reach ``max_bytes``, or when the disk would keep less
than ``min_free_bytes``. One process owns a queue folder at a time (an exclusive lock file).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fpsm_core.errors import FpsmError

OPEN_STATES = ("queued", "running", "written")
STATES = (*OPEN_STATES, "done", "failed")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sop_uid TEXT NOT NULL UNIQUE,
    sop_class TEXT NOT NULL,
    calling_aet TEXT NOT NULL DEFAULT '',
    bytes INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    reason TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    runs INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, next_at);
CREATE TABLE IF NOT EXISTS outputs (
    job INTEGER NOT NULL REFERENCES jobs (id),
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (job, kind)
);
"""


class QueueError(FpsmError):
    """The queue folder cannot be used (locked by another gateway, unwritable, corrupt)."""


class QueueFull(QueueError):
    """The queue holds as many jobs or bytes as it may; the sender should try later."""


@dataclass(frozen=True)
class Job:
    """One received instance and where it stands."""

    id: int
    sop_uid: str
    sop_class: str
    calling_aet: str
    state: str
    reason: str
    attempts: int
    runs: int
    received_at: float
    finished_at: float | None
    path: Path


@dataclass(frozen=True)
class QueueStatus:
    """Counts by state, bytes held, and the most recent failures."""

    counts: dict[str, int]
    bytes_held: int
    failures: tuple[Job, ...]
    recent: tuple[Job, ...]


class JobQueue:
    """The queue in ``root`` (``queue.sqlite``, ``files/``, ``outputs/``).

    Args:
        root: the queue folder (created).
        max_jobs: open jobs (queued, running, written) it accepts.
        max_bytes: bytes of received files it holds.
        min_free_bytes: free disk space it always leaves.
        lock: take the folder's exclusive lock (the gateway); False for read-only status.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        max_jobs: int = 1000,
        max_bytes: int = 2 << 30,
        min_free_bytes: int = 256 << 20,
        lock: bool = True,
    ) -> None:
        self.root = Path(root)
        self.files = self.root / "files"
        self.outputs = self.root / "outputs"
        self.max_jobs, self.max_bytes, self.min_free_bytes = max_jobs, max_bytes, min_free_bytes
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        try:
            self.files.mkdir(parents=True, exist_ok=True)
            self.outputs.mkdir(parents=True, exist_ok=True)
            if lock:
                self._take_lock()
            self._db = sqlite3.connect(
                self.root / "queue.sqlite", check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except OSError as exc:
            raise QueueError(
                f"the queue folder {self.root} cannot be used ({exc.strerror})."
            ) from None
        except sqlite3.DatabaseError as exc:
            raise QueueError(f"the queue database in {self.root} cannot be used ({exc}).") from None
        if lock:
            self._recover()

    def _take_lock(self) -> None:
        import fcntl

        fd = os.open(self.root / "gateway.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise QueueError(
                f"the queue folder {self.root} is in use by another running gateway."
            ) from None
        self._lock_fd = fd

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- receiving ---------------------------------------------------------------------------
    def admit(self, sop_uid: str, sop_class: str, data: bytes, calling_aet: str = "") -> int | None:
        """Store one received instance durably; its job id, or None when already held.

        Raises:
            QueueFull: the queue is at one of its bounds (answer 'out of resources').
        """
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT id FROM jobs WHERE sop_uid = ?", (sop_uid,)).fetchone()
                if row is not None:
                    db.execute("ROLLBACK")
                    return None
                self._check_bounds(len(data))
                cur = db.execute(
                    "INSERT INTO jobs (sop_uid, sop_class, calling_aet, bytes, received_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (sop_uid, sop_class, calling_aet, len(data), time.time()),
                )
                job_id = int(cur.lastrowid or 0)
                self._write(self.files / f"{job_id}.dcm", data)
                db.execute("COMMIT")
                return job_id
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _check_bounds(self, size: int) -> None:
        open_jobs, held = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM jobs WHERE state IN (?, ?, ?)",
            OPEN_STATES,
        ).fetchone()
        if open_jobs >= self.max_jobs:
            raise QueueFull(f"the queue holds {open_jobs} jobs, its limit.")
        if held + size > self.max_bytes:
            raise QueueFull(f"the queue holds {held} bytes; {size} more would pass its limit.")
        if shutil.disk_usage(self.root).free - size < self.min_free_bytes:
            raise QueueFull(f"the disk of {self.root} is nearly full.")

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        part = path.with_name(f".{path.name}.part")
        with open(part, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # -- working -----------------------------------------------------------------------------
    def claim(self) -> Job | None:
        """The next job to work on (queued, or written and due for sending), marked running."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT id, state FROM jobs WHERE state IN ('queued', 'written') AND next_at <= ? "
                "ORDER BY id LIMIT 1",
                (time.time(),),
            ).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            if row[1] == "queued":
                db.execute(
                    "UPDATE jobs SET state = 'running', runs = runs + 1 WHERE id = ?", (row[0],)
                )
            db.execute("COMMIT")
        return self.job(int(row[0]))

    def written(self, job: Job, files: dict[str, Path]) -> None:
        """The job's outputs are on disk: record them; from now on it is only sent."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR REPLACE INTO outputs (job, kind, path) VALUES (?, ?, ?)",
                [(job.id, kind, str(path)) for kind, path in files.items()],
            )
            db.execute("UPDATE jobs SET state = 'written' WHERE id = ?", (job.id,))
            db.execute("COMMIT")

    def output_files(self, job: Job) -> dict[str, Path]:
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, path FROM outputs WHERE job = ? ORDER BY kind", (job.id,)
            ).fetchall()
        return {kind: Path(path) for kind, path in rows}

    def done(self, job: Job, *, keep_outputs: bool) -> None:
        """The job is finished; its received file goes (and its outputs unless kept)."""
        self._finish(job, "done", "")
        (self.files / f"{job.id}.dcm").unlink(missing_ok=True)
        if not keep_outputs:
            shutil.rmtree(self.outputs / str(job.id), ignore_errors=True)

    def failed(self, job: Job, reason: str) -> None:
        """The job cannot be done; the received file stays for a retry (``retry_failed``)."""
        self._finish(job, "failed", reason)

    def retry_later(self, job: Job, reason: str, delay_s: float) -> None:
        """Sending failed: keep the written outputs and try again after ``delay_s``."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = 'written', reason = ?, attempts = attempts + 1, "
                "next_at = ? WHERE id = ?",
                (reason, time.time() + delay_s, job.id),
            )

    def retry_failed(self) -> int:
        """Put every failed job whose file is still held back in the queue; how many."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET reason = '', attempts = 0, next_at = 0, state = CASE WHEN "
                "EXISTS (SELECT 1 FROM outputs WHERE job = jobs.id) THEN 'written' ELSE 'queued' "
                "END WHERE state = 'failed'"
            )
            return int(cur.rowcount)

    def _finish(self, job: Job, state: str, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, reason = ?, finished_at = ? WHERE id = ?",
                (state, reason, time.time(), job.id),
            )

    def _recover(self) -> None:
        """After a crash: running jobs are queued again; files without a row go."""
        with self._lock:
            self._db.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'")
            known = {r[0] for r in self._db.execute("SELECT id FROM jobs")}
        for path in self.files.iterdir():
            stem = path.name.removesuffix(".dcm")
            if path.name.startswith(".") or not stem.isdigit() or int(stem) not in known:
                path.unlink(missing_ok=True)

    # -- reading -----------------------------------------------------------------------------
    def job(self, job_id: int) -> Job:
        with self._lock:
            row = self._db.execute(
                "SELECT id, sop_uid, sop_class, calling_aet, state, reason, attempts, runs, "
                "received_at, finished_at FROM jobs WHERE id = ?",
                (job_id,),
            ).fetchone()
        return self._job(row)

    def _job(self, row: tuple[object, ...]) -> Job:
        (job_id, sop, cls, aet, state, reason, attempts, runs, rec, fin) = row
        return Job(
            int(job_id),  # type: ignore[call-overload]
            str(sop),
            str(cls),
            str(aet),
            str(state),
            str(reason),
            int(attempts),  # type: ignore[call-overload]
            int(runs),  # type: ignore[call-overload]
            float(rec),  # type: ignore[arg-type]
            None if fin is None else float(fin),  # type: ignore[arg-type]
            self.files / f"{job_id}.dcm",
        )

    def jobs(self, state: str | None = None) -> list[Job]:
        query = (
            "SELECT id, sop_uid, sop_class, calling_aet, state, reason, attempts, runs, "
            "received_at, finished_at FROM jobs"
        )
        with self._lock:
            rows = (
                self._db.execute(query + " WHERE state = ? ORDER BY id", (state,)).fetchall()
                if state
                else self._db.execute(query + " ORDER BY id").fetchall()
            )
        return [self._job(r) for r in rows]

    def status(self, recent: int = 10) -> QueueStatus:
        with self._lock:
            counts = dict.fromkeys(STATES, 0) | {
                str(s): int(n)
                for s, n in self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            }
            held = int(
                self._db.execute(
                    "SELECT COALESCE(SUM(bytes), 0) FROM jobs WHERE state IN (?, ?, ?)",
                    OPEN_STATES,
                ).fetchone()[0]
            )
        failures = [j for j in self.jobs("failed")][-recent:]
        done = [j for j in self.jobs("done")][-recent:]
        return QueueStatus(counts, held, tuple(failures), tuple(done))
