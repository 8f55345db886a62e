"""``python -m fpsm_core.cli``: the ``fpsm`` command (what ``torchrun -m fpsm_core.cli`` runs)."""

import sys

from fpsm_core.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
