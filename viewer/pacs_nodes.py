"""The PACS node chooser shared by the viewer's Send and Query dialogs.

A node comes from a nodes file (``fpsm_core.pacs.load_nodes``: the same JSON as ``fpsm pacs
--nodes``) or is typed in (called AE title, host, port, our AE title). The choice is remembered in
the viewer's settings; the form never touches the network itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from fpsm_core.errors import one_sentence

if TYPE_CHECKING:
    from fpsm_core.pacs import Node

INLINE = "Typed in below"


class NodeForm(QWidget):
    """Nodes file + node + AE titles, host and port.

    Signals:
        problem(message): the nodes file could not be read, or a field is missing (one sentence).
    """

    problem = Signal(str)

    def __init__(self, settings: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self._nodes: dict[str, Node] = {}
        self.nodes_file = QLineEdit(str(settings.value("pacs/nodes_file", "") or ""))
        self.node_combo = QComboBox()
        self.aec = QLineEdit(str(settings.value("pacs/aec", "") or ""))
        self.host = QLineEdit(str(settings.value("pacs/host", "127.0.0.1") or "127.0.0.1"))
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(int(settings.value("pacs/port", 104) or 104))
        self.aet = QLineEdit(str(settings.value("pacs/aet", "FPSM") or "FPSM"))
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.nodes_file, 1)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(browse)
        form.addRow("Nodes file", row)
        form.addRow("Node", self.node_combo)
        form.addRow("Called AE title", self.aec)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("Our AE title", self.aet)
        self.nodes_file.editingFinished.connect(self.reload)
        self.node_combo.currentTextChanged.connect(self._on_node_combo_changed)
        self.reload()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "PACS nodes file", self.nodes_file.text(), "JSON (*.json)"
        )
        if path:
            self.nodes_file.setText(path)
            self.reload()

    def reload(self) -> None:
        """Read the nodes file again (a bad file is one sentence; typed-in nodes still work)."""
        from fpsm_core.pacs import PacsError, load_nodes

        self._nodes = {}
        text = self.nodes_file.text().strip()
        if text:
            try:
                self._nodes = {n: v for n, v in load_nodes(text).items() if v.has_dimse}
            except PacsError as exc:
                self.problem.emit(one_sentence(exc))
        current = self.node_combo.currentText()
        self.node_combo.blockSignals(True)
        self.node_combo.clear()
        self.node_combo.addItems([*self._nodes, INLINE])
        remembered = str(self.settings.value("pacs/node", "") or "")
        pick = current if current in self._nodes else remembered
        self.node_combo.setCurrentText(pick if pick in self._nodes else INLINE)
        self.node_combo.blockSignals(False)
        self._on_node_combo_changed(self.node_combo.currentText())

    def _on_node_combo_changed(self, name: str) -> None:
        inline = name not in self._nodes
        for w in (self.aec, self.host, self.port, self.aet):
            w.setEnabled(inline)
        if not inline:
            node = self._nodes[name]
            self.aec.setText(node.aet)
            self.host.setText(node.host)
            self.port.setValue(node.port)
            self.aet.setText(node.our_aet)

    def node(self) -> Node | None:
        """The node chosen, or None after saying (``problem``) what is missing."""
        from fpsm_core.pacs import Node

        name = self.node_combo.currentText()
        if name in self._nodes:
            return self._nodes[name]
        aec, host, aet = self.aec.text().strip(), self.host.text().strip(), self.aet.text().strip()
        for value, what in (
            (aec, "the called AE title"),
            (host, "the host"),
            (aet, "our AE title"),
        ):
            if not value:
                self.problem.emit(f"Type {what} of the PACS node, or pick one from a nodes file.")
                return None
        if len(aec) > 16 or len(aet) > 16:
            self.problem.emit("An AE title has at most 16 characters.")
            return None
        port = self.port.value()
        return Node("the PACS", aec, host, port, our_aet=aet)  # reads "the PACS (AET@HOST:PORT)"

    def remember(self, node: Node) -> None:
        s = self.settings
        s.setValue("pacs/nodes_file", self.nodes_file.text().strip())
        s.setValue("pacs/node", self.node_combo.currentText())
        s.setValue("pacs/aec", node.aet)
        s.setValue("pacs/host", node.host)
        s.setValue("pacs/port", node.port)
        s.setValue("pacs/aet", node.our_aet)
