"""Explanations of FPSM predictions: per-level Grad-CAM, package CAMs, localisation metrics.

The per-level maps come in closed form from one forward pass (:mod:`.closed_form`), are kept
low-resolution in a :class:`CamSet` and normalised or fused on demand; a :class:`ResultCams` is
the one object for an inference result's maps, mapped back onto the image, that the viewer and the
CAM files share. Methods without a closed form go through the grad-cam package (:mod:`.package`,
imported lazily: it pulls in matplotlib).
"""

from typing import TYPE_CHECKING

from fpsm_core.explain.camset import CamSet, ensemble_camset
from fpsm_core.explain.errors import ExplainError
from fpsm_core.explain.metrics import (
    LocalisationScores,
    box_iou,
    box_mask,
    energy_in_box,
    localisation_scores,
    pointing_game,
    pointing_region,
    scale_boxes,
)
from fpsm_core.explain.normalise import minmax_like_gradcam, normalise_like_gradcam, resize_maps
from fpsm_core.explain.output import CamFiles, overlay, write_cam_outputs, write_result_cams
from fpsm_core.explain.result_cams import (
    ENSEMBLE,
    FUSED,
    ImageMaps,
    LevelKey,
    LevelShare,
    ResultCams,
    level_shares,
)
from fpsm_core.lazy import lazy_exports

if TYPE_CHECKING:  # torch-bearing: imported on first use, so the viewer starts without torch
    from fpsm_core.explain.closed_form import (
        cams_from_output,
        compute_cams,
        fused_cam,
        level_cams,
        level_contributions,
        raw_level_cams,
        resolve_classes,
    )
    from fpsm_core.explain.package import METHODS, package_cams

__getattr__ = lazy_exports(
    __name__,
    {
        "fpsm_core.explain.closed_form": (
            "cams_from_output",
            "compute_cams",
            "fused_cam",
            "level_cams",
            "level_contributions",
            "raw_level_cams",
            "resolve_classes",
        ),
        "fpsm_core.explain.package": ("METHODS", "package_cams"),
    },
)

__all__ = [
    "ENSEMBLE",
    "FUSED",
    "METHODS",
    "CamFiles",
    "CamSet",
    "ExplainError",
    "ImageMaps",
    "LevelKey",
    "LevelShare",
    "ResultCams",
    "LocalisationScores",
    "box_iou",
    "box_mask",
    "energy_in_box",
    "localisation_scores",
    "overlay",
    "pointing_game",
    "pointing_region",
    "scale_boxes",
    "write_cam_outputs",
    "write_result_cams",
    "cams_from_output",
    "compute_cams",
    "ensemble_camset",
    "fused_cam",
    "level_cams",
    "level_contributions",
    "level_shares",
    "minmax_like_gradcam",
    "normalise_like_gradcam",
    "package_cams",
    "raw_level_cams",
    "resize_maps",
    "resolve_classes",
]
