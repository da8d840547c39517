"""Selecting a TPM, its handles and NV indices; certificate layouts (no TPM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from est_hw.errors import UsageError
from est_hw.keys.base import Secret
from est_hw.keys.tpm_certs import plan
from est_hw.keys.tpm_nv import split_der
from est_hw.keys.tpm_tcti import (
    DEFAULT_KEY_HANDLES,
    TpmSelector,
    default_nv_index,
    format_handle,
    handle_of_key_id,
    key_id_of_handle,
    parse_tpm_handle,
)
from tests.pki import TwoTierCa, make_ca, make_leaf

DER = serialization.Encoding.DER
STATE = Path("/nonexistent/state")


def test_handles_are_hex_with_0x() -> None:
    assert parse_tpm_handle("0x81000100") == 0x81000100
    assert parse_tpm_handle(" 0X1000100 ") == 0x01000100
    for bad in ("81000100", "2164260864", "0x", "0x1234567890", "handle"):
        with pytest.raises(UsageError, match="hex with 0x"):
            parse_tpm_handle(bad)
    assert format_handle(0x1000100) == "0x01000100"


def test_default_ranges_and_mapping() -> None:
    assert DEFAULT_KEY_HANDLES[0] == 0x81000100
    assert DEFAULT_KEY_HANDLES[-1] == 0x810001FF
    assert default_nv_index(0x81000100) == 0x01000100
    assert default_nv_index(0x810001FF) == 0x010001FF
    assert default_nv_index(0x8100FFFF) == 0x0100FFFF
    assert default_nv_index(0x81400000) is None  # would leave the owner's NV range
    assert key_id_of_handle(0x81000100) == bytes.fromhex("81000100")
    assert handle_of_key_id(bytes.fromhex("81000100")) == 0x81000100
    assert handle_of_key_id(bytes(8)) is None
    assert handle_of_key_id(bytes.fromhex("01000100")) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"handle": 0x80000001}, "not a persistent handle"),
        ({"handle": 0x81000001}, "storage root key"),
        ({"nv_index": 0x81000100}, "not an NV index"),
        ({"handle": 0x81000100, "key_file": Path("k.pem")}, "not both"),
        ({"tcti": "swtpm port=1"}, "TCTI"),
        ({"tcti": ""}, "TCTI"),
        ({"key_auth": Secret("k" * 33)}, "longer than 32 bytes"),
        ({"owner_auth": Secret("o" * 65)}, "longer than 64 bytes"),
    ],
)
def test_selector_refuses(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"tcti": "swtpm:port=2321", "state_dir": STATE, **options}
    with pytest.raises(UsageError, match=message) as caught:
        TpmSelector(**arguments)  # type: ignore[arg-type]
    assert "kkkk" not in str(caught.value) and "oooo" not in str(caught.value)


def test_selector_accepts() -> None:
    selector = TpmSelector(
        tcti="device:/dev/tpmrm0",
        state_dir=STATE,
        owner_auth=Secret("s3cret-owner-value"),
        key_auth=Secret("k" * 32),
        handle=0x81000100,
        nv_index=0x01500000,
    )
    shown = repr(selector)
    assert "s3cret" not in shown and "kkk" not in shown
    assert "handle=0x81000100" in shown and "nv_index=0x01500000" in shown


def test_split_der(throwaway_ca: TwoTierCa) -> None:
    ders = [cert.public_bytes(DER) for cert in (throwaway_ca.root.cert, throwaway_ca.issuing.cert)]
    assert split_der(b"".join(ders)) == ders
    assert split_der(b"".join(ders) + b"\0" * 10) == ders
    assert split_der(ders[0][:-1]) == []
    assert split_der(b"") == []


def test_layouts(throwaway_ca: TwoTierCa) -> None:
    leaf = throwaway_ca.issue(ec.generate_private_key(ec.SECP256R1()).public_key())
    leaf_der = leaf.public_bytes(DER)
    chain = throwaway_ca.chain
    all_der = leaf_der + b"".join(c.public_bytes(DER) for c in chain)

    fits = plan(leaf, chain, 0x01000100, 2048)
    assert fits.nv_data == all_der and fits.cert_pem is None and fits.chain_pem is None

    chain_out = plan(leaf, chain, 0x01000100, len(all_der) - 1)
    assert chain_out.nv_data == leaf_der and chain_out.cert_pem is None
    assert chain_out.chain_pem is not None

    nothing_fits = plan(leaf, chain, 0x01000100, len(leaf_der) - 1)
    assert nothing_fits.nv_data is None
    assert nothing_fits.cert_pem is not None and nothing_fits.chain_pem is not None

    no_index = plan(leaf, [], None, 2048)
    assert no_index.nv_data is None and no_index.chain_pem is None

    # a chain that repeats the leaf does not store it twice
    assert plan(leaf, [leaf, *chain], 0x01000100, 2048).nv_data == all_der


def test_a_self_issued_leaf_without_chain() -> None:
    issuer = make_ca("solo")
    leaf = make_leaf(issuer, ec.generate_private_key(ec.SECP256R1()).public_key())
    layout = plan(leaf, [], 0x01000100, 2048)
    assert layout.nv_data == leaf.public_bytes(DER) and layout.chain_pem is None
