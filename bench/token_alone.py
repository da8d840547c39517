"""The "token alone" baseline: the PKCS#11 calls of one enrollment, with python-pkcs11 only.

Usage: ``python bench/token_alone.py MODULE TOKEN_LABEL [TOKEN_LABEL ...]`` (SOFTHSM2_CONF
and EST_HW_PIN in the environment).  With one label it prints one JSON object,
milliseconds per step:

- ``import``: importing python-pkcs11;
- ``open``: loading the module, finding the token, opening a session, logging in;
- ``keygen``: an EC P-256 token key pair (private, sensitive, not extractable);
- ``sign``: one ECDSA signature over a SHA-256 digest (what signing a CSR asks of it);
- ``store``: three certificate objects (the leaf, the issuing CA and the root);
- ``journal``: what est-hw's enrollment journal does (create a private data object,
  create its successor and destroy the first, destroy the successor; with the searches).

With several labels it does all the steps on each token in turn (one device after
another, as one provisioning worker does) and prints ``{"devices": N, "ms": T}``, T being
the time from the first open to the last close, without the import: run it as J processes
at once to see what the token alone manages at J-way concurrency.

Nothing of est-hw is imported: this is what the token itself costs for those steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Any


def main(argv: list[str]) -> int:
    module, labels = argv[1], argv[2:]
    if len(labels) > 1:
        import pkcs11

        start = time.perf_counter()
        for label in labels:
            one_device(pkcs11.lib(module), label)
        elapsed = (time.perf_counter() - start) * 1000
        print(json.dumps({"devices": len(labels), "ms": round(elapsed, 2)}))
        return 0
    print(json.dumps(one_device(None, labels[0], module)))
    return 0


def one_device(lib: Any, label: str, module: str = "") -> dict[str, float]:
    """The token steps of one enrollment on token ``label``; ms per step.  ``lib`` is
    the loaded module, or None to import python-pkcs11 and load ``module`` (timed)."""
    times: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        times[name] = round((now - mark) * 1000, 2)
        mark = now

    import pkcs11
    from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    lap("import")
    token = (lib if lib is not None else pkcs11.lib(module)).get_token(token_label=label)
    session = token.open(rw=True, user_pin=os.environ["EST_HW_PIN"])
    lap("open")
    params = session.create_domain_parameters(
        KeyType.EC,
        {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
        local=True,
    )
    _, private = params.generate_keypair(
        store=True,
        label="alone",
        id=b"alone-01",
        private_template={
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.PRIVATE: True,
            Attribute.SIGN: True,
        },
    )
    lap("keygen")
    digest = hashlib.sha256(os.urandom(300)).digest()
    private.sign(digest, mechanism=Mechanism.ECDSA)  # type: ignore[union-attr]
    lap("sign")
    for number in range(3):
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.LABEL: f"alone-{number}",
                Attribute.ID: bytes([number]),
                Attribute.SUBJECT: b"\x30\x00",
                Attribute.VALUE: os.urandom(650),
            }
        )
    lap("store")
    record = {
        Attribute.CLASS: ObjectClass.DATA,
        Attribute.APPLICATION: "est-hw",
        Attribute.LABEL: "est-hw/pending/alone",
    }
    for step in range(3):
        old = list(session.get_objects(record))
        if step < 2:
            session.create_object(
                {
                    **record,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.VALUE: b"x" * 700,
                }
            )
        for obj in old:
            obj.destroy()
    lap("journal")
    session.close()
    return times


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
