"""Reading the TOML files a user writes (config files, provisioning plans)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from est_hw.errors import UsageError


def read_toml(path: Path, *, what: str, error: type[UsageError] = UsageError) -> dict[str, Any]:
    """The TOML document at ``path`` (UTF-8, TOML 1.0 via :mod:`tomllib`).

    :param what: how messages name the file, e.g. ``"config file"`` or ``"plan"``.
    :raises error: the file cannot be read, is not UTF-8, or is not valid TOML.
    """
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"the {what} {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path}: not valid TOML: {exc}") from None
