"""The PKCS#11 key backend, on python-pkcs11.

:func:`open_pkcs11` selects one token of a PKCS#11 module, opens a read/write session and
logs in as the user (PKCS#11 v2.40 base sections 5.6 ``C_OpenSession`` and ``C_Login``).
The returned :class:`Pkcs11Backend` generates key pairs inside the token, finds them,
stores certificates beside them and lists what the token holds.

Objects follow the conventions other PKCS#11 tools (pkcs11-tool, p11-kit, OpenSSL
providers) rely on: a key pair and its certificate share ``CKA_ID`` and ``CKA_LABEL``; the
certificate carries ``CKA_SUBJECT``, ``CKA_ISSUER`` and ``CKA_SERIAL_NUMBER`` (PKCS#11 v2.40
base section 4.6.3); CA certificates have ``CKA_CERTIFICATE_CATEGORY`` 2 ("authority").

Every :class:`pkcs11.PKCS11Error` is mapped to :mod:`est_hw.errors` in
:func:`est_hw.keys.pkcs11_keys.pkcs11_errors`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Sequence
from typing import Any

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, CertificateType, MechanismFlag, ObjectClass
from pkcs11.attributes import AttributeMapper, handle_ulong
from pkcs11.util.ec import encode_named_curve_parameters
from pkcs11.util.x509 import decode_x509_certificate

from est_hw.errors import (
    CertificateMismatchError,
    KeyNotFoundError,
    TokenError,
    UnsupportedKeyError,
    UsageError,
)
from est_hw.keys.base import (
    Inventory,
    KeyBackend,
    KeyType,
    PrivateKey,
    PublicKey,
    Secret,
    StoredCertificate,
    TokenKey,
    describe_selection,
    require_one_match,
)
from est_hw.keys.pkcs11_keys import (
    Pkcs11EcPrivateKey,
    Pkcs11RsaPrivateKey,
    SessionGuard,
    ec_public_key_of,
    pkcs11_errors,
    rsa_public_key_of,
)
from est_hw.keys.pkcs11_tokens import (
    TokenInfo,
    TokenSelector,
    list_tokens,
    load_module,
    module_lock,
    select_token,
)
from est_hw.keys.uri import Pkcs11Uri

__all__ = [
    "Pkcs11Backend",
    "Pkcs11EcPrivateKey",
    "Pkcs11RsaPrivateKey",
    "TokenInfo",
    "TokenSelector",
    "list_tokens",
    "open_pkcs11",
]

log = logging.getLogger(__name__)

#: ``CKA_CERTIFICATE_CATEGORY`` values (PKCS#11 v2.40 base section 4.6.2).
CATEGORY_UNSPECIFIED, CATEGORY_TOKEN_USER, CATEGORY_AUTHORITY = 0, 1, 2
_ID_BYTES = 8


def open_pkcs11(selector: TokenSelector, pin: Secret) -> Pkcs11Backend:
    """Open a read/write session on the selected token and log in as the user.

    :raises TokenError: the module cannot be loaded, or the PIN is locked.
    :raises TokenNotFoundError: no token, or more than one, matches ``selector``.
    :raises PinIncorrectError: the token rejected the PIN (the PIN is never in a message).
    """
    with module_lock(selector.module):
        lib = load_module(selector.module)
        info, token = select_token(lib, selector)
        with pkcs11_errors("logging in", info.label):
            session = token.open(rw=True, user_pin=pin.reveal(), attribute_mapper=_mapper())
    return Pkcs11Backend(session, info, selector.module)


class Pkcs11Backend(KeyBackend):
    """An open, logged-in session on one PKCS#11 token.  Use :func:`open_pkcs11`."""

    def __init__(self, session: pkcs11.Session, info: TokenInfo, module: str) -> None:
        self._session = session
        self._info = info
        self._module = module
        self._guard = SessionGuard(info.label, module_lock(module))
        self.name = info.label

    @property
    def label(self) -> str:
        """The token label (``CK_TOKEN_INFO.label``)."""
        return self._info.label

    @property
    def serial(self) -> str:
        """The token serial number (``CK_TOKEN_INFO.serialNumber``)."""
        return self._info.serial

    @property
    def slot(self) -> int:
        """The ``CK_SLOT_ID`` of the token's slot."""
        return self._info.slot

    @property
    def module(self) -> str:
        """The PKCS#11 module path."""
        return self._module

    # --- keys -------------------------------------------------------------------------------

    def new_key_id(self) -> bytes:
        """A random 8-byte ``CKA_ID`` that no object on the token uses."""
        with self._guard.call("choosing a key id"):
            return self._fresh_id()

    def generate_key(self, key_type: KeyType, label: str, key_id: bytes | None = None) -> TokenKey:
        """Generate a key pair inside the token (``C_GenerateKeyPair``).

        The private key is ``CKA_TOKEN``, ``CKA_PRIVATE``, ``CKA_SENSITIVE``, not
        ``CKA_EXTRACTABLE``, ``CKA_SIGN`` only; the public key ``CKA_TOKEN``, ``CKA_VERIFY``.
        Both share ``key_id`` (default: a fresh random 8-byte ``CKA_ID``) and ``label``.  If
        anything fails after the pair exists, both halves are destroyed again.
        """
        if not label:
            raise UsageError("a key needs a non-empty label")
        with self._guard.call(f"generating a {key_type.value} key"):
            if key_id is None:
                key_id = self._fresh_id()
            elif self._find({Attribute.ID: key_id}):
                self._clear_interrupted_generation(key_id)
            try:
                public, private = self._generate_pair(key_type, key_id, label)
                return self._token_key(private, public)
            except BaseException:
                self._destroy_quietly({Attribute.ID: key_id})
                raise

    def _clear_interrupted_generation(self, key_id: bytes) -> None:
        """Remove the public half a killed ``C_GenerateKeyPair`` left under ``key_id``.

        SoftHSM writes the two objects one after the other, so a process killed in between
        leaves a public key without its private key under the id the journal planned.
        Anything else under the id means it is taken.
        """
        public = self._find({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key_id})
        if len(public) != len(self._find({Attribute.ID: key_id})):
            raise UsageError(f"id {key_id.hex()} is already used on token '{self.label}'")
        log.info("token '%s': removing the public key left by an interrupted key "
                 "generation (id %s)", self.label, key_id.hex())  # fmt: skip
        for obj in public:
            obj.destroy()

    def import_key(
        self, private_key: PrivateKey, label: str, key_id: bytes | None = None
    ) -> TokenKey:
        """``C_CreateObject`` a private key (and its public key) from a software key.

        The private object is ``CKA_TOKEN``, ``CKA_PRIVATE``, ``CKA_SENSITIVE``, not
        ``CKA_EXTRACTABLE``, ``CKA_SIGN`` only, so it cannot leave the token again (its
        ``CKA_LOCAL`` is false: the token did not make it).  On failure nothing stays.
        """
        if not label:
            raise UsageError("a key needs a non-empty label")
        with self._guard.call("importing a key"):
            if key_id is None:
                key_id = self._fresh_id()
            elif self._find({Attribute.ID: key_id}):
                raise UsageError(f"id {key_id.hex()} is already used on token '{self.label}'")
            private_attrs, public_attrs = _import_templates(private_key)
            common = {Attribute.TOKEN: True, Attribute.ID: key_id, Attribute.LABEL: label}
            try:
                public = self._session.create_object({**public_attrs, **common,
                                                      Attribute.PRIVATE: False,
                                                      Attribute.VERIFY: True})  # fmt: skip
                private = self._session.create_object(
                    {
                        **private_attrs,
                        **common,
                        Attribute.PRIVATE: True,
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.SIGN: True,
                        Attribute.DECRYPT: False,
                        Attribute.DERIVE: False,
                        Attribute.UNWRAP: False,
                    }
                )
                return self._token_key(private, public)
            except BaseException:
                self._destroy_quietly({Attribute.ID: key_id})
                raise

    def _generate_pair(
        self, key_type: KeyType, key_id: bytes, label: str
    ) -> tuple[pkcs11.PublicKey, pkcs11.PrivateKey]:
        options: dict[str, Any] = {
            "id": key_id,
            "label": label,
            "store": True,
            "capabilities": MechanismFlag.SIGN | MechanismFlag.VERIFY,
            "public_template": {Attribute.PRIVATE: False},
            "private_template": {
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
            },
        }
        if key_type.curve is not None:
            params = self._session.create_domain_parameters(
                pkcs11.KeyType.EC,
                {Attribute.EC_PARAMS: encode_named_curve_parameters(key_type.curve.name)},
                local=True,
            )
            return params.generate_keypair(**options)
        return self._session.generate_keypair(pkcs11.KeyType.RSA, key_type.rsa_bits, **options)

    def _fresh_id(self) -> bytes:
        """A random ``CKA_ID`` no object on the token uses yet."""
        for _ in range(16):
            candidate = secrets.token_bytes(_ID_BYTES)
            if not self._find({Attribute.ID: candidate}):
                return candidate
        raise TokenError(f"token '{self.label}': could not find an unused CKA_ID")

    def find_key(self, *, key_id: bytes | None = None, label: str | None = None) -> TokenKey:
        """Find the one private key (``CKO_PRIVATE_KEY``) with ``key_id`` and/or ``label``.

        :raises UsageError: neither given.
        :raises KeyNotFoundError: none, or more than one, matches.
        """
        wanted = describe_selection(key_id, label)
        query: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
        if key_id is not None:
            query[Attribute.ID] = key_id
        if label is not None:
            query[Attribute.LABEL] = label
        with self._guard.call("looking up a key"):
            found = self._find(query)
            require_one_match([obj[Attribute.ID] for obj in found], wanted, noun="private key",
                              where=f"on token '{self.label}'")  # fmt: skip
            return self._token_key(found[0])

    def find_key_by_uri(self, uri: Pkcs11Uri) -> TokenKey:
        """Find the key a PKCS#11 URI names by ``object`` (label) and ``id``."""
        if uri.type not in (None, "private"):
            raise UsageError(f"the PKCS#11 URI names a {uri.type} object, not a private key")
        return self.find_key(key_id=uri.id, label=uri.object)

    def key_uri(self, key: TokenKey) -> Pkcs11Uri:
        """A PKCS#11 URI (RFC 7512) naming ``key`` on this token, without the module."""
        return Pkcs11Uri(
            token=self.label, serial=self.serial, object=key.label, id=key.key_id, type="private"
        )

    def delete_key(self, key: TokenKey) -> None:
        """Destroy the private and public key objects with ``key.key_id``."""
        with self._guard.call(f"deleting key '{key.label}'"):
            private = self._find(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key.key_id}
            )
            if not private:
                raise KeyNotFoundError(
                    f"no private key with id {key.key_id.hex()} on token '{self.label}'"
                )
            public = self._find({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key.key_id})
            for obj in private + public:
                obj.destroy()

    # --- certificates ---------------------------------------------------------------------

    def store_certificate(
        self, key: TokenKey, certificate: x509.Certificate, chain: Sequence[x509.Certificate]
    ) -> None:
        """Store ``certificate`` beside ``key`` and the CA ``chain`` (``CKO_CERTIFICATE``).

        The end-entity certificate gets the key's ``CKA_ID`` and ``CKA_LABEL`` and
        ``CKA_CERTIFICATE_CATEGORY`` 1; each chain certificate not on the token yet gets
        category 2, its subject key identifier as ``CKA_ID`` (see :func:`_ca_id`) and its
        common name as label.  All new objects are created first (and
        destroyed again if one fails); only then are earlier end-entity certificates under
        the key's id deleted.

        :raises CertificateMismatchError: ``certificate`` does not carry the key's public key.
        :raises KeyNotFoundError: ``key`` is not on this token.
        """
        _check_matches(key, certificate)
        with self._guard.call(f"storing the certificate of key '{key.label}'"):
            if not self._find({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key.key_id}):
                raise KeyNotFoundError(
                    f"no private key with id {key.key_id.hex()} on token '{self.label}'"
                )
            certs = self._certificates()
            earlier = [obj for obj, attrs in certs if _is_end_entity_of(attrs, key.key_id)]
            present = {attrs[Attribute.VALUE] for _, attrs in certs}
            leaf = certificate.public_bytes(serialization.Encoding.DER)
            templates = [_cert_template(leaf, key.key_id, key.label, CATEGORY_TOKEN_USER)]
            for number, ca in enumerate(chain, 1):
                der = ca.public_bytes(serialization.Encoding.DER)
                if der == leaf or der in present:
                    continue
                present.add(der)
                label = _common_name(ca) or f"{key.label} CA {number}"
                templates.append(_cert_template(der, _ca_id(ca), label, CATEGORY_AUTHORITY))
            created: list[pkcs11.Object] = []
            try:
                for template in templates:
                    created.append(self._session.create_object(template))
            except BaseException:
                for obj in created:
                    with contextlib.suppress(pkcs11.PKCS11Error):
                        obj.destroy()
                raise
            for obj in earlier:
                obj.destroy()

    def delete_certificates(self, key_id: bytes) -> None:
        """Destroy the end-entity certificates (category other than 2) under ``key_id``."""
        with self._guard.call("deleting certificates"):
            for obj, attrs in self._certificates({Attribute.ID: key_id}):
                if _is_end_entity_of(attrs, key_id):
                    obj.destroy()

    def inventory(self) -> Inventory:
        """The private keys and X.509 certificates on the token.

        Keys of types est-hw does not handle, and certificates that do not parse, are left
        out (and logged).  A certificate is a CA certificate when its
        ``CKA_CERTIFICATE_CATEGORY`` is 2, or when it is unspecified and no private key has
        its ``CKA_ID``.
        """
        with self._guard.call("listing objects"):
            keys = []
            key_ids = set()
            publics = {
                obj[Attribute.ID]: obj
                for obj in self._find({Attribute.CLASS: ObjectClass.PUBLIC_KEY})
            }
            for obj in self._find({Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
                key_ids.add(obj[Attribute.ID])
                try:
                    keys.append(self._token_key(obj, publics.get(obj[Attribute.ID])))
                except UnsupportedKeyError as exc:
                    log.info("token '%s': skipping key %s: %s", self.label, obj, exc)
            stored = []
            for _, attrs in self._certificates():
                try:
                    cert = x509.load_der_x509_certificate(attrs[Attribute.VALUE])
                except ValueError:
                    log.info("token '%s': skipping unparsable certificate", self.label)
                    continue
                category = attrs[Attribute.CERTIFICATE_CATEGORY]
                is_ca = category == CATEGORY_AUTHORITY or (
                    category != CATEGORY_TOKEN_USER and attrs[Attribute.ID] not in key_ids
                )
                stored.append(
                    StoredCertificate(cert, attrs[Attribute.ID], attrs[Attribute.LABEL], is_ca)
                )
        return Inventory(keys=keys, certificates=stored)

    def close(self) -> None:
        """Log out and close the session (``C_Logout``, ``C_CloseSession``); idempotent."""
        with self._guard.lock:
            if self._guard.closed:
                return
            self._guard.closed = True
            try:
                self._session.close()
            except pkcs11.PKCS11Error as exc:  # the session is gone anyway
                log.debug("token '%s': closing the session: %r", self.label, exc)

    # --- records: CKO_DATA objects of application "est-hw" ----------------------------------

    def put_record(self, name: str, data: bytes) -> None:
        """Store a private ``CKO_DATA`` object (``CKA_APPLICATION`` "est-hw", label ``name``).

        The new object is created before the old one is destroyed, so a crash in between
        leaves two copies, and :meth:`get_record` reads the newest (highest handle is not
        ordered, so the record carries its own sequence; see :func:`_record_value`).
        """
        with self._guard.call(f"writing record {name!r}"):
            old = self._find(_record_query(name))
            self._session.create_object(
                {
                    **_record_query(name),
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.MODIFIABLE: True,
                    Attribute.VALUE: _record_value(data, old),
                }
            )
            for obj in old:
                obj.destroy()

    def get_record(self, name: str) -> bytes | None:
        with self._guard.call(f"reading record {name!r}"):
            values = [bytes(obj[Attribute.VALUE]) for obj in self._find(_record_query(name))]
        return _newest_record(values)

    def delete_record(self, name: str) -> None:
        with self._guard.call(f"deleting record {name!r}"):
            for obj in self._find(_record_query(name)):
                obj.destroy()

    def __repr__(self) -> str:
        state = "closed" if self._guard.closed else "open"
        return f"<Pkcs11Backend token={self.label!r} serial={self.serial!r} {state}>"

    # --- helpers ----------------------------------------------------------------------------

    def _find(self, query: dict[Attribute, Any]) -> list[pkcs11.Object]:
        return list(self._session.get_objects(query))

    def _certificates(
        self, query: dict[Attribute, Any] | None = None
    ) -> list[tuple[pkcs11.Object, dict[Attribute, Any]]]:
        """X.509 certificate objects with their id, label, value and category."""
        full = {
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            **(query or {}),
        }
        result = []
        for obj in self._find(full):
            attrs = obj.get_attributes([Attribute.ID, Attribute.LABEL, Attribute.VALUE])
            try:
                attrs[Attribute.CERTIFICATE_CATEGORY] = obj[Attribute.CERTIFICATE_CATEGORY]
            except pkcs11.AttributeTypeInvalid:
                attrs[Attribute.CERTIFICATE_CATEGORY] = CATEGORY_UNSPECIFIED
            result.append((obj, attrs))
        return result

    def _token_key(self, private: pkcs11.Object, public: pkcs11.Object | None = None) -> TokenKey:
        """Wrap a private key object into a :class:`TokenKey` with a cryptography key."""
        attrs = private.get_attributes([Attribute.ID, Attribute.LABEL, Attribute.KEY_TYPE])
        key_id: bytes = attrs[Attribute.ID]
        label: str = attrs[Attribute.LABEL]
        p11_type = attrs[Attribute.KEY_TYPE]
        if not isinstance(private, pkcs11.PrivateKey) or not isinstance(private, pkcs11.SignMixin):
            raise UnsupportedKeyError(f"key '{label}' cannot sign (no CKA_SIGN)")
        if public is None:
            found = self._find({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key_id})
            public = found[0] if len(found) == 1 else None
        public_key: PublicKey
        if p11_type == pkcs11.KeyType.RSA:
            public_key = rsa_public_key_of(public if public is not None else private)
            key_type = KeyType.of_public_key(public_key)
            wrapped: Pkcs11EcPrivateKey | Pkcs11RsaPrivateKey = Pkcs11RsaPrivateKey(
                private, public_key, key_id=key_id, label=label, guard=self._guard
            )
        elif p11_type == pkcs11.KeyType.EC:
            if not isinstance(public, pkcs11.PublicKey):
                raise UnsupportedKeyError(f"EC key '{label}' has no public key object")
            public_key = ec_public_key_of(public)
            key_type = KeyType.of_public_key(public_key)
            wrapped = Pkcs11EcPrivateKey(
                private, public_key, key_id=key_id, label=label, guard=self._guard
            )
        else:
            raise UnsupportedKeyError(f"key '{label}' is a {p11_type.name} key")
        return TokenKey(private_key=wrapped, key_id=key_id, label=label, key_type=key_type)

    def _destroy_quietly(self, query: dict[Attribute, Any]) -> None:
        with contextlib.suppress(pkcs11.PKCS11Error):
            for obj in self._find(query):
                with contextlib.suppress(pkcs11.PKCS11Error):
                    obj.destroy()


# --- module level helpers ---------------------------------------------------------------------

_RECORD_APPLICATION = "est-hw"


def _import_templates(
    private_key: PrivateKey,
) -> tuple[dict[Attribute, Any], dict[Attribute, Any]]:
    """PKCS#11 attribute templates (private, public) for a software key."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        params = encode_named_curve_parameters(private_key.curve.name)
        size = (private_key.curve.key_size + 7) // 8
        point = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        value = private_key.private_numbers().private_value.to_bytes(size, "big")
        base = {Attribute.KEY_TYPE: pkcs11.KeyType.EC, Attribute.EC_PARAMS: params}
        return (
            {**base, Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.VALUE: value},
            {**base, Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.EC_POINT:
             _der_octet_string(point)},
        )  # fmt: skip
    numbers = private_key.private_numbers()
    public = numbers.public_numbers
    base = {
        Attribute.KEY_TYPE: pkcs11.KeyType.RSA,
        Attribute.MODULUS: _big(public.n),
        Attribute.PUBLIC_EXPONENT: _big(public.e),
    }
    private = {
        **base,
        Attribute.CLASS: ObjectClass.PRIVATE_KEY,
        Attribute.PRIVATE_EXPONENT: _big(numbers.d),
        Attribute.PRIME_1: _big(numbers.p),
        Attribute.PRIME_2: _big(numbers.q),
        Attribute.EXPONENT_1: _big(numbers.dmp1),
        Attribute.EXPONENT_2: _big(numbers.dmq1),
        Attribute.COEFFICIENT: _big(numbers.iqmp),
    }
    return private, {**base, Attribute.CLASS: ObjectClass.PUBLIC_KEY}


def _big(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def _der_octet_string(data: bytes) -> bytes:
    """CKA_EC_POINT is the DER OCTET STRING around the X9.62 point (PKCS#11 2.40 2.3.3)."""
    length = len(data)
    if length < 0x80:
        return b"\x04" + bytes([length]) + data
    size = (length.bit_length() + 7) // 8
    return b"\x04" + bytes([0x80 | size]) + length.to_bytes(size, "big") + data


def _record_query(name: str) -> dict[Attribute, Any]:
    return {
        Attribute.CLASS: ObjectClass.DATA,
        Attribute.APPLICATION: _RECORD_APPLICATION,
        Attribute.LABEL: name,
    }


def _record_value(data: bytes, older: list[pkcs11.Object]) -> bytes:
    """``data`` prefixed with an 8-byte sequence number above every older copy's."""
    sequence = max((int.from_bytes(bytes(o[Attribute.VALUE])[:8], "big") for o in older), default=0)
    return (sequence + 1).to_bytes(8, "big") + data


def _newest_record(values: list[bytes]) -> bytes | None:
    """The payload of the copy with the highest sequence number (see :func:`_record_value`)."""
    if not values:
        return None
    return max(values, key=lambda value: int.from_bytes(value[:8], "big"))[8:]


def _mapper() -> AttributeMapper:
    """python-pkcs11's attribute mapper, taught ``CKA_CERTIFICATE_CATEGORY`` (a CK_ULONG)."""
    mapper = AttributeMapper()
    mapper.register_handler(Attribute.CERTIFICATE_CATEGORY, *handle_ulong)
    return mapper


def _check_matches(key: TokenKey, certificate: x509.Certificate) -> None:
    """Refuse a certificate whose SubjectPublicKeyInfo is not the key's."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise CertificateMismatchError(
            f"the certificate for {certificate.subject.rfc4514_string()!r} does not carry the "
            f"public key of key '{key.label}' (id {key.key_id.hex()})"
        )


def _is_end_entity_of(attrs: dict[Attribute, Any], key_id: bytes) -> bool:
    return bool(
        attrs[Attribute.ID] == key_id
        and attrs[Attribute.CERTIFICATE_CATEGORY] != CATEGORY_AUTHORITY
    )


def _cert_template(der: bytes, cka_id: bytes, label: str, category: int) -> dict[Attribute, Any]:
    """``CKO_CERTIFICATE``/``CKC_X_509`` with ``CKA_SUBJECT``, ``CKA_ISSUER``,
    ``CKA_SERIAL_NUMBER`` (the DER INTEGER) and ``CKA_VALUE`` taken from the DER itself."""
    template = decode_x509_certificate(der)
    template.update(
        {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.ID: cka_id,
            Attribute.LABEL: label,
            Attribute.CERTIFICATE_CATEGORY: category,
        }
    )
    return template


def _ca_id(ca: x509.Certificate) -> bytes:
    """A stable ``CKA_ID`` for a CA certificate: its subject key identifier.

    The subjectKeyIdentifier extension when present, else SHA-1 over the subjectPublicKey
    bits (RFC 5280 section 4.2.1.2, method 1), so that it matches the authority key
    identifier of the certificates it issued.
    """
    try:
        return ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, ValueError):
        pass
    try:
        return x509.SubjectKeyIdentifier.from_public_key(ca.public_key()).digest
    except (TypeError, ValueError):
        spki = ca.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha1(spki, usedforsecurity=False).digest()


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) and value else None
