"""/serverkeygen and /fullcmc for the test server (RFC 7030 sections 4.4 and 4.3).

serverkeygen: the server makes an EC P-256 (or RSA-2048) key, issues a certificate for it
with the CSR's subject and subjectAltName, and answers multipart/mixed with the key as
``application/pkcs8`` and the certificate as certs-only (section 4.4.2).  ``pkcs1`` answers
with a PKCS#1 RSAPrivateKey labelled as pkcs8, as one real server does.  When the CSR
carries an AsymmetricDecryptKeyIdentifier (section 4.4.1.2) and the test configured the
recipient's RSA public key, the key part is ``smime-type=server-generated-key``: CMS
EnvelopedData (RSAES-PKCS1-v1_5 key transport, AES-128-CBC) around a SignedData by the
issuing CA around the PKCS#8 key (or, to test the client, by other signers, inside the
PKI and outside: :data:`~est_hw.testing.config.KeySigner`).  cryptography's
PKCS#7 builders write id-data as the eContentType, not id-ct-KP-aKeyPackage (RFC 6031);
good enough for a test peer.

fullcmc: a Full PKI Request (RFC 5272 section 3.2: CMS SignedData around PKIData) whose
first TaggedRequest is a PKCS#10 request is answered with a Simple PKI Response (RFC 5272
section 4.1: certs-only SignedData) as ``smime-type=CMC-response``.  The SignedData
signature is not checked, and id-data is accepted as eContentType: the server is a test
peer for est-hw's pass-through, not a CMC implementation.
"""

from __future__ import annotations

import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from est_hw.testing.ca import TestCa
from est_hw.testing.config import KeySigner, Response
from est_hw.testing.wire import BodyError, decode_base64_body, encode_base64_body, pkcs7_certs_only

CMC_RESPONSE = "application/pkcs7-mime; smime-type=CMC-response"


SERVER_GENERATED_KEY = "application/pkcs7-mime; smime-type=server-generated-key"
ASYMM_DECRYPT_KEY_ID = x509.ObjectIdentifier("1.2.840.113549.1.9.16.2.54")


def decrypt_key_id(csr: x509.CertificateSigningRequest) -> bytes | None:
    """The CSR's AsymmetricDecryptKeyIdentifier (section 4.4.1.2), if it has one."""
    try:
        return csr.attributes.get_attribute_for_oid(ASYMM_DECRYPT_KEY_ID).value
    except x509.AttributeNotFound:
        return None


def serverkeygen_response(
    ca: TestCa,
    csr: x509.CertificateSigningRequest,
    *,
    days: int,
    rsa_key: bool,
    pkcs1: bool,
    encrypt_to: rsa.RSAPublicKey | None = None,
    signer: KeySigner = "ca",
) -> Response:
    """Make a key, issue its certificate, answer multipart/mixed (section 4.4.2).

    :param encrypt_to: answer the key CMS-encrypted to this RSA key (section 4.4.2).
    :param signer: who signs the SignedData inside that encryption.
    """
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key or pkcs1
        else ec.generate_private_key(ec.SECP256R1())
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(csr.subject)
    for extension in csr.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    cert = ca.issue(builder.sign(key, hashes.SHA256()), days=days)
    key_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL
        if pkcs1
        else serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_type = "application/pkcs8"
    if encrypt_to is not None:
        key_der = _envelop_key(ca, key_der, encrypt_to, signer)
        key_type = SERVER_GENERATED_KEY
    boundary = "est-" + secrets.token_hex(8)
    body = b"".join(
        [
            f"--{boundary}\r\nContent-Type: {key_type}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n".encode(),
            encode_base64_body(key_der, eol=b"\r\n"),
            f"--{boundary}\r\nContent-Type: application/pkcs7-mime; smime-type=certs-only\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n".encode(),
            encode_base64_body(pkcs7_certs_only([cert]), eol=b"\r\n"),
            f"--{boundary}--\r\n".encode(),
        ]
    )
    return Response(200, body, [("Content-Type", f"multipart/mixed; boundary={boundary}")])


def _envelop_key(
    ca: TestCa, key_der: bytes, recipient: rsa.RSAPublicKey, signer: KeySigner
) -> bytes:
    """EnvelopedData(SignedData(PKCS#8)) to ``recipient`` (RFC 7030 section 4.4.2).

    cryptography's envelope builder wants a recipient certificate: the CA makes a
    throwaway one for the public key (only its issuer and serial reach the wire).
    """
    import datetime

    from cryptography.hazmat.primitives.serialization import pkcs7

    signer_cert, signer_key = ca.issuing_cert, ca.issuing_key
    if signer == "foreign":
        other = TestCa.create("foreign")
        signer_cert, signer_key = other.issuing_cert, other.issuing_key
    elif signer == "keygen-service":
        signer_key = ec.generate_private_key(ec.SECP256R1())
        service = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name.from_rfc4514_string("CN=est-hw test key generation service")
        )
        signer_cert = ca.issue(service.sign(signer_key, hashes.SHA256()), days=1)
    options = [pkcs7.PKCS7Options.Binary]
    if signer == "ca-not-included":
        options.append(pkcs7.PKCS7Options.NoCerts)
    signed = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(key_der)
        .add_signer(signer_cert, signer_key, hashes.SHA256())
        .sign(serialization.Encoding.DER, options)
    )
    if signer == "tampered":  # DER SignedData ends with the (only) signature's value
        signed = signed[:-1] + bytes([signed[-1] ^ 0x01])
    now = datetime.datetime.now(datetime.UTC)
    recipient_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=serverkeygen recipient"))
        .issuer_name(ca.issuing_cert.subject)
        .public_key(recipient)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca.issuing_key, hashes.SHA256())
    )
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(signed)
        .add_recipient(recipient_cert)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def csr_of_full_pki_request(body: bytes) -> x509.CertificateSigningRequest:
    """The PKCS#10 request inside a Full PKI Request (RFC 5272 sections 3.2, 3.2.1.2.1).

    :raises BodyError: not base64, not SignedData around PKIData, or no PKCS#10 in it.
    """
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_modules import rfc5652, rfc6402

    der = decode_base64_body(body)
    try:
        info, _ = decoder.decode(der, asn1Spec=rfc5652.ContentInfo())
        signed, _ = decoder.decode(info["content"], asn1Spec=rfc5652.SignedData())
        content = signed["encapContentInfo"]["eContent"]
        pki_data, _ = decoder.decode(bytes(content), asn1Spec=rfc6402.PKIData())
        for tagged in pki_data["reqSequence"]:
            if tagged.getName() == "tcr":
                request = tagged["tcr"]["certificationRequest"]
                return x509.load_der_x509_csr(encoder.encode(request))
    except Exception as exc:  # the ASN.1 decoder's errors are not an API
        raise BodyError(f"not a Full PKI Request: {type(exc).__name__}") from None
    raise BodyError("the Full PKI Request holds no PKCS#10 request")


def fullcmc_response(ca: TestCa, body: bytes, *, days: int) -> Response:
    """Issue the request and answer a Simple PKI Response (RFC 5272 section 4.1)."""
    csr = csr_of_full_pki_request(body)
    if not csr.is_signature_valid:
        raise BodyError("the PKCS#10 request's signature does not verify")
    cert = ca.issue(csr, days=days)
    return Response(
        200,
        encode_base64_body(pkcs7_certs_only([cert, *ca.chain])),
        [("Content-Type", CMC_RESPONSE), ("Content-Transfer-Encoding", "base64")],
    )


def build_full_pki_request(
    csr: x509.CertificateSigningRequest, key: ec.EllipticCurvePrivateKey
) -> bytes:
    """A Full PKI Request for tests: PKIData{reqSequence: [tcr 1: csr]} in SignedData
    signed by ``key`` with a self-signed certificate (DER)."""
    import datetime

    from cryptography.hazmat.primitives.serialization import pkcs7
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_modules import rfc2986, rfc6402

    pki_data = rfc6402.PKIData()
    tagged = rfc6402.TaggedRequest()
    tcr = tagged.getComponentByName("tcr")
    tcr["bodyPartID"] = 1
    request, _ = decoder.decode(
        csr.public_bytes(serialization.Encoding.DER), asn1Spec=rfc2986.CertificationRequest()
    )
    tcr["certificationRequest"] = request
    tagged["tcr"] = tcr
    pki_data["reqSequence"].append(tagged)
    now = datetime.datetime.now(datetime.UTC)
    signer = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(csr.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(encoder.encode(pki_data))
        .add_signer(signer, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
