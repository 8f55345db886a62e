"""The FRACTIONAL Segmentation: each level's CAM of the top findings, on the source's pixel grid.

One segment per (finding, level), labelled "<finding> L<level>", its fractional value the level's
Grad-CAM-normalised map (0..1 stored as 0..255). Only the top findings go in (default three): 26
findings x 3 levels of a 1024 px film would be 80 MB. highdicom's Parametric Map would be the
natural home for real-valued maps, but it needs a frame of reference that a projection
radiograph does not have; a fractional Segmentation references the image directly.
"""

from __future__ import annotations

from typing import Any

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from fpsm_core.export import codes
from fpsm_core.export.common import MANUFACTURER, finish, series_number
from fpsm_core.export.evidence import Evidence
from fpsm_core.export.source import ExportSource, describe_model

ABNORMAL = CodedConcept("49755003", "SCT", "Morphologically abnormal structure")


def segmentation(result: Any, source: ExportSource, ev: Evidence, top_k: int = 3) -> Dataset:
    """The Segmentation data set for one result's per-level CAMs."""
    name, version, _, disclaimer = describe_model(result)
    algorithm = hd.AlgorithmIdentificationSequence(name=name[:64], family=codes.AI, version=version)
    descriptions: list[hd.seg.SegmentDescription] = []
    planes: list[np.ndarray] = []
    for finding in result.findings[:top_k]:
        for j, level in enumerate(ev.levels):
            descriptions.append(
                hd.seg.SegmentDescription(
                    segment_number=len(descriptions) + 1,
                    segment_label=f"{finding.label} L{level}"[:64],
                    segmented_property_category=ABNORMAL,
                    segmented_property_type=codes.finding_code(finding.label),
                    algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                    algorithm_identification=algorithm,
                    tracking_uid=generate_uid(),
                    tracking_id=f"{finding.label} level {level}"[:64],
                )
            )
            planes.append(ev.level_maps[finding.index, j])
    pixels = np.stack(planes, axis=-1)[None].astype(np.float32)  # (1, rows, cols, segments)
    seg = hd.seg.Segmentation(
        source_images=[source.dataset],
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=series_number(source, "seg"),
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=name[:64],
        software_versions=version,
        device_serial_number="0",
        fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
        max_fractional_value=255,
        content_label="AI_CAMS",
        content_description=f"Per-level Grad-CAMs of {name}"[:64],
        omit_empty_frames=False,
    )
    return finish(seg, source, f"AI result {name} (SEG)", image=True, disclaimer=disclaimer)
