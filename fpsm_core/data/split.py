"""Train/validation splits that keep a patient's images on one side.

MIMIC-CXR has several studies per patient; a random image-level split lets a model meet the same
patient in training and validation and flatters its scores. Splitting by patient is therefore the
default. The paper split its data 80/20 at random, which ``by="random"`` reproduces.
"""

from __future__ import annotations

import numpy as np

from fpsm_core.data.records import DatasetError, RecordSet

SPLITS = ("patient", "random")


def split_records(
    records: RecordSet, val_fraction: float = 0.2, by: str = "patient", seed: int = 0
) -> tuple[RecordSet, RecordSet]:
    """Split into (train, validation), deterministic for a seed.

    Args:
        val_fraction: share of patients (``by="patient"``) or images (``by="random"``) for
            validation.
        by: ``"patient"`` or ``"random"``.
    """
    if by not in SPLITS:
        raise DatasetError(f"unknown split {by!r}; use 'patient' or 'random'.")
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must lie between 0 and 1, not {val_fraction}.")
    if len(records) < 2:
        raise DatasetError(f"{records.source} has {len(records)} image(s); too few to split.")
    rng = np.random.default_rng(seed)
    if by == "random":
        order = rng.permutation(len(records))
        n_val = min(len(records) - 1, max(1, round(len(records) * val_fraction)))
        val_mask = np.zeros(len(records), dtype=bool)
        val_mask[order[:n_val]] = True
    else:
        patients, inverse = np.unique(
            np.asarray(records.patient_ids, dtype=object), return_inverse=True
        )
        if len(patients) < 2:
            raise DatasetError(
                f"{records.source} has a single patient; a patient split needs two "
                "(use split: random)."
            )
        order = rng.permutation(len(patients))
        n_val = min(len(patients) - 1, max(1, round(len(patients) * val_fraction)))
        val_patients = np.zeros(len(patients), dtype=bool)
        val_patients[order[:n_val]] = True
        val_mask = val_patients[inverse]
    return records.subset(np.flatnonzero(~val_mask)), records.subset(np.flatnonzero(val_mask))
