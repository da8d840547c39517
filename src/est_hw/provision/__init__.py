"""The enrollment flows: trust, enroll, re-enroll, renew (plain functions, no I/O of
their own beyond the token and the EST server)."""

from est_hw.provision.binding import ChannelBinding
from est_hw.provision.enroll import EnrollRequest, EnrollResult, enroll, reenroll
from est_hw.provision.identity import client_identity, select_enrolled_key, stored_certificate
from est_hw.provision.trust import ServerSession, TrustOptions, establish_trust

__all__ = [
    "ChannelBinding",
    "EnrollRequest",
    "EnrollResult",
    "ServerSession",
    "TrustOptions",
    "client_identity",
    "enroll",
    "establish_trust",
    "reenroll",
    "select_enrolled_key",
    "stored_certificate",
]
