"""Finding a token: load a PKCS#11 module, list its slots, select one token.

PKCS#11 v2.40 base section 5.5 (``C_GetSlotList``, ``C_GetTokenInfo``): a module has slots,
a slot may hold a token, and a token has a label, serial number, manufacturer and model.
:class:`TokenSelector` matches on those and on the ``CK_SLOT_ID``; exactly one initialised
token must match.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pkcs11

from est_hw.errors import TokenError, TokenNotFoundError, UsageError
from est_hw.keys.uri import Pkcs11Uri

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib


@dataclass(frozen=True)
class TokenSelector:
    """Which token of which PKCS#11 module to open; unset fields match anything.

    :param module: path of the PKCS#11 module (``.so``).
    :param slot: the ``CK_SLOT_ID`` as ``pkcs11-tool -L`` prints it (``Slot 0 (0x5e1...)``
        has id ``0x5e1...``; pass the number, not the index).
    :param token_label: ``CK_TOKEN_INFO.label``.
    :param serial: ``CK_TOKEN_INFO.serialNumber``.
    :param manufacturer: ``CK_TOKEN_INFO.manufacturerID``.
    :param model: ``CK_TOKEN_INFO.model``.
    """

    module: str
    slot: int | None = None
    token_label: str | None = None
    serial: str | None = None
    manufacturer: str | None = None
    model: str | None = None

    @classmethod
    def from_uri(cls, uri: Pkcs11Uri, module: str | None = None) -> TokenSelector:
        """The selector a PKCS#11 URI (RFC 7512 section 2.3) describes.

        ``module`` is used when the URI has no ``module-path``.  An attribute with an empty
        value selects nothing (it matches any token).

        :raises UsageError: without a module, or for ``library-*``/``slot-description``/
            ``slot-manufacturer`` attributes, which est-hw does not match on.
        """
        unsupported = [
            name
            for name, value in (
                ("library-manufacturer", uri.library_manufacturer),
                ("library-description", uri.library_description),
                ("library-version", uri.library_version),
                ("slot-manufacturer", uri.slot_manufacturer),
                ("slot-description", uri.slot_description),
            )
            if value
        ]
        if unsupported:
            raise UsageError(
                f"PKCS#11 URI attribute {unsupported[0]} is not supported for selecting a "
                "token; use token, serial or slot-id"
            )
        path = uri.module_path or module
        if not path:
            raise UsageError("no PKCS#11 module: give module-path in the URI or --module")
        return cls(
            module=path,
            slot=uri.slot_id,
            token_label=uri.token or None,
            serial=uri.serial or None,
            manufacturer=uri.manufacturer or None,
            model=uri.model or None,
        )

    def describe(self) -> str:
        """The selection in words, for error messages."""
        parts = [
            f"{name} {value!r}" if isinstance(value, str) else f"slot {value:#x}"
            for name, value in (
                ("label", self.token_label),
                ("serial", self.serial),
                ("manufacturer", self.manufacturer),
                ("model", self.model),
                ("slot", self.slot),
            )
            if value is not None
        ]
        return ", ".join(parts) if parts else "any token"


@dataclass(frozen=True)
class TokenInfo:
    """A token present in a slot (``CK_TOKEN_INFO``, ``CK_SLOT_ID``).

    :param initialized: ``CKF_TOKEN_INITIALIZED``; SoftHSM always shows one empty token.
    """

    slot: int
    label: str
    serial: str
    manufacturer: str
    model: str
    initialized: bool = True


_module_locks: dict[str, threading.RLock] = {}
_module_locks_guard = threading.Lock()


def module_lock(module: str) -> threading.RLock:
    """The lock that every call into ``module`` takes, process-wide.

    python-pkcs11 initialises a module with ``C_Initialize(NULL_PTR)``, which promises the
    module that the application does not call it from several threads at once (PKCS#11
    v2.40 base section 5.4; SoftHSM then switches its own locking off).  Concurrent
    provisioning keeps that promise by serialising the calls; the network work between
    them still overlaps.
    """
    key = os.path.realpath(module) if "/" in module else module
    with _module_locks_guard:
        return _module_locks.setdefault(key, threading.RLock())


def list_tokens(module: str) -> list[TokenInfo]:
    """The tokens present in the slots of ``module`` (``C_GetSlotList(CK_TRUE)``)."""
    with module_lock(module):
        return [info for info, _ in _tokens(load_module(module), module)]


def load_module(module: str) -> Pkcs11Lib:
    """Load (once per process, python-pkcs11 caches it) and initialise a PKCS#11 module.

    :raises TokenError: naming ``module`` when it is missing or is not a PKCS#11 module.
    """
    if "/" in module and not Path(module).is_file():
        raise TokenError(f"cannot load the PKCS#11 module {module}: no such file")
    try:
        return pkcs11.lib(module)
    except (pkcs11.PKCS11Error, OSError) as exc:
        raise TokenError(f"cannot load the PKCS#11 module {module} ({exc})") from exc


def _tokens(
    lib: Pkcs11Lib, module: str, only_slot: int | None = None
) -> list[tuple[TokenInfo, pkcs11.Token]]:
    """The tokens present (``C_GetTokenInfo`` of each), or of ``only_slot`` alone."""
    result = []
    try:
        for slot in lib.get_slots(token_present=True):
            if only_slot is not None and slot.slot_id != only_slot:
                continue
            token = slot.get_token()
            info = TokenInfo(
                slot=slot.slot_id,
                label=token.label,
                serial=token.serial.decode("ascii", "replace").strip(),
                manufacturer=token.manufacturer_id,
                model=token.model,
                initialized=bool(token.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED),
            )
            result.append((info, token))
    except pkcs11.PKCS11Error as exc:
        raise TokenError(f"listing the tokens of {module} failed ({type(exc).__name__})") from exc
    return result


def select_token(lib: Pkcs11Lib, selector: TokenSelector) -> tuple[TokenInfo, pkcs11.Token]:
    """The one initialised token of ``lib`` that ``selector`` matches.

    :raises TokenNotFoundError: none matches (the message lists the labels present), more
        than one does (it lists them and asks to pick one), or only an empty token does.
    """
    # With a slot, only its token is read.  Other processes (``provision --jobs N``) may be
    # rewriting the other tokens' files, and SoftHSM fails C_GetTokenInfo on a token it
    # read mid-write with CKR_GENERAL_ERROR, then for good in this process.
    tokens = _tokens(lib, selector.module, selector.slot)
    wanted = selector.describe()
    matches = [
        (info, token)
        for info, token in tokens
        if (selector.slot is None or info.slot == selector.slot)
        and (selector.token_label is None or info.label == selector.token_label)
        and (selector.serial is None or info.serial == selector.serial)
        and (selector.manufacturer is None or info.manufacturer == selector.manufacturer)
        and (selector.model is None or info.model == selector.model)
    ]
    usable = [(info, token) for info, token in matches if info.initialized]
    if len(usable) == 1:
        return usable[0]
    if len(usable) > 1:
        listed = "; ".join(f"{i.label!r} (slot {i.slot:#x}, serial {i.serial})" for i, _ in usable)
        raise TokenNotFoundError(
            f"{len(usable)} tokens match {wanted} in {selector.module}: {listed}; "
            "select one by label, serial or slot"
        )
    if matches:
        raise TokenNotFoundError(f"the token in slot {matches[0][0].slot:#x} is not initialised")
    if selector.slot is not None:
        tokens = _tokens(lib, selector.module)  # what is present, for the message
    present = ", ".join(repr(info.label) for info, _ in tokens if info.initialized)
    raise TokenNotFoundError(
        f"no token with {wanted} in {selector.module}; "
        + (f"tokens present: {present}" if present else "no initialised token is present")
    )
