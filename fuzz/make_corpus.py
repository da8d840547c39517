"""Write the seed corpus of the fuzz targets: ``python fuzz/make_corpus.py [DIR]``.

Seeds are small, well-formed (and a few nearly well-formed) inputs for each target, built
from a throwaway test CA (for signed_data: the fixed-key CA of fuzz_signed_data.py), so
nothing binary is committed that a script cannot remake.  The
default output is ``fuzz/corpus/<target>/seed-NNN``; every seed is under 10 KB.
``seeds()`` is also what ``tests/unit/test_fuzz_targets.py`` feeds the targets.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

MAX_SEED = 10 * 1024

RFC7030_CSRATTRS = (
    # RFC 7030 section 4.5.2 example (challengePassword, ecPublicKey/secp384r1,
    # extensionRequest with a bare macAddress OID, ecdsa-with-SHA384)
    b"MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJBgcrBgEBAQEWBggqhkjOPQQDAw=="
)
RETRY_AFTER = (
    "0",
    "1",
    "120",
    "315360000",
    "  60\t",
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "Sunday, 06-Nov-94 08:49:37 GMT",
    "Sun Nov  6 08:49:37 1994",
    "Wed, 01 Jan 2031 00:00:00 GMT",
    "Wed, 01 Jan 2031 00:00:00 +0200",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "soon",
    "-5",
    "1.5",
    "",
)
CONTENT_TYPES = (
    "application/pkcs7-mime; smime-type=certs-only",
    "application/pkcs7-mime",
    'Application/PKCS7-MIME; Smime-Type="certs-only"; name=cert.p7c',
    "application/x-pkcs7-mime; smime-type=certs-only",
    "application/pkcs7-mime; smime-type=CMC-response",
    "application/csrattrs",
    "application/csrattrs; charset=utf-8",
    "text/html; charset=utf-8",
    'application/pkcs7-mime; smime-type="a;b"; smime-type=certs-only',
    ";",
    "",
)


def _certs_only_bodies() -> list[bytes]:
    from cryptography.hazmat.primitives.serialization import Encoding

    from est_hw.est.codec import encode_base64_body, encode_certs_only
    from est_hw.testing.ca import TestCa

    ca = TestCa.create("fuzz seed")
    chain = encode_certs_only(ca.chain)
    one = encode_certs_only([ca.root_cert])
    empty = encode_certs_only([])
    b64 = base64.b64encode(one)
    crlf76 = b"".join(b64[i : i + 76] + b"\r\n" for i in range(0, len(b64), 76))
    return [
        b"\x00" + encode_base64_body(chain),
        b"\x00" + encode_base64_body(one) + b"\x00",
        b"\x00" + crlf76,
        b"\x00" + b"-----BEGIN PKCS7-----\n" + encode_base64_body(one) + b"-----END PKCS7-----\n",
        b"\x00" + one,
        b"\x00" + b64,
        b"\x00" + encode_base64_body(empty),
        b"\x00" + encode_base64_body(ca.root_cert.public_bytes(Encoding.DER)),
        b"\x01" + one,
        b"\x01" + chain,
        b"\x01" + empty,
    ]


def _csrattrs_ders() -> list[bytes]:
    from est_hw.est.csrattrs import (
        OID_CERTIFICATION_REQUEST_INFO_TEMPLATE,
        OID_CHALLENGE_PASSWORD,
        OID_EC_PUBLIC_KEY,
        OID_EXTENSION_REQUEST,
        OID_RSA_ENCRYPTION,
        CsrAttribute,
        NameAttributeTemplate,
        RequestedExtension,
        encode_csrattrs,
        encode_extensions_value,
        encode_integer_value,
        encode_oid_value,
        encode_template,
    )

    san = RequestedExtension("2.5.29.17", False, bytes.fromhex("300d820b6578616d706c652e636f6d"))
    utf8_cn = b"\x0c\x05dev-1"
    rsa_dummy = bytes.fromhex("300c020500c0000001020301 0001".replace(" ", ""))
    templates = [
        encode_template(
            subject=[[NameAttributeTemplate("2.5.4.3", None)]],
            public_key_algorithm=OID_EC_PUBLIC_KEY,
            public_key_parameters=encode_oid_value("1.3.132.0.34"),
            extensions=[RequestedExtension("2.5.29.17", False, None), san],
        ),
        encode_template(
            subject=[
                [NameAttributeTemplate("2.5.4.10", b"\x0c\x04ACME")],
                [NameAttributeTemplate("2.5.4.3", utf8_cn)],
            ],
            public_key_algorithm=OID_RSA_ENCRYPTION,
            subject_public_key=rsa_dummy,
            attributes=[CsrAttribute(OID_CHALLENGE_PASSWORD, ())],
        ),
        encode_template(subject=[]),
    ]
    return [
        bytes.fromhex("3000"),
        base64.b64decode(RFC7030_CSRATTRS),
        encode_csrattrs([OID_CHALLENGE_PASSWORD, "1.2.840.10045.4.3.3"]),
        encode_csrattrs(
            [
                CsrAttribute(OID_EC_PUBLIC_KEY, (encode_oid_value("1.2.840.10045.3.1.7"),)),
                CsrAttribute(OID_RSA_ENCRYPTION, (encode_integer_value(3072),)),
                CsrAttribute(OID_EXTENSION_REQUEST, (encode_extensions_value([san]),)),
                "1.3.6.1.1.1.1.22",
            ]
        ),
        *(
            encode_csrattrs([CsrAttribute(OID_CERTIFICATION_REQUEST_INFO_TEMPLATE, (t,))])
            for t in templates
        ),
    ]


def _signed_data_ders() -> list[bytes]:
    """SignedData around a (fixed) PKCS#8 key, as RFC 7030 section 4.4.2 sends one: EC
    signers of the fixed CA of fuzz_signed_data (so a SignedData without certificates
    verifies against the target's candidates) and an RSA signer it issues; then a few
    near-misses."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.serialization import pkcs7
    from fuzz_signed_data import fixed_ca, rsa_signer
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_modules import rfc5652

    from est_hw.est.codec import encode_certs_only

    ca = fixed_ca()
    content = ec.derive_private_key(0x5EED, ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    rsa_cert, rsa_key = rsa_signer(ca)
    sha256, sha384 = hashes.SHA256(), hashes.SHA384()
    no_attrs, no_certs = pkcs7.PKCS7Options.NoAttributes, pkcs7.PKCS7Options.NoCerts
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    pss384 = padding.PSS(padding.MGF1(hashes.SHA384()), padding.PSS.DIGEST_LENGTH)

    def sign(
        signers: list[
            tuple[
                x509.Certificate,
                ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
                hashes.SHA256 | hashes.SHA384,
                padding.PSS | None,
            ]
        ],
        *options: pkcs7.PKCS7Options,
    ) -> bytes:
        builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
        for cert, key, digest, rsa_padding in signers:
            builder = builder.add_signer(cert, key, digest, rsa_padding=rsa_padding)
        return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary, *options])

    def by_key_identifier(der: bytes) -> bytes:
        """The same SignedData with its signers named by subjectKeyIdentifier (5.3)."""
        info, _ = decoder.decode(der, asn1Spec=rfc5652.ContentInfo())
        signed, _ = decoder.decode(info["content"], asn1Spec=rfc5652.SignedData())
        certs = {c.serial_number: c for c in ca.chain}
        for signer in signed["signerInfos"]:
            cert = certs[int(signer["sid"]["issuerAndSerialNumber"]["serialNumber"])]
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            signer["version"] = 3
            signer["sid"]["subjectKeyIdentifier"] = ski.digest
        signed["version"] = 3
        info["content"] = encoder.encode(signed)
        return bytes(encoder.encode(info))

    issuing = (ca.issuing_cert, ca.issuing_key, sha256, None)
    ec_signed = sign([issuing])
    return [
        ec_signed,
        sign([(ca.issuing_cert, ca.issuing_key, sha384, None)]),
        sign([issuing], no_attrs),
        sign([issuing], no_certs),
        sign([(ca.issuing_cert, ca.issuing_key, sha384, None)], no_certs, no_attrs),
        sign([(ca.root_cert, ca.root_key, sha384, None), issuing], no_certs),
        sign([(rsa_cert, rsa_key, sha256, None)]),
        sign([(rsa_cert, rsa_key, sha256, pss)]),
        sign([(rsa_cert, rsa_key, sha384, pss384)], no_attrs),
        by_key_identifier(sign([issuing], no_certs)),
        by_key_identifier(sign([(ca.root_cert, ca.root_key, sha384, None)], no_attrs)),
        encode_certs_only(ca.chain),
        ec_signed[: len(ec_signed) // 2],
        bytes.fromhex("3000"),
    ]


def seeds() -> dict[str, list[bytes]]:
    """Target name -> its seed inputs (in the byte layout its one-input function expects)."""
    from est_hw.est.codec import encode_base64_body

    certs_only = _certs_only_bodies()
    csrattrs = _csrattrs_ders()
    base64_bodies = [seed[1:] for seed in certs_only if seed[0] == 0]
    base64_bodies += [encode_base64_body(der) for der in csrattrs]
    base64_bodies += [b"", b"\x00", b"====", b"QQ==\r\n\x00", b"-----BEGIN X-----\nQQ==\n"]
    csrattrs_bodies = [b"\x00" + encode_base64_body(der) for der in csrattrs]
    csrattrs_bodies += [b"\x01" + der for der in csrattrs] + [b"\x00", b"\x00\x00\n"]
    return {
        "base64": base64_bodies,
        "certs_only": certs_only,
        "csrattrs": csrattrs,
        "csrattrs_response": csrattrs_bodies,
        "retry_after": [bytes([i % 2]) + v.encode("latin-1") for i, v in enumerate(RETRY_AFTER)],
        "media_type": [bytes([i]) + v.encode("latin-1") for i in range(8) for v in CONTENT_TYPES],
        "signed_data": _signed_data_ders(),
    }


def write(directory: Path) -> int:
    """Write every seed under ``directory/<target>/``; returns how many were written."""
    count = 0
    for name, inputs in seeds().items():
        target = directory / name
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("seed-*"):
            old.unlink()
        for number, data in enumerate(inputs):
            if len(data) > MAX_SEED:
                raise ValueError(f"seed {name}/{number} is {len(data)} bytes (max {MAX_SEED})")
            (target / f"seed-{number:03d}").write_bytes(data)
            count += 1
    return count


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "corpus"
    print(f"wrote {write(out)} seeds under {out}")
