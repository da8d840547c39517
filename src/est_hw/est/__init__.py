"""The RFC 7030 (EST) protocol layer.

``messages`` (with ``codec`` and ``csrattrs`` behind it) is the pure encode/decode of every
EST media type, with no I/O; ``client`` speaks HTTP.  Nothing heavy is imported here: the
ASN.1 and PKCS#7 machinery loads when a message is first decoded.
"""
