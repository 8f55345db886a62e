"""File > Export as DICOM and File > Send to PACS: the AI result of the film on screen as DICOM.

The objects are :mod:`fpsm_core.export`'s (Secondary Capture, TID 1500 SR, GSPS, FRACTIONAL SEG),
the same ``fpsm infer --dicom-out`` writes, built and written on a worker thread so the window never
waits on highdicom or the network. *Export* writes them into a folder the user picks (each file
through a temporary name, so nothing half-written is left). *Send* builds them in a private
temporary folder, C-STOREs them to a PACS node (from a nodes file, or typed in: AE title, host,
port) and deletes the folder. Patient and study identity are copied from the source so that the PACS
files the results with the study; *De-identify* replaces them (``fpsm_core.io.deid``) for teaching
or research copies. Every failure is one sentence in the dialog and the status bar.
"""

from __future__ import annotations

import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fpsm_core.errors import FpsmError, one_sentence
from viewer.pacs_nodes import NodeForm

if TYPE_CHECKING:
    from fpsm_core.pacs import Node
    from viewer.state import ViewerState

KIND_NAMES = {
    "sc": "Secondary Capture (film + heatmap + findings, burned in)",
    "sr": "Structured report (TID 1500: every finding, threshold, model)",
    "gsps": "Presentation state (finding regions as toggleable graphics)",
    "seg": "Segmentation (per-level CAMs, FRACTIONAL)",
}
DEFAULT_KINDS = ("sc", "sr", "gsps")


@dataclass(frozen=True)
class DicomJob:
    """What to build and where it goes: a folder, a PACS node, or both."""

    result: Any
    image: Any
    kinds: tuple[str, ...]
    deidentify: bool = False
    folder: Path | None = None
    node: Node | None = None
    echo_only: bool = False


@dataclass(frozen=True)
class DicomReport:
    """What a job did: files written (kind -> path), SOP instance UIDs sent, warnings."""

    files: dict[str, Path] = field(default_factory=dict)
    sent: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    node: str = ""

    def summary(self) -> str:
        """One line for the status bar."""
        if self.node and not self.sent and not self.files:
            return f"{self.node} answered the C-ECHO."
        kinds = ", ".join(k.upper() for k in (self.files or {})) or "nothing"
        if self.sent:
            return f"Sent {len(self.sent)} DICOM object(s) ({kinds}) to {self.node}."
        folder = next(iter(self.files.values())).parent if self.files else "?"
        return f"Wrote {kinds} to {folder}."


def run_job(job: DicomJob) -> DicomReport:
    """Build, write and/or send the job's objects (any thread; raises FpsmError for user errors)."""
    from fpsm_core.export import write_outputs
    from fpsm_core.pacs import echo, store

    if job.echo_only:
        assert job.node is not None
        echo(job.node)
        return DicomReport(node=str(job.node))
    files: dict[str, Path] = {}
    warnings: list[str] = []
    if job.folder is not None:
        written = write_outputs(
            job.result, job.image, job.folder, job.kinds, deidentify=job.deidentify
        )
        files, warnings = dict(written.files), list(written.warnings)
    sent: tuple[str, ...] = ()
    if job.node is not None:
        with tempfile.TemporaryDirectory(prefix="fpsm-send-") as tmp:
            written = write_outputs(
                job.result, job.image, tmp, job.kinds, deidentify=job.deidentify
            )
            if job.folder is None:
                warnings = list(written.warnings)
            sent = tuple(store(job.node, list(written.files.values())))
            if not files:
                files = {k: Path(job.node.name) / p.name for k, p in written.files.items()}
    return DicomReport(files, sent, tuple(warnings), str(job.node) if job.node else "")


class _Worker(QObject):
    done = Signal(int, object)
    failed = Signal(int, str)

    @Slot(int, object)
    def run(self, request_id: int, job: DicomJob) -> None:
        try:
            report = run_job(job)
        except FpsmError as exc:
            self.failed.emit(request_id, one_sentence(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, tell the user
            traceback.print_exc()
            self.failed.emit(request_id, f"Unexpected error writing the DICOM outputs: {exc}")
            return
        self.done.emit(request_id, report)


class DicomOutput(QObject):
    """Owns the worker thread that builds, writes and sends DICOM outputs (one job at a time).

    Signals:
        finished(DicomReport), failed(message), busy_changed(bool)
    """

    finished = Signal(object)
    failed = Signal(str)
    busy_changed = Signal(bool)
    _requested = Signal(int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._request = 0
        self.busy = False
        self._thread = QThread(self)
        self._thread.setObjectName("fpsm-dicom-out")
        self._worker = _Worker()
        self._worker.moveToThread(self._thread)
        self._requested.connect(self._worker.run)
        self._worker.done.connect(self._on_worker_done)
        self._worker.failed.connect(self._on_worker_failed)
        self._thread.start()

    @property
    def worker_thread(self) -> QThread:
        return self._thread

    def start(self, job: DicomJob) -> int:
        self._request += 1
        self._set_busy(True)
        self._requested.emit(self._request, job)
        return self._request

    def shutdown(self) -> None:
        self._thread.quit()
        self._thread.wait(60000)

    def _set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.busy_changed.emit(busy)

    def _on_worker_done(self, request_id: int, report: DicomReport) -> None:
        if request_id == self._request:
            self._set_busy(False)
            self.finished.emit(report)

    def _on_worker_failed(self, request_id: int, message: str) -> None:
        if request_id == self._request:
            self._set_busy(False)
            self.failed.emit(message)


class DicomOutDialog(QDialog):
    """Which objects, de-identified or not, and where: a folder (export) or a PACS node (send).

    Args:
        mode: ``"export"`` or ``"send"``.
        output: the worker owner that runs the job.
        job_source: returns (result, image) of the film on screen, or a sentence why there is none.
        settings: the viewer's QSettings (last folder, nodes file, typed-in node).
    """

    def __init__(
        self,
        mode: str,
        output: DicomOutput,
        job_source: Any,
        settings: Any,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.mode = mode
        self.output = output
        self.job_source = job_source
        self.settings = settings
        self.setWindowTitle("Export as DICOM" if mode == "export" else "Send to PACS")
        self.report: DicomReport | None = None
        self.kind_boxes: dict[str, QCheckBox] = {}
        form = QFormLayout()
        for kind, text in KIND_NAMES.items():
            box = QCheckBox(text)
            box.setChecked(kind in DEFAULT_KINDS)
            self.kind_boxes[kind] = box
            form.addRow(kind.upper(), box)
        self.deidentify = QCheckBox("De-identify (pseudonymous patient and new UIDs)")
        form.addRow("", self.deidentify)
        self.folder = QLineEdit(str(settings.value("dicom/folder", "") or ""))
        self.echo_button = QPushButton("Echo")
        self.nodes: NodeForm | None = None
        if mode == "export":
            row = QHBoxLayout()
            row.addWidget(self.folder, 1)
            browse = QPushButton("Browse…")
            browse.clicked.connect(self._browse_folder)
            row.addWidget(browse)
            form.addRow("Folder", row)
        else:
            self.nodes = NodeForm(settings)
            self.nodes.problem.connect(lambda m: self._say(m, error=True))
            form.addRow(self.nodes)
            form.addRow("", self.echo_button)
            self.echo_button.clicked.connect(self.echo)
        self.message = QLabel(
            "Patient and study identity are copied from the source so the PACS files these "
            "results with the study; tick De-identify for teaching or research copies."
        )
        self.message.setWordWrap(True)
        self.message.setObjectName("hint")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.go_button = self.buttons.addButton(
            "Export" if mode == "export" else "Send", QDialogButtonBox.ButtonRole.ActionRole
        )
        self.go_button.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        output.finished.connect(self._on_output_finished)
        output.failed.connect(self._on_output_failed)
        output.busy_changed.connect(self._on_output_busy_changed)

    # -- choices -----------------------------------------------------------------------------
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k, box in self.kind_boxes.items() if box.isChecked())

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "DICOM output folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    # -- running -----------------------------------------------------------------------------
    def start(self) -> bool:
        """Start the export or send; False (with a sentence) when something is missing."""
        got = self.job_source()
        if isinstance(got, str):
            self._say(got, error=True)
            return False
        result, image = got
        kinds = self.kinds()
        if not kinds:
            self._say("Tick at least one kind of DICOM object.", error=True)
            return False
        if self.mode == "export":
            text = self.folder.text().strip()
            if not text:
                self._say("Choose the folder to write the DICOM files into.", error=True)
                return False
            folder = Path(text).expanduser()
            self.settings.setValue("dicom/folder", str(folder))
            job = DicomJob(result, image, kinds, self.deidentify.isChecked(), folder=folder)
        else:
            assert self.nodes is not None
            node = self.nodes.node()
            if node is None:
                return False
            self.nodes.remember(node)
            job = DicomJob(result, image, kinds, self.deidentify.isChecked(), node=node)
        self._say("Working…")
        self.output.start(job)
        return True

    def echo(self) -> bool:
        node = self.nodes.node() if self.nodes is not None else None
        if node is None:
            return False
        self._say(f"Asking {node} for a C-ECHO…")
        self.output.start(DicomJob(None, None, (), node=node, echo_only=True))
        return True

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setProperty("error", error)

    def _on_output_finished(self, report: DicomReport) -> None:
        self.report = report
        extra = f" {report.warnings[0]}" if report.warnings else ""
        self._say(report.summary() + extra)

    def _on_output_failed(self, message: str) -> None:
        self._say(message, error=True)

    def _on_output_busy_changed(self, busy: bool) -> None:
        self.go_button.setEnabled(not busy)
        self.echo_button.setEnabled(not busy)


class DicomOutController(QObject):
    """The window's two actions; reads the film on screen from the state, never from widgets.

    Signals:
        said(message, error): a line for the window's status bar.
    """

    said = Signal(str, bool)

    def __init__(self, parent: QWidget, state: ViewerState, settings: Any) -> None:
        super().__init__(parent)
        self.state = state
        self.settings = settings
        self.output = DicomOutput(self)
        self.dialog: DicomOutDialog | None = None
        self.output.finished.connect(lambda r: self.said.emit(r.summary(), False))
        self.output.failed.connect(lambda m: self.said.emit(m, True))

    def current(self) -> tuple[Any, Any] | str:
        """(result, image) of the film on screen, or why there is none (one sentence)."""
        loaded, result = self.state.image, self.state.result
        if loaded is None:
            return "Open an image first: there is no film to export."
        if result is None:
            return "Wait for the findings of this film before exporting them as DICOM."
        if str(getattr(result, "path", "") or "") not in ("", str(loaded.path)):
            return "The findings on screen are not this film's yet; wait for them."
        return result, loaded.image

    def open(self, mode: str) -> DicomOutDialog:
        if self.dialog is not None:
            self.dialog.close()
            self.dialog.deleteLater()
        self.dialog = DicomOutDialog(
            mode,
            self.output,
            self.current,
            self.settings,
            self.parent(),  # type: ignore[arg-type]
        )
        self.dialog.show()
        return self.dialog

    def shutdown(self) -> None:
        if self.dialog is not None:
            self.dialog.close()
        self.output.shutdown()
