"""Pixel exports refuse BurnedInAnnotation YES unless allowed (issue 22, class 1).

``fpsm infer --cams --out`` wrote overlay PNGs and ``.npz`` maps of such films without asking.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from fpsm_core.cli.main import main
from tests.core.helpers import chest_like, tiny_ensemble, write_dicom


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_ensemble(tmp_path_factory.mktemp("model") / "ens", n=1)


def _films(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True)
    clean = write_dicom(folder / "clean.dcm", chest_like(96, 80, seed=1))
    burned = write_dicom(folder / "burned.dcm", chest_like(96, 80, seed=2))
    ds = pydicom.dcmread(burned)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(burned)
    return clean, burned


def test_infer_cams_refuses_burned_in_pixels_and_goes_on(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean, burned = _films(tmp_path / "in")
    out = tmp_path / "out"
    status = main(["infer", str(clean), str(burned), "--model", str(model_dir), "--cams",
                   "--out", str(out), "--json"])  # fmt: skip
    assert status == 1
    written = sorted(p.name for p in out.iterdir())
    assert any(n.startswith("clean_") for n in written)
    assert not any(n.startswith("burned") for n in written), written
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "burned.dcm" in err[0] and "BurnedInAnnotation is YES" in err[0]
    assert "Traceback" not in "".join(err)


def test_infer_cams_writes_burned_in_pixels_when_allowed(model_dir: Path, tmp_path: Path) -> None:
    _, burned = _films(tmp_path / "in")
    out = tmp_path / "out"
    status = main(["infer", str(burned), "--model", str(model_dir), "--cams", "--out", str(out),
                   "--json", "--allow-burned-in"])  # fmt: skip
    assert status == 0
    assert any(p.name.startswith("burned_") and p.suffix == ".png" for p in out.iterdir())
