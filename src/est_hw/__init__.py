"""est-hw: an EST (RFC 7030) client for keys that live in hardware.

The key is generated inside a PKCS#11 token or a TPM 2.0, the CSR and the TLS handshake
are signed there, and the issued certificate is written back beside the key.
"""

__version__ = "0.1.0"
