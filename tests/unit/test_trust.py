"""Trust anchors, fingerprints and checks on issued certificates (RFC 7030 3.6, 4.1.1)."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from est_hw.errors import (
    CertificateMismatchError,
    FingerprintMismatchError,
    ProtocolError,
    TrustError,
    UsageError,
)
from est_hw.x509.trust import (
    fingerprint,
    load_anchor_file,
    parse_fingerprint,
    select_by_fingerprint,
    split_issued,
    validate_cacerts,
    verify_issued,
)
from tests.pki import NOW, make_ca, make_leaf


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_fingerprint_forms() -> None:
    digest = bytes(range(32))
    assert parse_fingerprint("sha256:" + digest.hex()) == digest
    assert parse_fingerprint(digest.hex().upper()) == digest
    assert parse_fingerprint(":".join(f"{b:02X}" for b in digest)) == digest


@pytest.mark.parametrize("bad", ["", "sha1:abcd", "sha256:" + "0" * 63, "sha256:" + "g" * 64])
def test_bad_fingerprint(bad: str) -> None:
    with pytest.raises(UsageError, match="--ca-fingerprint"):
        parse_fingerprint(bad)


def test_select_by_fingerprint() -> None:
    root = make_ca()
    sub = make_ca("Sub", root)
    digest = hashlib.sha256(root.cert.public_bytes(Encoding.DER)).digest()
    assert select_by_fingerprint([sub.cert, root.cert], digest) == root.cert
    assert fingerprint(root.cert) == "sha256:" + digest.hex()
    with pytest.raises(FingerprintMismatchError, match="no certificate"):
        select_by_fingerprint([sub.cert], digest)


def test_anchor_file(tmp_path: Path) -> None:
    root = make_ca()
    path = tmp_path / "ca.pem"
    path.write_bytes(root.cert.public_bytes(Encoding.PEM))
    assert load_anchor_file(path) == (root.cert,)
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(UsageError, match="no PEM certificate"):
        load_anchor_file(tmp_path / "junk.pem")
    with pytest.raises(UsageError, match="cannot read"):
        load_anchor_file(tmp_path / "missing.pem")


def test_split_issued_picks_the_token_keys_certificate() -> None:
    root = make_ca()
    key = _key()
    leaf = make_leaf(root, key.public_key())
    other = make_leaf(root, _key().public_key(), "other")
    assert split_issued([other, leaf, root.cert], key.public_key()) == (leaf, [other, root.cert])
    with pytest.raises(CertificateMismatchError):
        split_issued([other, root.cert], key.public_key())
    twin = make_leaf(root, key.public_key(), "twin")
    with pytest.raises(ProtocolError, match="2 certificates"):
        split_issued([leaf, twin], key.public_key())


def test_verify_issued_returns_the_path_to_the_anchor() -> None:
    root = make_ca()
    sub = make_ca("Issuing", root)
    leaf = make_leaf(sub, _key().public_key())
    assert verify_issued(leaf, [sub.cert], [root.cert]) == [sub.cert, root.cert]
    # a leaf without SAN is accepted (real servers issue those)
    with pytest.raises(TrustError, match="does not chain"):
        verify_issued(leaf, [], [root.cert])


def test_verify_issued_refuses_other_pki_and_expired() -> None:
    root = make_ca()
    stranger = make_ca("Stranger")
    leaf = make_leaf(root, _key().public_key())
    with pytest.raises(TrustError):
        verify_issued(leaf, [], [stranger.cert])
    old = make_leaf(root, _key().public_key(), start=NOW - datetime.timedelta(days=30), days=10)
    with pytest.raises(TrustError):
        verify_issued(old, [], [root.cert])
    future = make_leaf(root, _key().public_key(), start=NOW + datetime.timedelta(days=2))
    with pytest.raises(TrustError):
        verify_issued(future, [], [root.cert])
    with pytest.raises(TrustError, match="no trust anchor"):
        verify_issued(leaf, [], [])


# --- /cacerts answers (RFC 7030 section 4.1.3) ---------------------------------------------


def test_cacerts_root_and_its_intermediate_validate() -> None:
    root = make_ca("Root")
    issuing = make_ca("Issuing", root)
    validate_cacerts([issuing.cert, root.cert])
    validate_cacerts([root.cert])


def test_cacerts_with_a_certificate_of_another_pki_is_refused() -> None:
    root = make_ca("Root")
    issuing = make_ca("Issuing", root)
    stranger = make_ca("Stranger Issuing", make_ca("Stranger Root"))
    with pytest.raises(TrustError, match=r"Stranger Issuing.*does not chain"):
        validate_cacerts([issuing.cert, root.cert, stranger.cert])


def test_cacerts_without_a_root_need_the_explicit_anchors() -> None:
    root = make_ca("Root")
    issuing = make_ca("Issuing", root)
    with pytest.raises(TrustError, match="no root CA certificate"):
        validate_cacerts([issuing.cert])
    validate_cacerts([issuing.cert], [root.cert])
    with pytest.raises(TrustError, match="does not chain"):
        validate_cacerts([issuing.cert], [make_ca("Other Root").cert])


def test_cacerts_during_a_root_key_rollover_validate() -> None:
    """RFC 4210 section 4.4 rollover: OldWithOld, NewWithNew, and the two cross
    certificates, all named the same; the most recent root is the anchor."""
    old, new = _key(), _key()
    old_with_old = make_ca("Root", key=old, age_days=400)
    new_with_new = make_ca("Root", key=new)
    new_with_old = make_ca("Root", old_with_old, key=new)
    old_with_new = make_ca("Root", new_with_new, key=old)
    issuing = make_ca("Issuing", new_with_new).cert
    validate_cacerts(
        [issuing, new_with_new.cert, old_with_old.cert, new_with_old.cert, old_with_new.cert]
    )
    forged = make_ca("Root", make_ca("Root")).cert  # the name fits, the signer does not
    with pytest.raises(TrustError, match="does not chain"):
        validate_cacerts([issuing, new_with_new.cert, forged])
