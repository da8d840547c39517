"""verify_server_chain: the server's chain and name (no network)."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from est_hw.errors import TrustError, UsageError
from est_hw.tls import ServerTrust, verify_server_chain
from est_hw.tls.trust import system_anchors
from tests.pki import NOW, make_ca, make_leaf
from tests.tls.pki import LOCAL_NAMES, Pki, ec_key


def test_chain_with_intermediate_verifies_for_dns_name_and_ip(pki: Pki) -> None:
    trust = ServerTrust(anchors=(pki.root,))
    verify_server_chain(pki.server_ec.chain, "localhost", trust)
    verify_server_chain(pki.server_ec.chain, "127.0.0.1", trust)


def test_other_ca_is_untrusted(pki: Pki) -> None:
    with pytest.raises(TrustError, match="untrusted server certificate chain"):
        verify_server_chain(pki.server_untrusted.chain, "localhost", ServerTrust((pki.root,)))


def test_missing_intermediate_is_untrusted(pki: Pki) -> None:
    with pytest.raises(TrustError, match="untrusted"):
        verify_server_chain(pki.server_ec.chain[:1], "localhost", ServerTrust((pki.root,)))


def test_wrong_name_says_which_names(pki: Pki) -> None:
    with pytest.raises(TrustError) as caught:
        verify_server_chain(pki.server_other_name.chain, "localhost", ServerTrust((pki.root,)))
    assert "'localhost'" in str(caught.value)
    assert "other.example" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_wrong_ip_is_a_name_mismatch(pki: Pki) -> None:
    with pytest.raises(TrustError, match=r"does not match '127\.0\.0\.2'"):
        verify_server_chain(pki.server_ec.chain, "127.0.0.2", ServerTrust((pki.root,)))


def test_expired(pki: Pki) -> None:
    with pytest.raises(TrustError, match="expired on"):
        verify_server_chain(pki.server_expired.chain, "localhost", ServerTrust((pki.root,)))


def test_validation_time_is_a_parameter(pki: Pki) -> None:
    trust = ServerTrust((pki.root,))
    with pytest.raises(TrustError, match="not valid before"):
        verify_server_chain(pki.server_ec.chain, "localhost", trust, NOW - dt.timedelta(days=5))
    with pytest.raises(TrustError, match="expired"):
        verify_server_chain(pki.server_ec.chain, "localhost", trust, NOW + dt.timedelta(days=20))


def test_no_anchors_and_no_system_store_is_refused(pki: Pki) -> None:
    with pytest.raises(TrustError, match="no trust anchors"):
        verify_server_chain(pki.server_ec.chain, "localhost", ServerTrust(anchors=()))


def test_empty_chain_is_refused(pki: Pki) -> None:
    with pytest.raises(TrustError, match="no certificate"):
        verify_server_chain([], "localhost", ServerTrust((pki.root,)))


def test_system_store_is_loaded_only_on_request(pki: Pki) -> None:
    assert len(system_anchors()) > 10
    # A private PKI is not in the system store.
    with pytest.raises(TrustError, match="untrusted"):
        verify_server_chain(
            pki.server_ec.chain, "localhost", ServerTrust((), use_system_store=True)
        )
    # ... and the anchors still count with the system store on.
    verify_server_chain(
        pki.server_ec.chain, "localhost", ServerTrust((pki.root,), use_system_store=True)
    )


def test_anchors_must_be_certificates() -> None:
    with pytest.raises(UsageError):
        ServerTrust(anchors=("not a certificate",))  # type: ignore[arg-type]
    assert ServerTrust(anchors=[]).anchors == ()  # type: ignore[arg-type]


# --- the permissive-but-checking policy (FIELD-NOTES) ---------------------------------


def test_real_world_pki_noncritical_basic_constraints_and_no_eku_is_accepted() -> None:
    ca = make_ca("demo CA", critical_bc=False)
    leaf = make_leaf(ca, ec_key().public_key(), "est", names=LOCAL_NAMES, eku=None)
    verify_server_chain([leaf], "localhost", ServerTrust((ca.cert,)))
    with pytest.raises(TrustError, match="does not match"):
        verify_server_chain([leaf], "est.example", ServerTrust((ca.cert,)))


@pytest.mark.parametrize(
    ("is_ca", "key_cert_sign"),
    [(False, True), (True, False)],
    ids=["issuer_that_is_not_a_ca", "issuer_without_key_cert_sign"],
)
def test_issuer_that_may_not_sign_certificates_is_refused(is_ca: bool, key_cert_sign: bool) -> None:
    root = make_ca("root")
    issuer = make_ca("issuer", root, is_ca=is_ca, key_cert_sign=key_cert_sign)
    leaf = make_leaf(issuer, ec_key().public_key(), "est", names=LOCAL_NAMES)
    with pytest.raises(TrustError, match="untrusted"):
        verify_server_chain([leaf, issuer.cert], "localhost", ServerTrust((root.cert,)))


def test_eku_without_server_auth_is_refused() -> None:
    ca = make_ca("root")
    leaf = make_leaf(
        ca, ec_key().public_key(), "est", names=LOCAL_NAMES, eku=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    with pytest.raises(TrustError, match="serverAuth"):
        verify_server_chain([leaf], "localhost", ServerTrust((ca.cert,)))


def test_leaf_without_san_is_refused() -> None:
    ca = make_ca("root")
    leaf = make_leaf(ca, ec_key().public_key(), "localhost", names=None)
    with pytest.raises(TrustError, match="subjectAltName"):
        verify_server_chain([leaf], "localhost", ServerTrust((ca.cert,)))


def test_ip_san_only_matches_ip(pki: Pki) -> None:
    ca = make_ca("root")
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("::1"))]
    leaf = make_leaf(
        ca, ec_key().public_key(), "v6", names=names, eku=[ExtendedKeyUsageOID.SERVER_AUTH]
    )
    verify_server_chain([leaf], "::1", ServerTrust((ca.cert,)))
    verify_server_chain([leaf], "[::1]", ServerTrust((ca.cert,)))
    with pytest.raises(TrustError, match="does not match"):
        verify_server_chain([leaf], "localhost", ServerTrust((ca.cert,)))
