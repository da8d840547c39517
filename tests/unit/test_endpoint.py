"""Server URL and label handling (RFC 7030 section 3.2.2)."""

from __future__ import annotations

import pytest

from est_hw.errors import UsageError
from est_hw.est.client import EstEndpoint


def test_default_root_and_label() -> None:
    endpoint = EstEndpoint.parse("https://est.example:8443", "arbitraryLabel1")
    assert endpoint.url_for("simpleenroll") == (
        "https://est.example:8443/.well-known/est/arbitraryLabel1/simpleenroll"
    )
    assert endpoint.host == "est.example"


def test_no_label_and_scheme_defaults_to_https() -> None:
    endpoint = EstEndpoint.parse("est.example")
    assert endpoint.url_for("cacerts") == "https://est.example/.well-known/est/cacerts"


def test_explicit_root_path_is_kept() -> None:
    endpoint = EstEndpoint.parse("https://10.0.0.1:9443/custom/est/")
    assert endpoint.url_for("csrattrs") == "https://10.0.0.1:9443/custom/est/csrattrs"
    assert endpoint.host == "10.0.0.1"


@pytest.mark.parametrize(
    ("url", "label", "match"),
    [
        ("http://est.example", None, "not https"),
        ("ftp://est.example", None, "not https"),
        ("https://", None, "no host"),
        ("https://est.example/?x=1", None, "query"),
        ("http://u:p@est.example", None, "userinfo"),
        ("https://user:pw@est.example", None, "userinfo"),
        ("https://est.example", "a/b", "invalid label"),
        ("https://est.example", "", "invalid label"),
    ],
)
def test_bad_endpoints(url: str, label: str | None, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        EstEndpoint.parse(url, label)


def test_userinfo_password_is_not_echoed() -> None:
    with pytest.raises(UsageError) as info:
        EstEndpoint.parse("https://user:hunter2@est.example")
    assert "hunter2" not in str(info.value)
    assert "userinfo" in str(info.value)
