"""A real RFC 7030 test server with a throwaway CA, for the tests and ``make demo``.

It uses only the stdlib and ``cryptography`` and never imports ``est_hw.est`` or
``est_hw.tls``: the client is always tested against an independent implementation.

``ServerConfig(misbehaviour=...)`` (or ``--misbehave NAME``) makes it one of many kinds of
broken or hostile server instead (:mod:`est_hw.testing.misbehaviour`,
docs/hostile-servers.md).

Names are imported lazily, so ``python -m est_hw.testing.server`` runs without warnings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from est_hw.testing.ca import TestCa
    from est_hw.testing.config import Quirk, RequestRecord, Response, ServerConfig
    from est_hw.testing.hostile_net import PlainListener
    from est_hw.testing.misbehaviour import Misbehaviour
    from est_hw.testing.process import ServerProcess, start_server_process
    from est_hw.testing.server import EstTestServer

__all__ = [
    "EstTestServer",
    "Misbehaviour",
    "PlainListener",
    "Quirk",
    "RequestRecord",
    "Response",
    "ServerConfig",
    "ServerProcess",
    "TestCa",
    "start_server_process",
]

_HOMES = {
    "TestCa": "ca",
    "Misbehaviour": "misbehaviour",
    "PlainListener": "hostile_net",
    "Quirk": "config",
    "RequestRecord": "config",
    "Response": "config",
    "ServerConfig": "config",
    "ServerProcess": "process",
    "start_server_process": "process",
    "EstTestServer": "server",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
