"""Fixtures shared by every test: real SoftHSM2 tokens in a private token directory."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOFTHSM_MODULE = os.environ.get("EST_HW_TEST_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
USER_PIN = "1234"
SO_PIN = "12345678"
_token_numbers = itertools.count(1)


@dataclass(frozen=True)
class SoftHsmToken:
    """A freshly initialised SoftHSM2 token (throwaway PINs, never real secrets)."""

    label: str
    pin: str
    so_pin: str
    module: str
    conf: Path


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private SoftHSM2 token directory; SOFTHSM2_CONF points at it for the session."""
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    template = (REPO / "softhsm" / "softhsm2.conf.in").read_text()
    conf = base / "softhsm2.conf"
    conf.write_text(template.replace("@TOKENDIR@", str(base / "tokens")))
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    yield conf
    if old is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = old


def init_softhsm_token(conf: Path, label: str) -> SoftHsmToken:
    """Initialise a token labelled ``label`` in the next free slot of ``conf``."""
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label,
         "--so-pin", SO_PIN, "--pin", USER_PIN],
        check=True, capture_output=True, env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )  # fmt: skip
    # python-pkcs11's lib is a per-path singleton that lists slots once: rescan.
    import pkcs11

    pkcs11.lib(SOFTHSM_MODULE).reinitialize()
    return SoftHsmToken(label, USER_PIN, SO_PIN, SOFTHSM_MODULE, conf)


@pytest.fixture
def softhsm_token(softhsm_conf: Path) -> SoftHsmToken:
    """A fresh, empty SoftHSM2 token with a unique label."""
    return init_softhsm_token(softhsm_conf, f"est-test-{next(_token_numbers)}")
