"""Import tlslite-ng's TLS engine without the integrations its package ``__init__`` loads.

``import tlslite`` runs ``tlslite/__init__.py``, which does ``from tlslite.api import *``;
``tlslite.api`` imports every integration tlslite ships (asyncio, asyncore, xmlrpc,
smtplib, imaplib, poplib, http.client), about half of tlslite's import time and none of it
used by est-hw, which needs only the connection, message, settings and X.509 modules.

Importing this module runs :func:`install`, which registers the ``tlslite`` package in
:data:`sys.modules` without running its ``__init__``, so ``import tlslite.tlsconnection``
loads just that module and what it imports.  The package keeps a module ``__getattr__``:
code that later asks the package itself for a name (``from tlslite import TLSConnection``)
gets the full ``tlslite.api`` then, so nothing else in the process breaks.  When
``tlslite`` is already imported, the real package stays.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings

PACKAGE = "tlslite"
_PUBLIC_DUNDERS = frozenset({"__all__", "__version__"})


def install() -> None:
    """Make ``tlslite`` an importable package whose ``__init__`` has not run (idempotent).

    :raises ImportError: tlslite-ng is not installed.
    """
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("tlslite-ng is not installed (pip install tlslite-ng)")
    package = importlib.util.module_from_spec(spec)
    package.__getattr__ = _complete_package  # type: ignore[method-assign]
    sys.modules[PACKAGE] = package


def _complete_package(name: str) -> object:
    """PEP 562 fallback: a submodule (``from tlslite import mathtls``) when there is one,
    else a name of the package's public API, from ``tlslite.api``."""
    if name.startswith("__") and name not in _PUBLIC_DUNDERS:  # probes by tools
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
    if importlib.util.find_spec(f"{PACKAGE}.{name}") is not None:
        return importlib.import_module(f"{PACKAGE}.{name}")
    with warnings.catch_warnings():
        # tlslite.api imports the deprecated asyncore module for an integration.
        warnings.simplefilter("ignore", DeprecationWarning)
        api: types.ModuleType = importlib.import_module(f"{PACKAGE}.api")
    try:
        return getattr(api, name)
    except AttributeError:
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None


install()
