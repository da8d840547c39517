"""est_hw.tls loads tlslite-ng's TLS engine without the integrations of its ``__init__``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def _fresh(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object."""
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_importing_the_tls_adapter_skips_tlslites_integrations() -> None:
    seen = _fresh(
        """
        import json, sys
        import est_hw.tls
        print(json.dumps({
            "api": "tlslite.api" in sys.modules,
            "asyncio": "asyncio" in sys.modules,
            "xmlrpc": "xmlrpc.client" in sys.modules,
            "smtplib": "smtplib" in sys.modules,
            "engine": "tlslite.tlsconnection" in sys.modules,
        }))
        """
    )
    assert seen == {
        "api": False,
        "asyncio": False,
        "xmlrpc": False,
        "smtplib": False,
        "engine": True,
    }


def test_the_package_api_is_still_there_for_other_code() -> None:
    seen = _fresh(
        """
        import json, sys
        import est_hw.tls
        from tlslite import mathtls
        after_submodule = "tlslite.api" in sys.modules
        from tlslite import TLSConnection, __version__
        import tlslite.tlsconnection
        print(json.dumps({
            "submodule_needs_no_api": not after_submodule,
            "same_class": TLSConnection is tlslite.tlsconnection.TLSConnection,
            "version": __version__,
            "mathtls": mathtls.__name__,
        }))
        """
    )
    assert seen["submodule_needs_no_api"] is True
    assert seen["same_class"] is True
    assert seen["mathtls"] == "tlslite.mathtls"
    assert isinstance(seen["version"], str) and seen["version"]


def test_a_tlslite_imported_first_is_left_alone() -> None:
    seen = _fresh(
        """
        import json, sys, warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import tlslite
        real = sys.modules["tlslite"]
        import est_hw.tls
        kept = sys.modules["tlslite"] is real
        print(json.dumps({"kept": kept, "api": "tlslite.api" in sys.modules}))
        """
    )
    assert seen == {"kept": True, "api": True}
