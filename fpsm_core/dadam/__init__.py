"""DADAM (Diseased Area Data Augmentation Method): grow rare findings without breaking co-occurrence.

The pipeline, each step its own module:

1. ``boxes``: lesion boxes from NIH, VinDr-CXR, ChestX-Det and the project's own box files.
2. ``library`` / ``importer``: a patch library (SQLite + PNG) of lesion crops with provenance;
   ``schema`` (opening, upgrade), ``curation`` (changes, history, undo, queries), ``editing``
   (box edits), ``duplicates``, ``exchange`` (COCO / YOLO / VOC).
3. ``cooc``: the label correlation matrix and each class's most correlated partner.
4. ``composition``: CutMix / MixUp pasting (scaled, placed, intensity-matched, feathered).
5. ``planner``: a reproducible JSONL plan that reaches per-class targets within a budget.
6. ``generator``: the augmented data set, in parallel and resumable.
7. ``report``: counts before/after and the two correlation matrices side by side.
8. ``recipe`` (one composition as a plan item, rendered bit for bit as ``generate`` makes it),
   ``model_check`` (the ensemble on original vs composite, per member and level) and
   ``efficacy`` (patch scores under a model, stored in the library).

``fpsm dadam import|library|export|cooc|plan|generate|report|score`` drives it from the command line.
"""

from fpsm_core.dadam.boxes import Box, BoxSet, merge_readers, nih_spacing, read_boxes
from fpsm_core.dadam.composition import (
    LUNG_FIELD_CLASSES,
    Composition,
    PatchSpec,
    Placement,
    compose,
    estimate_lung_mask,
    feather_weights,
)
from fpsm_core.dadam.cooc import (
    MatrixDistance,
    correlation_matrix,
    matrix_distance,
    most_correlated,
)
from fpsm_core.dadam.curation import ChangeSet, HistoryEntry, PatchQuery
from fpsm_core.dadam.duplicates import DuplicateGroup
from fpsm_core.dadam.editing import Edit, SourceBox
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.generator import GenerateReport, generate
from fpsm_core.dadam.importer import ImportReport, import_boxes
from fpsm_core.dadam.library import STATES, Patch, PatchLibrary, Provenance
from fpsm_core.dadam.planner import Plan, PlanItem, PlannedPatch, make_plan, read_plan, write_plan
from fpsm_core.dadam.report import DadamReport, write_report
from fpsm_core.dadam.table import LabelTable, read_labels_csv, write_labels_csv

__all__ = [
    "LUNG_FIELD_CLASSES",
    "STATES",
    "Box",
    "BoxSet",
    "ChangeSet",
    "Composition",
    "DadamError",
    "DadamReport",
    "DuplicateGroup",
    "Edit",
    "GenerateReport",
    "HistoryEntry",
    "ImportReport",
    "LabelTable",
    "MatrixDistance",
    "Patch",
    "PatchLibrary",
    "PatchQuery",
    "PatchSpec",
    "Placement",
    "Plan",
    "PlanItem",
    "PlannedPatch",
    "Provenance",
    "SourceBox",
    "compose",
    "correlation_matrix",
    "estimate_lung_mask",
    "feather_weights",
    "generate",
    "import_boxes",
    "make_plan",
    "matrix_distance",
    "merge_readers",
    "most_correlated",
    "nih_spacing",
    "read_boxes",
    "read_labels_csv",
    "read_plan",
    "write_labels_csv",
    "write_plan",
    "write_report",
]
