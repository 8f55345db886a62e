"""File > Query PACS: search a PACS, retrieve studies into the worklist's cache, triage them.

The dialog asks a node (``viewer.pacs_nodes.NodeForm``) for studies by patient name or ID,
accession number, study dates, modality (CR/DX) and body part (C-FIND at study level; the body part
is a series attribute, so it is checked with one series-level C-FIND per study found). Retrieving
runs :func:`fpsm_core.pacs.retrieve` (C-GET, or C-MOVE for a node with a ``move_port``) on a worker
thread, one study after another, with a progress bar and Cancel; each study lands in
``CACHE/<StudyInstanceUID>`` only when the PACS reports it complete (nothing half-written is ever
listed). The cache folder is then opened through the study index, like any folder, and the worklist
is triaged. Every failure (refused, timed out, unknown AE title, partial, cancelled) is one sentence.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QStandardPaths, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fpsm_core.errors import FpsmError, one_sentence
from viewer.pacs_nodes import NodeForm

if TYPE_CHECKING:
    from fpsm_core.pacs import Node

MODALITIES = {"CR or DX": "CR\\DX", "DX": "DX", "CR": "CR", "any": ""}
COLUMNS = ("Patient", "ID", "Date", "Accession", "Modalities", "Description", "Images", "Cache")
MAX_BODY_PART_CHECKS = 200  # series queries for the body part filter, at most


@dataclass(frozen=True)
class StudyRow:
    """One study a C-FIND found (what the table shows)."""

    study_uid: str
    patient: str
    patient_id: str
    date: str
    accession: str
    modalities: str
    description: str
    images: str


@dataclass(frozen=True)
class Query:
    """The search fields, as C-FIND keys (empty: any)."""

    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = "CR\\DX"
    body_part: str = ""

    def keys(self) -> dict[str, str]:
        keys = {
            "PatientName": self.patient_name,
            "PatientID": self.patient_id,
            "AccessionNumber": self.accession,
            "ModalitiesInStudy": self.modality,
            "StudyDescription": "",
            "NumberOfStudyRelatedInstances": "",
        }
        if self.date_from or self.date_to:
            keys["StudyDate"] = f"{self.date_from}-{self.date_to}"
        return keys

    def problem(self) -> str | None:
        """One sentence when a field is malformed (dates are YYYYMMDD)."""
        for value, name in ((self.date_from, "From date"), (self.date_to, "To date")):
            if value and not (len(value) == 8 and value.isdigit()):
                return f"{name} {value!r} is not a date of the form YYYYMMDD."
        if self.date_from and self.date_to and self.date_from > self.date_to:
            return "The From date is after the To date."
        return None


def find_studies(node: Node, query: Query) -> list[StudyRow]:
    """Studies matching the query (any thread; raises PacsError with one sentence)."""
    from fpsm_core.pacs import find

    found = find(node, "STUDY", **query.keys())
    rows = [_row(ds) for ds in found]
    if query.body_part and rows:
        part = query.body_part.upper()
        kept = []
        for row in rows[:MAX_BODY_PART_CHECKS]:
            series = find(node, "SERIES", StudyInstanceUID=row.study_uid, BodyPartExamined="")
            if any(str(s.get("BodyPartExamined", "")).upper() == part for s in series):
                kept.append(row)
        rows = kept
    return sorted(rows, key=lambda r: (r.date, r.patient), reverse=True)


def _row(ds: Any) -> StudyRow:
    mods = ds.get("ModalitiesInStudy", "")
    if not isinstance(mods, str):
        mods = "\\".join(str(m) for m in mods)
    return StudyRow(
        study_uid=str(ds.get("StudyInstanceUID", "")),
        patient=str(ds.get("PatientName", "")),
        patient_id=str(ds.get("PatientID", "")),
        date=str(ds.get("StudyDate", "")),
        accession=str(ds.get("AccessionNumber", "")),
        modalities=str(mods),
        description=str(ds.get("StudyDescription", "")),
        images=str(ds.get("NumberOfStudyRelatedInstances", "")),
    )


class _Worker(QObject):
    found = Signal(int, object)
    progressed = Signal(int, int, int, int)  # done, total (of the study), study index, studies
    retrieved = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self, cancel: threading.Event) -> None:
        super().__init__()
        self._cancel = cancel

    @Slot(int, object, object)
    def find(self, request_id: int, node: Node, query: Query) -> None:
        try:
            self.found.emit(request_id, find_studies(node, query))
        except FpsmError as exc:
            self.failed.emit(request_id, one_sentence(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, tell the user
            traceback.print_exc()
            self.failed.emit(request_id, f"Unexpected error querying {node}: {exc}")

    @Slot(int, object, object, object)
    def retrieve(self, request_id: int, node: Node, cache: Path, uids: list[str]) -> None:
        from fpsm_core.pacs import retrieve

        folders: list[Path] = []
        method = "move" if node.move_port else "get"
        try:
            for i, uid in enumerate(uids):
                if self._cancel.is_set():
                    raise FpsmError(f"Retrieve cancelled; {len(folders)} study(ies) kept.")
                if (cache / uid).is_dir() and any((cache / uid).iterdir()):
                    folders.append(cache / uid)  # cached already: not fetched twice
                    continue

                def progress(done: int, total: int, i: int = i) -> None:
                    self.progressed.emit(done, total, i, len(uids))

                got = retrieve(
                    node,
                    cache,
                    uid,
                    method=method,  # type: ignore[arg-type]
                    progress=progress,
                    cancel=self._cancel.is_set,
                )
                folders.append(got.folder)
        except FpsmError as exc:
            kept = f" ({len(folders)} study(ies) before it were kept)" if folders else ""
            self.failed.emit(request_id, one_sentence(exc).rstrip(".") + kept + ".")
            if folders:
                self.retrieved.emit(request_id, folders)
            return
        except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, tell the user
            traceback.print_exc()
            self.failed.emit(request_id, f"Unexpected error retrieving from {node}: {exc}")
            return
        self.retrieved.emit(request_id, folders)


def default_cache() -> Path:
    """Where retrieved studies are kept unless the user names a folder: the per-user cache."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    return Path(base or Path.home() / ".cache" / "fpsm-viewer") / "pacs"


class QueryPacsDialog(QDialog):
    """Search fields, the studies found, retrieve with progress and Cancel.

    Signals:
        studies_found(list[StudyRow]), retrieved(cache folder, list[Path]), failed(message)
    """

    studies_found = Signal(object)
    retrieved = Signal(object, object)
    failed = Signal(str)
    _find = Signal(int, object, object)
    _retrieve = Signal(int, object, object, object)

    def __init__(self, settings: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Query PACS")
        self.settings = settings
        self.rows: list[StudyRow] = []
        self._request = 0
        self._cancel = threading.Event()
        self.nodes = NodeForm(settings)
        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("DOE^J* (wildcards * and ?)")
        self.patient_id = QLineEdit()
        self.accession = QLineEdit()
        self.date_from = QLineEdit()
        self.date_from.setPlaceholderText("YYYYMMDD")
        self.date_to = QLineEdit()
        self.date_to.setPlaceholderText("YYYYMMDD")
        self.modality = QComboBox()
        self.modality.addItems(list(MODALITIES))
        self.body_part = QLineEdit()
        self.body_part.setPlaceholderText("CHEST")
        self.cache = QLineEdit(str(settings.value("pacs/cache", "") or default_cache()))
        self.find_button = QPushButton("Find")
        self.retrieve_button = QPushButton("Retrieve selected")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("hint")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)

        fields = QFormLayout()
        fields.addRow(self.nodes)
        fields.addRow("Patient name", self.patient_name)
        fields.addRow("Patient ID", self.patient_id)
        fields.addRow("Accession", self.accession)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to)
        fields.addRow("Study date", dates)
        fields.addRow("Modality", self.modality)
        fields.addRow("Body part", self.body_part)
        fields.addRow("Cache folder", self.cache)
        buttons = QHBoxLayout()
        for b in (self.find_button, self.retrieve_button, self.cancel_button):
            buttons.addWidget(b)
        buttons.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(fields)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        self.resize(980, 720)

        self._thread = QThread(self)
        self._thread.setObjectName("fpsm-pacs-query")
        self._worker = _Worker(self._cancel)
        self._worker.moveToThread(self._thread)
        self._find.connect(self._worker.find)
        self._retrieve.connect(self._worker.retrieve)
        self._worker.found.connect(self._on_worker_found)
        self._worker.progressed.connect(self._on_worker_progressed)
        self._worker.retrieved.connect(self._on_worker_retrieved)
        self._worker.failed.connect(self._on_worker_failed)
        self._thread.start()
        self.nodes.problem.connect(lambda m: self._say(m, error=True))
        self.find_button.clicked.connect(self.search)
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button.clicked.connect(self.cancel)
        self._busy(False)

    @property
    def worker_thread(self) -> QThread:
        return self._thread

    def query(self) -> Query:
        return Query(
            patient_name=self.patient_name.text().strip(),
            patient_id=self.patient_id.text().strip(),
            accession=self.accession.text().strip(),
            date_from=self.date_from.text().strip(),
            date_to=self.date_to.text().strip(),
            modality=MODALITIES[self.modality.currentText()],
            body_part=self.body_part.text().strip(),
        )

    # -- actions -----------------------------------------------------------------------------
    def search(self) -> bool:
        query = self.query()
        problem = query.problem()
        node = self.nodes.node() if problem is None else None
        if problem is not None:
            self._say(problem, error=True)
        if node is None:
            return False
        self.nodes.remember(node)
        self._request += 1
        self._busy(True, cancel=False)
        self._say(f"Asking {node}…")
        self._find.emit(self._request, node, query)
        return True

    def selected_uids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.rows[r].study_uid for r in rows if 0 <= r < len(self.rows)]

    def retrieve(self) -> bool:
        uids = self.selected_uids()
        if not uids:
            self._say("Select the studies to retrieve in the table first.", error=True)
            return False
        node = self.nodes.node()
        if node is None:
            return False
        text = self.cache.text().strip()
        if not text:
            self._say("Name the cache folder retrieved studies are kept in.", error=True)
            return False
        cache = Path(text).expanduser()
        self.settings.setValue("pacs/cache", str(cache))
        self._cancel.clear()
        self._request += 1
        self._busy(True, cancel=True)
        self.progress.setRange(0, 0)
        self._say(f"Retrieving {len(uids)} study(ies) from {node}…")
        self._retrieve.emit(self._request, node, cache, uids)
        return True

    def cancel(self) -> None:
        self._cancel.set()
        self._say("Cancelling…")

    def shutdown(self) -> None:
        self._cancel.set()
        self._thread.quit()
        self._thread.wait(60000)

    # -- worker results ----------------------------------------------------------------------
    def _on_worker_found(self, request_id: int, rows: list[StudyRow]) -> None:
        if request_id != self._request:
            return
        self._busy(False)
        self.rows = rows
        cache = Path(self.cache.text().strip() or default_cache()).expanduser()
        self.table.setRowCount(0)
        for row in rows:
            r = self.table.rowCount()
            self.table.insertRow(r)
            cached = "cached" if (cache / row.study_uid).is_dir() else ""
            cells = (row.patient, row.patient_id, row.date, row.accession, row.modalities,
                     row.description, row.images, cached)  # fmt: skip
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self._say(f"{len(rows)} study(ies) found." if rows else "No study matches.")
        self.studies_found.emit(rows)

    def _on_worker_progressed(self, done: int, total: int, study: int, studies: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.message.setText(f"Study {study + 1} of {studies}: {done} of {total} image(s)…")

    def _on_worker_retrieved(self, request_id: int, folders: list[Path]) -> None:
        if request_id != self._request:
            return
        self._busy(False)
        cache = Path(self.cache.text().strip()).expanduser()
        if not self.message.property("error"):
            self._say(f"Retrieved {len(folders)} study(ies) into {cache}.")
        self.retrieved.emit(cache, folders)

    def _on_worker_failed(self, request_id: int, message: str) -> None:
        if request_id != self._request:
            return
        self._busy(False)
        self._say(message, error=True)
        self.failed.emit(message)

    def _busy(self, busy: bool, cancel: bool = False) -> None:
        self.find_button.setEnabled(not busy)
        self.retrieve_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy and cancel)
        self.progress.setTextVisible(busy)
        if not busy:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setProperty("error", error)


class QueryPacsController(QObject):
    """The window's File > Query PACS: opens the dialog; retrieved studies go to the worklist.

    The cache folder is opened like any folder (indexed by the study index); when the index is
    ready the worklist is triaged.

    Signals:
        said(message, error)
    """

    said = Signal(str, bool)

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.dialog: QueryPacsDialog | None = None
        self._triage_next = False
        window.hub.folder_indexed.connect(self._on_hub_folder_indexed)

    @property
    def window(self) -> Any:
        """The main window: its Qt parent, never a Python reference (a reference cycle would
        leave the window to the garbage collector, which may run on a worker thread)."""
        return self.parent()

    def open(self) -> QueryPacsDialog:
        if self.dialog is None:
            self.dialog = QueryPacsDialog(self.window.settings, self.window)
            self.dialog.retrieved.connect(self._on_dialog_retrieved)
            self.dialog.failed.connect(lambda m: self.said.emit(m, True))
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def _on_dialog_retrieved(self, cache: Path, folders: list[Path]) -> None:
        if not folders:
            return
        self.said.emit(f"Retrieved {len(folders)} study(ies); indexing {cache}…", False)
        self._triage_next = True
        self.window.open_path(cache)

    def _on_hub_folder_indexed(self, _request_id: int, _index: Any) -> None:
        if self._triage_next:
            self._triage_next = False
            # after the window's own handler has listed the index in the worklist
            QTimer.singleShot(0, self.window.start_triage)

    def shutdown(self) -> None:
        if self.dialog is not None:
            self.dialog.shutdown()
            self.dialog.close()
