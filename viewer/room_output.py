"""Getting the reading room's picture out: the view to the clipboard, the layout to a PDF page.

Both take what is on screen (a grab of the viewports, corner text and markers included, so PHI
hidden on screen is hidden in the copy too). The PDF is one A4 landscape page through Qt's own
``QPdfWriter``: the picture scaled to the page, a footer naming the software and the time.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from PySide6.QtCore import QMarginsF, QRectF, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter
from PySide6.QtWidgets import QWidget

from fpsm_core.errors import FpsmError


class PrintError(FpsmError):
    """The PDF cannot be written where the user asked."""


def copy_view(widget: QWidget) -> QImage:
    """Put a picture of ``widget`` on the clipboard; returns it."""
    image = widget.grab().toImage()
    QGuiApplication.clipboard().setImage(image)
    return image


def print_pdf(widget: QWidget, path: str | Path, title: str = "FPSM Viewer") -> Path:
    """Write a one-page PDF of ``widget`` (scaled to A4 landscape) with a footer line.

    Raises:
        PrintError: the folder does not exist or the file cannot be written.
    """
    out = Path(path)
    if not out.parent.is_dir():
        raise PrintError(f"Cannot print to '{out}': the folder {out.parent} does not exist.")
    image = widget.grab().toImage()
    writer = QPdfWriter(str(out))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageOrientation(QPageLayout.Orientation.Landscape)
    writer.setPageMargins(QMarginsF(10, 10, 10, 10), QPageLayout.Unit.Millimeter)
    writer.setResolution(150)
    writer.setTitle(title)
    painter = QPainter()
    if not painter.begin(writer):
        raise PrintError(f"Cannot print to '{out}': the file cannot be written.")
    try:
        page = QRectF(painter.viewport())
        footer_h = page.height() * 0.05
        room = QRectF(page.left(), page.top(), page.width(), page.height() - footer_h)
        size = image.size().toSizeF().scaled(room.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRectF(room.left(), room.top(), size.width(), size.height())
        painter.drawImage(target, image)
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        painter.drawText(
            QRectF(page.left(), page.bottom() - footer_h, page.width(), footer_h),
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            f"{title} · printed {stamp} · not a diagnostic print",
        )
    finally:
        painter.end()
    if not out.is_file() or out.stat().st_size == 0:
        raise PrintError(f"Cannot print to '{out}': nothing was written.")
    return out
