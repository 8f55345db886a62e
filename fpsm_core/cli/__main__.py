"""``python -m fpsm_core.cli``: the same as the ``fpsm`` command (and what ``torchrun -m`` runs)."""

import sys

from fpsm_core.cli.main import main

if __name__ == "__main__":  # importing the module (a package walk) must not run the command
    sys.exit(main())
