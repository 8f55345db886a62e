"""Lazy package exports: a package names what it offers without importing torch to say so.

A package ``__init__`` that imported every submodule would make ``from fpsm_core.explain import
LevelKey`` (a tuple alias the viewer needs at start-up) import torch and timm, ~4 s and ~700 MiB
before the window shows (issue 21). Packages whose submodules need torch therefore import those
submodules on first use of one of their names (PEP 562 module ``__getattr__``), and import the
same names under ``TYPE_CHECKING`` so type checkers and readers see one plain export list.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]]) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports a name's submodule the first time it is asked for.

    Args:
        package: The package's ``__name__``.
        exports: Submodule (full dotted name) -> the names it exports through the package.

    Returns:
        The function to assign to the package's ``__getattr__``; a name it resolves is cached
        on the package, so later look-ups are plain attribute reads.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
