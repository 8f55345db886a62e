"""Settings every test needs before anything heavy is imported.

Qt must render offscreen and timm must never reach for a hub; both are environment variables that
have to be set before the libraries read them.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
