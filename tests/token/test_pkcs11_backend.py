"""The PKCS#11 backend against real SoftHSM2 tokens, cross-checked with opensc's pkcs11-tool."""

from __future__ import annotations

import copy
import hashlib
import re
import threading
from typing import Any

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, ObjectClass
from pkcs11.attributes import AttributeMapper, handle_ulong

from est_hw.errors import (
    CertificateMismatchError,
    KeyNotFoundError,
    PinIncorrectError,
    TokenError,
    TokenNotFoundError,
    UnsupportedKeyError,
    UsageError,
)
from est_hw.keys.base import KeyType, Secret, TokenKey
from est_hw.keys.pkcs11 import (
    Pkcs11Backend,
    Pkcs11EcPrivateKey,
    Pkcs11RsaPrivateKey,
    TokenSelector,
    list_tokens,
    open_pkcs11,
)
from est_hw.keys.uri import parse_pkcs11_uri
from tests.conftest import SoftHsmToken, init_softhsm_token
from tests.pkcs11_tool import (
    TokenObject,
    list_objects,
    list_objects_text,
    pkcs11_tool,
    read_object,
)
from tests.pki import TwoTierCa
from tests.token.conftest import KEY_TYPES

pytestmark = pytest.mark.softhsm

DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
MISSING = "/nonexistent/libpkcs11.so"


def _csr(key: TokenKey, **sign_options: Any) -> x509.CertificateSigningRequest:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return builder.sign(key.private_key, hashes.SHA256(), **sign_options)


def _second_session(token: SoftHsmToken) -> pkcs11.Session:
    """A python-pkcs11 session beside the backend's (no C_Login: the token is logged in)."""
    mapper = AttributeMapper()
    mapper.register_handler(Attribute.CERTIFICATE_CATEGORY, *handle_ulong)
    token_object = pkcs11.lib(token.module).get_token(token_label=token.label)
    return token_object.open(attribute_mapper=mapper)


# --- generating and signing ---------------------------------------------------------------


@pytest.mark.parametrize("key_type", KEY_TYPES, ids=lambda kt: kt.value)
def test_generate_key_signs_a_valid_csr(backend: Pkcs11Backend, key_type: KeyType) -> None:
    key = backend.generate_key(key_type, f"gen-{key_type.value}")

    assert key.key_type is key_type
    assert len(key.key_id) == 8
    assert KeyType.of_public_key(key.public_key()) is key_type
    if key_type.is_ec:
        assert isinstance(key.private_key, Pkcs11EcPrivateKey)
        assert isinstance(key.private_key, ec.EllipticCurvePrivateKey)
        assert key.private_key.curve.name == key_type.curve.name  # type: ignore[union-attr]
    else:
        assert isinstance(key.private_key, Pkcs11RsaPrivateKey)
        assert isinstance(key.private_key, rsa.RSAPrivateKey)
        assert key.private_key.key_size == key_type.rsa_bits
    csr = _csr(key)
    assert csr.is_signature_valid
    assert csr.public_key().public_bytes(DER, SPKI) == key.public_key().public_bytes(DER, SPKI)
    # found again by id and by label, as an equal key
    again = backend.find_key(key_id=key.key_id)
    assert again.label == key.label
    assert again.public_key().public_bytes(DER, SPKI) == key.public_key().public_bytes(DER, SPKI)
    assert backend.find_key(label=key.label).key_id == key.key_id


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048], ids=lambda x: x.value)
def test_generated_attributes_seen_by_python_pkcs11(
    backend: Pkcs11Backend, softhsm_token: SoftHsmToken, key_type: KeyType
) -> None:
    key = backend.generate_key(key_type, "attrs")
    with _second_session(softhsm_token) as session:
        private = session.get_key(ObjectClass.PRIVATE_KEY, id=key.key_id)
        public = session.get_key(ObjectClass.PUBLIC_KEY, id=key.key_id)
        private_attrs = {
            attr: private[attr]
            for attr in (
                Attribute.TOKEN,
                Attribute.PRIVATE,
                Attribute.SENSITIVE,
                Attribute.EXTRACTABLE,
                Attribute.ALWAYS_SENSITIVE,
                Attribute.NEVER_EXTRACTABLE,
                Attribute.SIGN,
                Attribute.DECRYPT,
                Attribute.UNWRAP,
                Attribute.DERIVE,
                Attribute.LABEL,
            )
        }
        assert private_attrs == {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.ALWAYS_SENSITIVE: True,
            Attribute.NEVER_EXTRACTABLE: True,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
            Attribute.LABEL: "attrs",
        }
        assert public[Attribute.TOKEN] is True
        assert public[Attribute.VERIFY] is True
        assert public[Attribute.LABEL] == "attrs"
        with pytest.raises(pkcs11.AttributeSensitive):
            private[Attribute.VALUE if key_type.is_ec else Attribute.PRIVATE_EXPONENT]


@pytest.mark.parametrize("key_type", [KeyType.EC_P384, KeyType.RSA_2048], ids=lambda x: x.value)
def test_generated_attributes_seen_by_pkcs11_tool(
    backend: Pkcs11Backend, softhsm_token: SoftHsmToken, key_type: KeyType
) -> None:
    key = backend.generate_key(key_type, "seen-by-opensc")
    objects = [o for o in list_objects(softhsm_token) if o.id == key.key_id.hex()]

    kinds = sorted(o.kind.split(";")[0] for o in objects)
    assert kinds == ["Private Key Object", "Public Key Object"]
    private = next(o for o in objects if o.kind.startswith("Private"))
    public = next(o for o in objects if o.kind.startswith("Public"))
    access = [flag.strip() for flag in private.attrs["Access"].split(",")]
    assert "sensitive" in access
    assert "always sensitive" in access
    assert "never extractable" in access
    assert "extractable" not in access
    assert private.attrs["Usage"] == "sign"
    assert private.attrs["label"] == "seen-by-opensc"
    assert public.attrs["Usage"] == "verify"
    assert public.attrs["label"] == "seen-by-opensc"


@pytest.mark.parametrize(
    "algorithm", [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()], ids=lambda x: x.name
)
def test_rsa_pkcs1v15_and_pss_signatures_verify(
    backend: Pkcs11Backend, algorithm: hashes.HashAlgorithm
) -> None:
    key = backend.generate_key(KeyType.RSA_2048, "rsa-sign")
    private = key.private_key
    public = key.public_key()
    assert isinstance(private, rsa.RSAPrivateKey)
    assert isinstance(public, rsa.RSAPublicKey)
    data = b"to be signed " * 100
    digest = hashlib.new(algorithm.name, data).digest()

    for signature in (
        private.sign(data, padding.PKCS1v15(), algorithm),
        private.sign(digest, padding.PKCS1v15(), utils.Prehashed(algorithm)),
    ):
        public.verify(signature, data, padding.PKCS1v15(), algorithm)

    for salt, expected in (
        (padding.PSS.DIGEST_LENGTH, algorithm.digest_size),
        (padding.PSS.MAX_LENGTH, padding.calculate_max_pss_salt_length(public, algorithm)),
        (20, 20),
    ):
        pss = padding.PSS(padding.MGF1(algorithm), salt)
        for signature in (
            private.sign(data, pss, algorithm),
            private.sign(digest, pss, utils.Prehashed(algorithm)),
        ):
            public.verify(
                signature, data, padding.PSS(padding.MGF1(algorithm), expected), algorithm
            )


def test_rsa_pss_csr_and_refusals(backend: Pkcs11Backend) -> None:
    key = backend.generate_key(KeyType.RSA_2048, "rsa-pss")
    for salt in (32, padding.PSS.DIGEST_LENGTH, padding.PSS.MAX_LENGTH):
        csr = _csr(key, rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()), salt))
        assert csr.is_signature_valid

    private = key.private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    with pytest.raises(UnsupportedKeyError, match="AUTO"):
        private.sign(
            b"x", padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO), hashes.SHA256()
        )
    with pytest.raises(UnsupportedKeyError):
        private.sign(b"x", padding.PKCS1v15(), hashes.SHA1())
    with pytest.raises(UnsupportedKeyError):
        private.sign(
            b"x",
            padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
            hashes.SHA256(),
        )
    with pytest.raises(UnsupportedKeyError, match="cannot leave the token"):
        private.decrypt(b"x", padding.PKCS1v15())


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.EC_P384], ids=lambda x: x.value)
def test_ecdsa_signatures_verify(backend: Pkcs11Backend, key_type: KeyType) -> None:
    key = backend.generate_key(key_type, "ec-sign")
    private = key.private_key
    public = key.public_key()
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    data = b"handshake transcript"
    for algorithm in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
        signature = private.sign(data, ec.ECDSA(algorithm))
        public.verify(signature, data, ec.ECDSA(algorithm))
        digest = hashlib.new(algorithm.name, data).digest()
        signature = private.sign(digest, ec.ECDSA(utils.Prehashed(algorithm)))
        public.verify(signature, data, ec.ECDSA(algorithm))
    with pytest.raises(ValueError, match="prehashed"):
        private.sign(b"short", ec.ECDSA(utils.Prehashed(hashes.SHA256())))


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048], ids=lambda x: x.value)
def test_the_private_key_never_leaves(backend: Pkcs11Backend, key_type: KeyType) -> None:
    private = backend.generate_key(key_type, "stays").private_key
    with pytest.raises(UnsupportedKeyError, match="cannot leave the token"):
        private.private_bytes(DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(UnsupportedKeyError, match="cannot leave the token"):
        private.private_numbers()
    if isinstance(private, ec.EllipticCurvePrivateKey):
        with pytest.raises(UnsupportedKeyError, match="cannot leave the token"):
            private.exchange(ec.ECDH(), ec.generate_private_key(ec.SECP256R1()).public_key())
    assert copy.copy(private) is private
    assert copy.deepcopy(private) is private
    assert "stays" in repr(private)


def test_concurrent_signing_from_threads(backend: Pkcs11Backend) -> None:
    key = backend.generate_key(KeyType.EC_P256, "threads")
    private = key.private_key
    public = key.public_key()
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                data = f"{n}-{i}".encode()
                public.verify(
                    private.sign(data, ec.ECDSA(hashes.SHA256())), data, ec.ECDSA(hashes.SHA256())
                )
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_failed_generation_leaves_nothing_behind(
    backend: Pkcs11Backend, softhsm_token: SoftHsmToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the pair exists on the token, then wrapping it fails."""

    def broken(*_args: object, **_kwargs: object) -> TokenKey:
        raise TokenError("injected failure after C_GenerateKeyPair")

    monkeypatch.setattr(backend, "_token_key", broken)
    with pytest.raises(TokenError, match="injected"):
        backend.generate_key(KeyType.EC_P256, "half-made")
    monkeypatch.undo()
    assert backend.inventory().keys == []
    assert "half-made" not in list_objects_text(softhsm_token)


def test_unsupported_generation_is_refused(backend: Pkcs11Backend) -> None:
    with pytest.raises(UsageError):
        backend.generate_key(KeyType.EC_P256, "")


# --- certificates ---------------------------------------------------------------------------


def _cert_objects(token: SoftHsmToken) -> list[TokenObject]:
    return [o for o in list_objects(token) if o.kind.startswith("Certificate")]


def test_store_certificate_and_read_it_back(
    backend: Pkcs11Backend, softhsm_token: SoftHsmToken, throwaway_ca: TwoTierCa
) -> None:
    key = backend.generate_key(KeyType.EC_P256, "device")
    cert = throwaway_ca.issue(key.public_key())

    backend.store_certificate(key, cert, throwaway_ca.chain)

    der = read_object(softhsm_token, "cert", key.key_id.hex())
    assert der == cert.public_bytes(DER)
    with _second_session(softhsm_token) as session:
        (obj,) = session.get_objects(
            {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key.key_id}
        )
        assert obj[Attribute.LABEL] == "device"
        assert obj[Attribute.SUBJECT] == cert.subject.public_bytes()
        assert obj[Attribute.ISSUER] == cert.issuer.public_bytes()
        serial = obj[Attribute.SERIAL_NUMBER]
        assert serial[0] == 0x02  # DER INTEGER
        assert int.from_bytes(serial[2:], "big") == cert.serial_number
        assert obj[Attribute.VALUE] == cert.public_bytes(DER)
        assert obj[Attribute.TOKEN] is True
        assert obj[Attribute.CERTIFICATE_CATEGORY] == 1
        for ca in throwaway_ca.chain:
            ski = x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest
            (ca_obj,) = session.get_objects(
                {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: ski}
            )
            assert ca_obj[Attribute.VALUE] == ca.public_bytes(DER)
            assert ca_obj[Attribute.CERTIFICATE_CATEGORY] == 2
            assert (
                ca_obj[Attribute.LABEL]
                == ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            )

    inventory = backend.inventory()
    assert [k.key_id for k in inventory.keys] == [key.key_id]
    stored = {c.certificate: c for c in inventory.certificates}
    assert set(stored) == {cert, *throwaway_ca.chain}
    assert stored[cert].is_ca is False
    assert stored[cert].key_id == key.key_id
    assert stored[cert].label == "device"
    assert all(stored[ca].is_ca for ca in throwaway_ca.chain)


def test_store_again_replaces_the_certificate_and_keeps_one_copy_of_the_cas(
    backend: Pkcs11Backend, softhsm_token: SoftHsmToken, throwaway_ca: TwoTierCa
) -> None:
    key = backend.generate_key(KeyType.EC_P256, "renewed")
    other = backend.generate_key(KeyType.EC_P256, "other")
    first = throwaway_ca.issue(key.public_key(), "first")
    second = throwaway_ca.issue(key.public_key(), "second")
    backend.store_certificate(key, first, throwaway_ca.chain)
    backend.store_certificate(other, throwaway_ca.issue(other.public_key()), throwaway_ca.chain)

    backend.store_certificate(key, second, throwaway_ca.chain)

    certs = backend.inventory().certificates
    assert sorted(c.certificate.subject.rfc4514_string() for c in certs) == [
        "CN=device-1",
        "CN=est-hw test issuing CA",
        "CN=est-hw test root",
        "CN=second",
    ]
    der = read_object(softhsm_token, "cert", key.key_id.hex())
    assert der == second.public_bytes(DER)
    assert len(_cert_objects(softhsm_token)) == 4


def test_mismatched_certificate_is_refused_and_the_token_is_unchanged(
    backend: Pkcs11Backend, softhsm_token: SoftHsmToken, throwaway_ca: TwoTierCa
) -> None:
    key = backend.generate_key(KeyType.EC_P256, "device")
    backend.store_certificate(key, throwaway_ca.issue(key.public_key()), [])
    before = list_objects_text(softhsm_token)
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()

    with pytest.raises(CertificateMismatchError, match="device"):
        backend.store_certificate(key, throwaway_ca.issue(stranger), throwaway_ca.chain)

    assert list_objects_text(softhsm_token) == before


def test_failed_store_leaves_the_token_as_it_was(
    backend: Pkcs11Backend, softhsm_token: SoftHsmToken, throwaway_ca: TwoTierCa
) -> None:
    """Fault injection: the token refuses the second object of a store."""
    key = backend.generate_key(KeyType.EC_P256, "device")
    backend.store_certificate(key, throwaway_ca.issue(key.public_key(), "old"), [])
    before = list_objects_text(softhsm_token)
    real = backend._session

    class RefusesSecondCreate:
        calls = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def create_object(self, template: dict[Attribute, Any]) -> pkcs11.Object:
            RefusesSecondCreate.calls += 1
            if RefusesSecondCreate.calls == 2:
                raise pkcs11.DeviceMemory()
            return real.create_object(template)

    backend._session = RefusesSecondCreate()  # type: ignore[assignment]
    try:
        with pytest.raises(TokenError, match="out of memory"):
            backend.store_certificate(
                key, throwaway_ca.issue(key.public_key(), "new"), throwaway_ca.chain
            )
    finally:
        backend._session = real
    assert list_objects_text(softhsm_token) == before


def test_delete_certificates_and_key(
    backend: Pkcs11Backend, softhsm_token: SoftHsmToken, throwaway_ca: TwoTierCa
) -> None:
    key = backend.generate_key(KeyType.RSA_2048, "doomed")
    keep = backend.generate_key(KeyType.EC_P256, "kept")
    backend.store_certificate(key, throwaway_ca.issue(key.public_key()), throwaway_ca.chain)

    backend.delete_certificates(key.key_id)
    certs = backend.inventory().certificates
    assert len(certs) == 2
    assert all(c.is_ca for c in certs)

    backend.delete_key(key)
    assert [k.key_id for k in backend.inventory().keys] == [keep.key_id]
    assert key.key_id.hex() not in list_objects_text(softhsm_token)
    with pytest.raises(KeyNotFoundError):
        backend.find_key(key_id=key.key_id)
    with pytest.raises(KeyNotFoundError):
        backend.delete_key(key)


def test_inventory_counts_a_foreign_certificate_without_key_as_ca(
    backend: Pkcs11Backend, softhsm_token: SoftHsmToken, throwaway_ca: TwoTierCa, tmp_path: Any
) -> None:
    """A certificate written by pkcs11-tool (category unspecified) with no key is a CA one."""
    path = tmp_path / "root.der"
    path.write_bytes(throwaway_ca.root.cert.public_bytes(DER))
    pkcs11_tool(
        softhsm_token, "--write-object", str(path), "--type", "cert", "--id", "99", "--label", "r"
    )
    (stored,) = backend.inventory().certificates
    assert stored.is_ca
    assert stored.key_id == b"\x99"
    assert stored.certificate == throwaway_ca.root.cert


# --- finding keys ---------------------------------------------------------------------------


def test_find_key_by_label_id_and_uri(backend: Pkcs11Backend) -> None:
    first = backend.generate_key(KeyType.EC_P256, "twin")
    second = backend.generate_key(KeyType.EC_P256, "twin")
    with pytest.raises(KeyNotFoundError, match="2 private keys"):
        backend.find_key(label="twin")
    assert backend.find_key(label="twin", key_id=second.key_id).key_id == second.key_id
    with pytest.raises(KeyNotFoundError, match="no private key"):
        backend.find_key(label="absent")
    with pytest.raises(KeyNotFoundError):
        backend.find_key(label="twin", key_id=b"\x00" * 8)
    with pytest.raises(UsageError):
        backend.find_key()
    uri = backend.key_uri(first)
    assert uri.token == backend.label
    assert backend.find_key_by_uri(parse_pkcs11_uri(str(uri))).key_id == first.key_id


# --- opening tokens -------------------------------------------------------------------------


def test_wrong_pin_is_refused_without_showing_it(softhsm_token: SoftHsmToken) -> None:
    wrong = "987654-wrong"
    with pytest.raises(PinIncorrectError) as caught:
        open_pkcs11(
            TokenSelector(softhsm_token.module, token_label=softhsm_token.label), Secret(wrong)
        )
    assert str(caught.value) == f"token '{softhsm_token.label}' rejected the PIN"
    texts = [str(caught.value), repr(caught.value), str(caught.value.__cause__)]
    assert not any(wrong in text for text in texts)
    assert caught.value.exit_code == 4


def test_unknown_label_slot_and_module(softhsm_token: SoftHsmToken) -> None:
    pin = Secret(softhsm_token.pin)
    with pytest.raises(
        TokenNotFoundError, match=f"label 'nope'.*tokens present: .*'{softhsm_token.label}'"
    ):
        open_pkcs11(TokenSelector(softhsm_token.module, token_label="nope"), pin)
    with pytest.raises(TokenNotFoundError, match="slot 0x7"):
        open_pkcs11(TokenSelector(softhsm_token.module, slot=0x7), pin)
    with pytest.raises(TokenError, match=re.escape(MISSING)):
        open_pkcs11(TokenSelector(MISSING), pin)
    with pytest.raises(TokenError, match=re.escape(MISSING)):
        list_tokens(MISSING)


def test_select_by_slot_serial_or_uri_and_disambiguate(softhsm_conf: Any) -> None:
    first = init_softhsm_token(softhsm_conf, "pick-me-1")
    second = init_softhsm_token(softhsm_conf, "pick-me-2")
    infos = {info.label: info for info in list_tokens(first.module)}
    assert {"pick-me-1", "pick-me-2"} <= set(infos)
    wanted = infos["pick-me-2"]
    assert wanted.manufacturer == "SoftHSM project"
    assert wanted.initialized
    assert len(wanted.serial) == 16
    pin = Secret(second.pin)

    with pytest.raises(TokenNotFoundError, match="select one"):
        open_pkcs11(TokenSelector(first.module), pin)
    for selector in (
        TokenSelector(first.module, slot=wanted.slot),
        TokenSelector(first.module, serial=wanted.serial),
        TokenSelector.from_uri(parse_pkcs11_uri(f"pkcs11:serial={wanted.serial}"), first.module),
        TokenSelector.from_uri(
            parse_pkcs11_uri(f"pkcs11:token=pick-me-2?module-path={first.module}")
        ),
    ):
        with open_pkcs11(selector, pin) as opened:
            assert (opened.label, opened.serial, opened.slot) == (
                "pick-me-2",
                wanted.serial,
                wanted.slot,
            )
            assert opened.name == "pick-me-2"


def test_a_token_opened_twice_in_one_process_is_refused(
    backend: Pkcs11Backend, softhsm_token: SoftHsmToken
) -> None:
    with pytest.raises(TokenError, match="already open"):
        open_pkcs11(
            TokenSelector(softhsm_token.module, token_label=softhsm_token.label),
            Secret(softhsm_token.pin),
        )


def test_close_is_idempotent_and_keys_refuse_afterwards(backend: Pkcs11Backend) -> None:
    private = backend.generate_key(KeyType.EC_P256, "after-close").private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    backend.close()
    backend.close()
    with pytest.raises(TokenError, match="closed"):
        private.sign(b"x", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(TokenError, match="closed"):
        backend.inventory()
