"""AI results as DICOM objects a PACS stores next to the study (on highdicom).

For an inference result and its source image: a Secondary Capture with the heatmap and findings
burned in (:mod:`.sc`), a Comprehensive SR measurement report (:mod:`.sr`), a Grayscale Softcopy
Presentation State with the regions on an "AI" layer (:mod:`.gsps`) and optionally a FRACTIONAL
Segmentation of the per-level CAMs (:mod:`.seg`). All copy the patient and study modules of the
source (or its de-identified copy) and reference its instance; :func:`write_outputs` writes them.
"""

from fpsm_core.export.errors import ExportError
from fpsm_core.export.outputs import (
    DEFAULT_KINDS,
    KINDS,
    WrittenOutputs,
    build_outputs,
    parse_kinds,
    write_outputs,
)

__all__ = [
    "DEFAULT_KINDS",
    "KINDS",
    "ExportError",
    "WrittenOutputs",
    "build_outputs",
    "parse_kinds",
    "write_outputs",
]
