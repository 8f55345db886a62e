"""Write a simulated chest film and a sheet of measurements on it into a study index.

Used for the documentation's screenshot: ``python tools/measurements_demo.py OUT`` writes
``OUT/film.dcm`` and ``OUT/cache/study_index.sqlite3``; then
``FPSM_CACHE_DIR=OUT/cache fpsm-viewer OUT/film.dcm --screenshot docs/img/measurements.png``
opens the film with the measurements restored from the index. The CTR spans are the simulator's
true border points.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fpsm_core.annotations import AnnotationStore, Sheet, image_key, new_annotation
from fpsm_core.io import load_image
from fpsm_core.sim import SimConfig, case_ids, simulate_case
from fpsm_core.sim.writer import write_dicom


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    seed, index = 11, 2
    config = SimConfig(size=1024, seed=seed)
    case = simulate_case((seed, index), config, labels=["Cardiomegaly", "Nodule"])
    film = out / "film.dcm"
    write_dicom(film, case, case_ids(seed, index), seed, index)
    (c0, c1), (t0, t1) = case.cardiac_span, case.thoracic_span
    s = 1024 / 512
    sheet = Sheet(
        (
            new_annotation("ctr", [c0, (c1[0], c0[1]), t0, (t1[0], t0[1])]),
            new_annotation("length", [(430 * s, 60 * s), (430 * s, 180 * s)], "trachea"),
            new_annotation("ellipse", [(120 * s, 170 * s), (185 * s, 225 * s)]),
            new_annotation("angle", [(60 * s, 440 * s), (95 * s, 395 * s), (150 * s, 430 * s)]),
            new_annotation("arrow", [(420 * s, 250 * s), (360 * s, 200 * s)], "check this"),
            new_annotation("text", [(40 * s, 40 * s)], "Compare with prior"),
        )
    )
    with AnnotationStore(out / "cache" / "study_index.sqlite3") as store:
        store.save(image_key(load_image(film)), sheet, film)
    print(f"{film}: true CTR {case.film_ctr:.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
