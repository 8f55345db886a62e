"""Contact sheets of simulated cases, for the documentation and for looking at the simulator.

``python -m fpsm_core.sim.gallery OUT_DIR`` writes the three pictures that ``docs/simulator.md``
shows: random cases as they come, one case per finding with its boxes, and crops that compare the
sizes of findings. Everything is drawn with OpenCV on the simulator's own output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fpsm_core.labels import LABELS
from fpsm_core.sim.config import SimConfig
from fpsm_core.sim.simulate import SimCase, simulate_case

BOX_COLOUR = (40, 40, 230)  # BGR
TEXT_COLOUR = (40, 230, 230)


def render(case: SimCase, boxes: bool = True, caption: str | None = None) -> np.ndarray:
    """The case as an 8-bit BGR picture, with its boxes and a caption when asked."""
    picture = cv2.cvtColor(np.rint(case.image * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    if boxes:
        for b in case.boxes:
            cv2.rectangle(picture, (b.x0, b.y0), (b.x1 - 1, b.y1 - 1), BOX_COLOUR, 1)
    if caption:
        scale = max(0.8, picture.shape[0] / 420)
        cv2.putText(
            picture,
            caption,
            (4, int(16 * scale) + 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45 * scale,
            TEXT_COLOUR,
            1,
            cv2.LINE_AA,
        )
    return picture


def grid(tiles: Sequence[np.ndarray], columns: int) -> np.ndarray:
    """Tiles of one size in rows of ``columns`` (the last row padded with black)."""
    blank = np.zeros_like(tiles[0])
    padded = list(tiles) + [blank] * (-len(tiles) % columns)
    rows = [np.hstack(padded[i : i + columns]) for i in range(0, len(padded), columns)]
    return np.vstack(rows)


def findings_sheet(size: int = 128, seed: int = 1, columns: int = 5) -> np.ndarray:
    """One case per finding (forced), boxes drawn, the label as caption."""
    config = SimConfig(size=size)
    tiles = []
    for i, name in enumerate(n for n in LABELS if n != "No Finding"):
        case = simulate_case((seed, i), config, labels=[name])
        tiles.append(render(case, caption=name))
    return grid(tiles, columns)


def cases_sheet(size: int = 288, seed: int = 0, n: int = 3) -> np.ndarray:
    """Random cases as the data set draws them, without boxes, positives as caption."""
    config = SimConfig(size=size)
    tiles = []
    for i in range(n):
        case = simulate_case((seed, i), config)
        caption = ", ".join(p for p in case.positive())[:48]
        tiles.append(render(case, boxes=False, caption=caption))
    return grid(tiles, n)


def sizes_sheet(size: int = 512, seed: int = 3) -> np.ndarray:
    """Same-scale crops around a nodule, a mass, an effusion and a pneumothorax."""
    config = SimConfig(size=size)
    tiles = []
    half = size // 5
    for i, name in enumerate(("Nodule", "Mass", "Pleural Effusion", "Pneumothorax")):
        case = simulate_case((seed, i), config, labels=[name])
        box = next(b for b in case.boxes if b.label == name)
        cx, cy = (box.x0 + box.x1) // 2, (box.y0 + box.y1) // 2
        if name == "Pneumothorax":  # look at the apex, where the pleural line is
            cx = box.x0 + half * 3 // 4 if cx < size // 2 else box.x1 - half * 3 // 4
            cy = box.y0 + half
        x0, y0 = (
            int(np.clip(cx - half, 0, size - 2 * half)),
            int(np.clip(cy - half, 0, size - 2 * half)),
        )
        crop = render(case)[y0 : y0 + 2 * half, x0 : x0 + 2 * half]
        crop = cv2.resize(crop, (240, 240), interpolation=cv2.INTER_AREA)
        cv2.putText(
            crop, name, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT_COLOUR, 1, cv2.LINE_AA
        )
        tiles.append(crop)
    return grid(tiles, 4)


def _palette_image(picture: np.ndarray) -> Image.Image:
    """Greys in steps of 6 plus the box and caption colours: small files for noisy pictures."""
    greys = [(v, v, v) for v in range(0, 256, 6)]
    colours = greys + [BOX_COLOUR[::-1], TEXT_COLOUR[::-1]]
    palette = Image.new("P", (1, 1))
    palette.putpalette([c for rgb in colours for c in rgb] + [0] * 3 * (256 - len(colours)))
    rgb = Image.fromarray(cv2.cvtColor(picture, cv2.COLOR_BGR2RGB))
    return rgb.quantize(palette=palette, dither=Image.Dither.NONE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the simulator's documentation pictures.")
    parser.add_argument(
        "out", type=Path, help="folder for sim_cases.png, sim_findings.png, sim_sizes.png"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, picture in (
        ("sim_cases.png", cases_sheet()),
        ("sim_findings.png", findings_sheet()),
        ("sim_sizes.png", sizes_sheet()),
    ):
        _palette_image(picture).save(args.out / name, optimize=True)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
