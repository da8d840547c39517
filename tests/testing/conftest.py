"""Fixtures for the test server's own tests: servers that are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from est_hw.testing import EstTestServer, ServerConfig, TestCa

StartServer = Callable[..., EstTestServer]


@pytest.fixture(scope="session")
def shared_ca() -> TestCa:
    """One CA for the session: creating one is cheap, but there is no need to."""
    return TestCa.create("est-hw server tests")


@pytest.fixture
def start_server(shared_ca: TestCa) -> Iterator[StartServer]:
    """``start_server(**config_fields)`` -> a running server, stopped after the test."""
    started: list[EstTestServer] = []

    def start(ca: TestCa | None = None, **fields: Any) -> EstTestServer:
        server = EstTestServer(ServerConfig(**fields), ca or shared_ca)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: StartServer) -> EstTestServer:
    """A server with the default, strict configuration."""
    return start_server()
