"""Channel binding of the CSR to the TLS connection (RFC 7030 section 3.5).

The CSR's challengePassword carries base64 of tls-unique (RFC 5929, TLS 1.2) or, as an
opt-in, of tls-exporter (RFC 9266, TLS 1.3); so the CSR is signed only after the
handshake, and sent on the same connection.
"""

from __future__ import annotations

import base64
import enum
import logging
from dataclasses import dataclass

from est_hw.errors import ProtocolError
from est_hw.est.client import EstClient
from est_hw.est.csrattrs import CsrAttributes

log = logging.getLogger(__name__)


class ChannelBinding(enum.Enum):
    """``--channel-binding``: which binding the CSR carries."""

    AUTO = "auto"
    TLS_UNIQUE = "tls-unique"
    TLS_EXPORTER = "tls-exporter"
    NONE = "none"


@dataclass(frozen=True)
class BoundChallenge:
    """The challengePassword for a CSR and the connection it is bound to."""

    kind: ChannelBinding
    password: str
    connection: object


def bind(
    client: EstClient, mode: ChannelBinding, attributes: CsrAttributes | None = None
) -> BoundChallenge | None:
    """Compute the challengePassword ``mode`` asks for, on the client's live connection.

    ``attributes`` are the /csrattrs (RFC 7030 section 4.5) just fetched on that
    connection; when None they are fetched now, which also opens the connection the CSR
    will travel on.  ``auto`` binds with tls-unique when the server lists
    challengePassword and the connection is TLS 1.2; at TLS 1.3 it binds only when
    ``tls-exporter`` is asked for explicitly.

    :raises ProtocolError: when the binding asked for does not exist on this connection
        (tls-unique at TLS 1.3, tls-exporter at TLS 1.2 without extended master secret).
    """
    if mode is ChannelBinding.NONE:
        return None
    if attributes is None:
        attributes = client.csrattrs()
    connection = client.last_connection()
    if mode is ChannelBinding.AUTO:
        if not attributes.challenge_password_requested:
            return None
        if connection.tls_version != "TLSv1.2":
            log.warning(
                "the server asks for challengePassword, but tls-unique does not exist in "
                "%s; use --channel-binding tls-exporter if the server supports RFC 9266",
                connection.tls_version,
            )
            return None
        mode = ChannelBinding.TLS_UNIQUE
    value = connection.tls_unique if mode is ChannelBinding.TLS_UNIQUE else None
    if mode is ChannelBinding.TLS_EXPORTER:
        value = connection.tls_exporter
    if not value:
        raise ProtocolError(
            f"{mode.value} is not available on this {connection.tls_version} connection "
            "(tls-unique needs TLS 1.2; tls-exporter needs TLS 1.3 or extended master secret)"
        )
    log.info("binding the CSR to the TLS connection with %s", mode.value)
    return BoundChallenge(mode, base64.b64encode(value).decode("ascii"), connection.stream)
