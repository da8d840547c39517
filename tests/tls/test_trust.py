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
from tests.tls.pki import LOCAL_NAMES, NOW, Pki, ec_key, make_ca, make_leaf


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
    ca_key, leaf_key = ec_key(), ec_key()
    ca = make_ca("demo CA", ca_key, bc_critical=False)
    leaf = make_leaf("est", leaf_key, (ca, ca_key), names=LOCAL_NAMES, eku=None)
    verify_server_chain([leaf], "localhost", ServerTrust((ca,)))
    with pytest.raises(TrustError, match="does not match"):
        verify_server_chain([leaf], "est.example", ServerTrust((ca,)))


def test_issuer_that_is_not_a_ca_is_refused() -> None:
    ca_key, inter_key, leaf_key = ec_key(), ec_key(), ec_key()
    ca = make_ca("root", ca_key)
    not_ca = make_ca("not a CA", inter_key, (ca, ca_key), is_ca=False)
    leaf = make_leaf("est", leaf_key, (not_ca, inter_key), names=LOCAL_NAMES)
    with pytest.raises(TrustError, match="untrusted") as caught:
        verify_server_chain([leaf, not_ca], "localhost", ServerTrust((ca,)))
    print(caught.value)


def test_issuer_without_key_cert_sign_is_refused() -> None:
    ca_key, inter_key, leaf_key = ec_key(), ec_key(), ec_key()
    ca = make_ca("root", ca_key)
    inter = make_ca("no keyCertSign", inter_key, (ca, ca_key), key_cert_sign=False)
    leaf = make_leaf("est", leaf_key, (inter, inter_key), names=LOCAL_NAMES)
    with pytest.raises(TrustError, match="untrusted") as caught:
        verify_server_chain([leaf, inter], "localhost", ServerTrust((ca,)))
    print(caught.value)


def test_eku_without_server_auth_is_refused() -> None:
    ca_key, leaf_key = ec_key(), ec_key()
    ca = make_ca("root", ca_key)
    leaf = make_leaf(
        "est", leaf_key, (ca, ca_key), names=LOCAL_NAMES, eku=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    with pytest.raises(TrustError, match="serverAuth"):
        verify_server_chain([leaf], "localhost", ServerTrust((ca,)))


def test_leaf_without_san_is_refused() -> None:
    ca_key, leaf_key = ec_key(), ec_key()
    ca = make_ca("root", ca_key)
    leaf = make_leaf("localhost", leaf_key, (ca, ca_key), names=None)
    with pytest.raises(TrustError, match="subjectAltName"):
        verify_server_chain([leaf], "localhost", ServerTrust((ca,)))


def test_ip_san_only_matches_ip(pki: Pki) -> None:
    ca_key, leaf_key = ec_key(), ec_key()
    ca = make_ca("root", ca_key)
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("::1"))]
    leaf = make_leaf(
        "v6", leaf_key, (ca, ca_key), names=names, eku=[ExtendedKeyUsageOID.SERVER_AUTH]
    )
    verify_server_chain([leaf], "::1", ServerTrust((ca,)))
    verify_server_chain([leaf], "[::1]", ServerTrust((ca,)))
    with pytest.raises(TrustError, match="does not match"):
        verify_server_chain([leaf], "localhost", ServerTrust((ca,)))
