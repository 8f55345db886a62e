"""The FPSM desktop viewer (PySide6 + pyqtgraph): worklist, diagnostic image view, AI findings.

Run it with ``fpsm-viewer [PATH]`` or ``python -m viewer``. The viewer talks to :mod:`fpsm_core`
only through its services (image I/O, the inference service, the CAM engine), off the GUI thread.
"""
