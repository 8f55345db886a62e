"""``python -m viewer``: the same as the ``fpsm-viewer`` command."""

import sys

from viewer.app import main

sys.exit(main())
