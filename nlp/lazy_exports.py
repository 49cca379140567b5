"""Package plumbing shared by ``nlp`` and ``churn``: the distribution's version and names imported on first use."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version


def distribution_version() -> str:
    try:
        return version("cxm")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` (PEP 562) for ``{name: module}``: importing the
    package stays cheap, and a name's module (torch, scikit-learn behind it) loads when first asked."""

    def __getattr__(name: str) -> object:
        if name in exports:
            return getattr(import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(import_module(package)), *exports})

    return __getattr__, __dir__
