"""Which HTTP proxy, if any, to tunnel through: HTTPS_PROXY and NO_PROXY, as curl reads
them (lower-case names first; NO_PROXY entries are host names, domain suffixes, or ``*``).
"""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit


def proxy_for(url: str) -> str | None:
    """The proxy URL for ``url`` from the environment, or None (direct)."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get("https")
    if not proxy:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    # CPython has it (undocumented, not in typeshed); it implements the NO_PROXY rules.
    if urllib.request.proxy_bypass_environment(netloc, proxies):  # type: ignore[attr-defined]
        return None
    return proxy
