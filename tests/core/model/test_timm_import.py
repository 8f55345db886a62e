"""Loading and running a model never imports TorchDynamo, sympy or triton (issue 21, memory).

They cost ~160 MiB and ~1.2 s in every process that loads a model (see
:mod:`fpsm_core.model.timm_import`). Each check runs in a fresh interpreter, since the test
process may have imported them already, and reports what was imported at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fpsm_core.model import Preprocessing, create_fpsm, save_checkpoint, write_ensemble
from fpsm_core.model.materialise import build_on_meta

REPO = Path(__file__).resolve().parents[3]
COMPILER = ("torch._dynamo", "torch._inductor", "sympy", "triton")


def run_fresh(code: str, tmp_path: Path) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; returns the JSON it printed on its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two float16 members (one with the synthetic embedding): a blur-pool backbone and TResNet."""
    root = tmp_path_factory.mktemp("ens")
    paths = []
    for i, backbone in enumerate(("resnetblur18", "tresnet_m")):
        torch.manual_seed(i)
        model = create_fpsm(backbone, levels=(4, 3, 2), synthetic_embedding=(i == 0))
        paths.append(
            save_checkpoint(
                model,
                root / f"m{i}",
                name=f"m{i}",
                preprocessing=Preprocessing(input_size=64),
                untrained=True,
                dtype="float16",
            )
        )
    return write_ensemble(root, paths, name="two").parent


def test_loading_and_running_an_ensemble_imports_no_compiler(
    ensemble: Path, tmp_path: Path
) -> None:
    image = tmp_path / "film.png"
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((96, 80)) * 255).astype(np.uint8)).save(image)
    code = (
        "import json, sys\n"
        "from fpsm_core.inference import InferenceService\n"
        "from fpsm_core.io import load_image\n"
        f"service = InferenceService({str(ensemble)!r}, device='cpu', batch_size=1)\n"
        f"result = service.predict([load_image({str(image)!r})], cams=True)[0]\n"
        f"print(json.dumps({{'modules': [m for m in {COMPILER!r} if m in sys.modules],\n"
        "    'findings': len(result.findings), 'timm': 'timm' in sys.modules}))\n"
    )
    out = run_fresh(code, tmp_path)
    assert out["timm"] is True and out["findings"] == 26
    assert out["modules"] == [], f"imported {out['modules']} to load and run a model"


def test_torchvision_ops_still_reach_the_real_compiler_check(tmp_path: Path) -> None:
    """roi_align keeps a deferred ``is_compile_supported``: it runs and gives the right values."""
    code = (
        "import json, sys, torch\n"
        "from fpsm_core.model.timm_import import timm\n"
        "import torchvision\n"
        "before = 'torch._dynamo' in sys.modules\n"
        "x = torch.full((1, 1, 8, 8), 3.0)\n"
        "box = [torch.tensor([[0.0, 0.0, 4.0, 4.0]])]\n"
        "y = torchvision.ops.roi_align(x, box, 2)\n"
        "from torchvision.ops import roi_align as mod\n"
        "supported = sys.modules['torchvision.ops.roi_align'].is_compile_supported('cpu')\n"
        "import torch._dynamo.utils as real\n"
        "print(json.dumps({'before': before, 'values': y.flatten().tolist(),\n"
        "    'supported': supported, 'same': supported == real.is_compile_supported('cpu'),\n"
        "    'counters': hasattr(real, 'counters')}))\n"
    )
    out = run_fresh(code, tmp_path)
    assert out["before"] is False
    assert out["values"] == [3.0, 3.0, 3.0, 3.0]
    assert out["same"] is True and out["counters"] is True


def test_a_compiler_import_meanwhile_gets_the_real_module(tmp_path: Path) -> None:
    """Another thread importing TorchDynamo while timm is imported gets the real one."""
    code = (
        "import json, sys, torch\n"
        "from fpsm_core.model.timm_import import dynamo_deferred\n"
        "with dynamo_deferred():\n"
        "    import torch._dynamo\n"
        "    from torch._dynamo.utils import counters\n"
        "real = sys.modules['torch._dynamo.utils']\n"
        "print(json.dumps({'real': hasattr(real, 'counters') and real.__file__.endswith('.py'),\n"
        "    'compile': torch.compiler.disable.__module__}))\n"
    )
    out = run_fresh(code, tmp_path)
    assert out == {"real": True, "compile": "torch.compiler"}


def test_functions_timm_marks_not_to_compile_still_run(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from fpsm_core.model.timm_import import timm\n"
        "from timm.layers import disable_compiler\n"
        "@disable_compiler\n"
        "def double(x):\n"
        "    return 2 * x\n"
        "before = 'torch._dynamo' in sys.modules\n"
        "print(json.dumps({'before': before, 'value': double(21), 'name': double.__name__}))\n"
    )
    assert run_fresh(code, tmp_path) == {"before": False, "value": 42, "name": "double"}


def test_a_meta_build_has_the_plain_build_s_parameters() -> None:
    """Skipping the initialisers on meta tensors leaves names, shapes, dtypes and flags alone."""
    torch.manual_seed(0)
    plain = create_fpsm("tresnet_m", levels=(4, 3, 2), synthetic_embedding=True)
    meta = build_on_meta(
        lambda: create_fpsm("tresnet_m", levels=(4, 3, 2), synthetic_embedding=True)
    )

    def describe(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype, bool]]:
        tensors = [*model.named_parameters(), *model.named_buffers()]
        return [(n, tuple(t.shape), t.dtype, t.requires_grad) for n, t in tensors]

    assert describe(meta) == describe(plain)
    assert all(t.is_meta for t in meta.parameters())


def test_torch_compile_still_works_after_the_deferred_import(tmp_path: Path) -> None:
    """Training's ``--compile`` imports TorchDynamo for real after timm was imported lean."""
    code = (
        "import json, torch\n"
        "from fpsm_core.model import create_fpsm\n"
        "torch.manual_seed(0)\n"
        "model = create_fpsm('resnet18', levels=(4, 3)).eval()\n"
        "x = torch.rand(1, 3, 64, 64)\n"
        "compiled = torch.compile(model, backend='eager')\n"
        "with torch.no_grad():\n"
        "    same = torch.allclose(model(x), compiled(x), atol=1e-6)\n"
        "import sys\n"
        "print(json.dumps({'same': bool(same), 'dynamo': 'torch._dynamo' in sys.modules}))\n"
    )
    assert run_fresh(code, tmp_path) == {"same": True, "dynamo": True}
