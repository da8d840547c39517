"""Public-area templates: the storage parents and est-hw's signing keys.

Two different storage parents exist on purpose (FIELD-NOTES: the same template with a
zero-filled or an empty ``unique`` field gives two different primary keys):

* :func:`srk_template`, the TCG storage root key template (TCG TPM v2.0 Provisioning
  Guidance 1.0, the ECC P-256 and RSA 2048 SRK templates, ``unique`` zero filled): the
  parent of keys est-hw persists when no SRK is persisted at ``0x81000001``.
* :func:`openssl_parent_template`, the owner primary key that tpm2-openssl (and
  tpm2-tss-engine, tpm2-pytss's ``TSSPrivKey``) recreate for a ``TSS2 PRIVATE KEY`` file
  whose parent is ``TPM_RH_OWNER`` (``0x40000001``): same attributes, ``unique`` empty.
  Key files must be made under this one, or tpm2-openssl cannot load them.

Both are ECC P-256 when the TPM implements ECC, else RSA 2048, the choice tpm2-openssl
makes too.  Keys are created with :data:`KEY_ATTRIBUTES`: ``fixedTPM``, ``fixedParent``,
``sensitiveDataOrigin`` (the TPM made the private key and it can never leave it),
``userWithAuth`` and ``sign``, never ``decrypt`` or ``restricted`` (TPM 2.0 Library Part 2,
section 8.3 ``TPMA_OBJECT``), scheme ``TPM_ALG_NULL`` so every signature scheme est-hw
uses (ECDSA, RSASSA, RSAPSS) is allowed at signing time.
"""

from __future__ import annotations

from typing import Any

from tpm2_pytss.constants import TPM2_ALG, TPM2_ECC, TPMA_OBJECT
from tpm2_pytss.types import (
    TPM2B_PUBLIC,
    TPMS_ECC_PARMS,
    TPMS_RSA_PARMS,
    TPMT_ECC_SCHEME,
    TPMT_KDF_SCHEME,
    TPMT_PUBLIC,
    TPMT_PUBLIC_PARMS,
    TPMT_RSA_SCHEME,
    TPMT_SYM_DEF_OBJECT,
    TPMU_PUBLIC_PARMS,
    TPMU_SYM_KEY_BITS,
    TPMU_SYM_MODE,
)

from est_hw.errors import UnsupportedKeyError
from est_hw.keys.base import KeyType

#: ``TPMA_OBJECT`` of every key est-hw creates.
KEY_ATTRIBUTES: int = (
    TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.SIGN_ENCRYPT
)

#: ``TPMA_OBJECT`` of a storage parent (TCG Provisioning Guidance, SRK templates).
STORAGE_ATTRIBUTES: int = (
    TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.NODA
    | TPMA_OBJECT.RESTRICTED
    | TPMA_OBJECT.DECRYPT
)

_CURVES = {KeyType.EC_P256: TPM2_ECC.NIST_P256, KeyType.EC_P384: TPM2_ECC.NIST_P384}


def _aes128_cfb() -> Any:
    return TPMT_SYM_DEF_OBJECT(
        algorithm=TPM2_ALG.AES,
        keyBits=TPMU_SYM_KEY_BITS(aes=128),
        mode=TPMU_SYM_MODE(aes=TPM2_ALG.CFB),
    )


def _storage_area(ecc: bool) -> Any:
    if ecc:
        parameters = TPMU_PUBLIC_PARMS(
            eccDetail=TPMS_ECC_PARMS(
                symmetric=_aes128_cfb(),
                scheme=TPMT_ECC_SCHEME(scheme=TPM2_ALG.NULL),
                curveID=TPM2_ECC.NIST_P256,
                kdf=TPMT_KDF_SCHEME(scheme=TPM2_ALG.NULL),
            )
        )
    else:
        parameters = TPMU_PUBLIC_PARMS(
            rsaDetail=TPMS_RSA_PARMS(
                symmetric=_aes128_cfb(),
                scheme=TPMT_RSA_SCHEME(scheme=TPM2_ALG.NULL),
                keyBits=2048,
                exponent=0,
            )
        )
    return TPMT_PUBLIC(
        type=TPM2_ALG.ECC if ecc else TPM2_ALG.RSA,
        nameAlg=TPM2_ALG.SHA256,
        objectAttributes=STORAGE_ATTRIBUTES,
        authPolicy=b"",
        parameters=parameters,
    )


def srk_template(ecc: bool) -> Any:
    """The TCG SRK template as a ``TPM2B_PUBLIC``: ``unique`` is 32 zero bytes for x and
    y (ECC) or 256 zero bytes (RSA) (TCG Provisioning Guidance, SRK templates)."""
    area = _storage_area(ecc)
    if ecc:
        area.unique.ecc.x = bytes(32)
        area.unique.ecc.y = bytes(32)
    else:
        area.unique.rsa = bytes(256)
    return TPM2B_PUBLIC(publicArea=area)


def openssl_parent_template(ecc: bool) -> Any:
    """tpm2-openssl's owner primary template (``primaryEccTemplate``/``primaryRsaTemplate``
    in its ``tpm2-provider-pkey.c``): the SRK template with an empty ``unique``."""
    return TPM2B_PUBLIC(publicArea=_storage_area(ecc))


def key_parameters(key_type: KeyType) -> Any:
    """The ``TPMT_PUBLIC_PARMS`` of ``key_type``, for ``TPM2_TestParms`` (Part 3 §30.3)."""
    area = key_template(key_type).publicArea
    return TPMT_PUBLIC_PARMS(type=area.type, parameters=area.parameters)


def key_template(key_type: KeyType) -> Any:
    """The ``TPM2B_PUBLIC`` template of a signing key of ``key_type`` (name alg SHA-256)."""
    curve = _CURVES.get(key_type)
    if curve is not None:
        return TPM2B_PUBLIC(
            publicArea=TPMT_PUBLIC(
                type=TPM2_ALG.ECC,
                nameAlg=TPM2_ALG.SHA256,
                objectAttributes=KEY_ATTRIBUTES,
                authPolicy=b"",
                parameters=TPMU_PUBLIC_PARMS(
                    eccDetail=TPMS_ECC_PARMS(
                        symmetric=TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL),
                        scheme=TPMT_ECC_SCHEME(scheme=TPM2_ALG.NULL),
                        curveID=curve,
                        kdf=TPMT_KDF_SCHEME(scheme=TPM2_ALG.NULL),
                    )
                ),
            )
        )
    if key_type.is_ec:  # pragma: no cover - every EC KeyType has a curve above
        raise UnsupportedKeyError(f"{key_type.value} keys are not supported on a TPM")
    return TPM2B_PUBLIC(
        publicArea=TPMT_PUBLIC(
            type=TPM2_ALG.RSA,
            nameAlg=TPM2_ALG.SHA256,
            objectAttributes=KEY_ATTRIBUTES,
            authPolicy=b"",
            parameters=TPMU_PUBLIC_PARMS(
                rsaDetail=TPMS_RSA_PARMS(
                    symmetric=TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL),
                    scheme=TPMT_RSA_SCHEME(scheme=TPM2_ALG.NULL),
                    keyBits=key_type.rsa_bits,
                    exponent=0,  # the TPM's default, 65537
                )
            ),
        )
    )


def is_signing_key(public_area: Any) -> bool:
    """A key est-hw can sign with: ``sign`` set, ``restricted`` clear.

    Keys made elsewhere may also have ``decrypt`` (tpm2-openssl's default EC and RSA keys
    do); est-hw uses them for signing only.
    """
    attributes = int(public_area.objectAttributes)
    return bool(attributes & TPMA_OBJECT.SIGN_ENCRYPT) and not attributes & TPMA_OBJECT.RESTRICTED


def has_est_hw_profile(public_area: Any) -> bool:
    """Exactly the attributes est-hw gives its keys (used to recognise half-made keys)."""
    return int(public_area.objectAttributes) == KEY_ATTRIBUTES


def is_storage_key(public_area: Any) -> bool:
    """A key that can be a parent: ``restricted`` and ``decrypt`` set, ``sign`` clear."""
    attributes = int(public_area.objectAttributes)
    return bool(attributes & TPMA_OBJECT.RESTRICTED and attributes & TPMA_OBJECT.DECRYPT) and (
        not attributes & TPMA_OBJECT.SIGN_ENCRYPT
    )
