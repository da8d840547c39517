"""A provisioning plan: one EST server, one key and naming scheme, many devices (TOML).

The plan is read with :mod:`tomllib` into frozen dataclasses and checked as a whole before
anything is touched: unknown tables and keys, malformed values, templates that name
unknown variables and secrets written into the plan are refused with a
:class:`PlanError` (exit 2) that names the file, the table and the key.

Secrets never live in a plan: the HTTP password comes from ``password_file`` or
``password_source``, a token PIN from ``pin_source`` (``env:VAR`` or ``file:PATH``); the
CLI resolves them.  Relative paths (``ca_file``, ``password_file``, ``file:`` sources, the
CSV file, ``state_dir``) are relative to the plan file.  See docs/provisioning.md.
"""

from __future__ import annotations

import csv
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from est_hw.errors import UsageError
from est_hw.tomlfile import read_toml

#: The key types a plan may name (the values of :class:`est_hw.keys.base.KeyType`).
KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")
#: Template variables of every device.
COMMON_VARIABLES = ("index",)
#: Template variables of a PKCS#11 token.
PKCS11_VARIABLES = ("token_label", "token_serial", "slot")
#: Template variables of a TPM.
TPM_VARIABLES = ("tcti",)
#: Key names that hold a secret value: refused in plans and config files.
_SECRET_NAME = re.compile(
    r"^(password|passwd|pin|pin_value|so_pin|user_pin|secret|owner_auth|key_auth|auth"
    r"|.*_(password|pin|secret))$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PlanError(UsageError):
    """The plan file is unreadable, malformed or asks for something contradictory."""


def is_secret_name(name: str) -> bool:
    """Whether a plan or config key would hold a secret value (``password``, ``pin``, ...)."""
    return bool(_SECRET_NAME.match(name.replace("-", "_").lower()))


@dataclass(frozen=True)
class ServerPlan:
    """``[server]``: where to enroll and how to trust and authenticate (RFC 7030 3.2-3.6).

    :param password_source: ``env:VAR`` or ``file:PATH`` (``file:`` relative to the plan).
    """

    url: str
    label: str | None = None
    ca_file: Path | None = None
    ca_fingerprint: str | None = None
    system_trust: bool = False
    username: str | None = None
    password_file: Path | None = None
    password_source: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class KeyPlan:
    """``[key]``: the key generated on every device.

    :param key_type: ``None`` lets /csrattrs choose (else ec-p256), as ``enroll`` does.
    :param label: template of the key label; default the subject's CN.
    :param csrattrs: ask /csrattrs and apply it (RFC 7030 4.5).
    """

    key_type: str | None = None
    label: str | None = None
    csrattrs: bool = True


@dataclass(frozen=True)
class SubjectPlan:
    """``[subject]``: templates of the subject (RFC 4514) and subjectAltNames."""

    template: str | None = None
    san: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValuesPlan:
    """``[values]``: per-device values from a CSV file, matched on one variable.

    :param match: the device variable (``token_serial``, ``token_label``, ``slot``,
        ``index``, ``tcti``) whose value selects the row; the CSV has a column of that name.
    :param rows: the rows, by the value of the ``match`` column.
    """

    csv: Path
    match: str
    columns: tuple[str, ...]
    rows: Mapping[str, Mapping[str, str]]

    def __reduce__(self) -> tuple[Callable[..., ValuesPlan], tuple[Any, ...]]:
        """Pickle the (read-only) rows as dicts: plans go to provisioning workers."""
        rows = {value: dict(row) for value, row in self.rows.items()}
        return _values_plan, (self.csv, self.match, self.columns, rows)


def _values_plan(
    csv: Path, match: str, columns: tuple[str, ...], rows: dict[str, dict[str, str]]
) -> ValuesPlan:
    """A :class:`ValuesPlan` with read-only rows (how one is unpickled)."""
    frozen = {value: MappingProxyType(row) for value, row in rows.items()}
    return ValuesPlan(csv, match, columns, MappingProxyType(frozen))


@dataclass(frozen=True)
class DeviceGroup:
    """One ``[[devices]]`` entry: tokens of one PKCS#11 module, or TPMs by TCTI.

    :param number: position in the plan, from 1 (for messages).
    :param tokens: ``"all"`` initialised tokens of the module, or token labels (str) and
        slot ids (int).
    :param pin_source: where the PIN of these tokens is (default env EST_HW_PIN).
    """

    number: int
    kind: Literal["pkcs11", "tpm"]
    module: str | None = None
    tokens: Literal["all"] | tuple[str | int, ...] = ()
    pin_source: str | None = None
    tctis: tuple[str, ...] = ()
    owner_auth_source: str | None = None
    key_auth_source: str | None = None
    state_dir: Path | None = None


@dataclass(frozen=True)
class DeviceNames:
    """What one device is enrolled as: the rendered templates."""

    subject: str | None
    sans: tuple[str, ...]
    key_label: str


@dataclass(frozen=True)
class Plan:
    """A whole plan file."""

    path: Path
    server: ServerPlan
    key: KeyPlan
    subject: SubjectPlan
    values: ValuesPlan | None
    groups: tuple[DeviceGroup, ...]

    def names_for(self, variables: Mapping[str, str]) -> DeviceNames:
        """Render subject, SANs and key label for a device with ``variables``.

        CSV values join the device's own variables (matched on :attr:`ValuesPlan.match`);
        values substituted into the subject are escaped as RFC 4514 requires.

        :raises UsageError: no CSV row for the device, or nothing to name it by.
        """
        values = dict(variables)
        if self.values is not None:
            wanted = values.get(self.values.match)
            row = self.values.rows.get(wanted) if wanted is not None else None
            if row is None:
                raise UsageError(
                    f"no row with {self.values.match}={wanted!r} in {self.values.csv.name}"
                )
            values.update(row)
        subject = (
            _render(self.subject.template, values, escape=_escape_rfc4514)
            if self.subject.template
            else None
        )
        sans = tuple(_render(san, values) for san in self.subject.san)
        if self.key.label:
            key_label = _render(self.key.label, values)
        else:
            key_label = _common_name(subject) or ""
        if not key_label:
            raise UsageError("no key label: give [key] label or a CN in [subject] template")
        return DeviceNames(subject, sans, key_label)


def load_plan(path: Path) -> Plan:
    """Read and check a plan file.

    :raises PlanError: naming the file, table and key of the first problem.
    """
    return _Reader(path).plan(read_toml(path, what="plan", error=PlanError))


def refuse_secrets(table: Mapping[str, Any], where: str) -> None:
    """Refuse a literal secret (``password``, ``pin``, ...) anywhere in ``table``.

    :raises UsageError: naming the key and the ``*_file`` / ``*_source`` to use instead.
    """
    for name, value in table.items():
        if is_secret_name(name):
            raise UsageError(
                f"{where}: {name!r} would put a secret in a file; secrets come only from "
                f"a file or the environment: use {_secret_alternative(name)}"
            )
        if isinstance(value, Mapping):
            refuse_secrets(value, f"{where} [{name}]")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    refuse_secrets(item, f"{where} [[{name}]]")


def _secret_alternative(name: str) -> str:
    lowered = name.lower()
    if "pin" in lowered:
        return "pin_source = 'env:VAR' or 'file:PATH'"
    if "auth" in lowered:
        return f"{lowered}_source = 'env:VAR' or 'file:PATH'"
    return "password_file = PATH or password_source = 'env:VAR' / 'file:PATH'"


class _Reader:
    """Turns the TOML document into a :class:`Plan`, with precise error messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.resolve().parent

    def fail(self, where: str, message: str) -> PlanError:
        return PlanError(f"plan {self.path}: {where}: {message}")

    def plan(self, data: dict[str, Any]) -> Plan:
        try:
            refuse_secrets(data, f"plan {self.path}")
        except UsageError as exc:
            raise PlanError(str(exc)) from None
        self.known(data, "top level", {"server", "key", "subject", "values", "devices"})
        if "server" not in data:
            raise self.fail("[server]", "missing: the plan must name the EST server")
        server = self.server(self.table(data["server"], "server"))
        key = self.key(self.table(data.get("key", {}), "key"))
        subject = self.subject(self.table(data.get("subject", {}), "subject"))
        values = self.values(self.table(data["values"], "values")) if "values" in data else None
        devices = data.get("devices")
        if not isinstance(devices, list) or not devices:
            raise self.fail("[[devices]]", "missing: the plan must list at least one group")
        groups = tuple(
            self.group(self.table(entry, f"[[devices]] #{number}"), number)
            for number, entry in enumerate(devices, 1)
        )
        plan = Plan(self.path, server, key, subject, values, groups)
        self.check_templates(plan)
        return plan

    # --- tables -------------------------------------------------------------------------

    def server(self, table: dict[str, Any]) -> ServerPlan:
        where = "[server]"
        self.known(table, where, {"url", "label", "ca_file", "ca_fingerprint", "system_trust",
                                  "username", "password_file", "password_source",
                                  "timeout"})  # fmt: skip
        url = self.text(table, where, "url")
        if url is None:
            raise self.fail(where, "url is missing")
        if table.get("password_file") is not None and table.get("password_source") is not None:
            raise self.fail(where, "give password_file or password_source, not both")
        timeout = table.get("timeout", 30.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise self.fail(where, "timeout must be a positive number of seconds")
        server = ServerPlan(
            url=url,
            label=self.text(table, where, "label"),
            ca_file=self.path_value(table, where, "ca_file"),
            ca_fingerprint=self.text(table, where, "ca_fingerprint"),
            system_trust=self.flag(table, where, "system_trust", default=False),
            username=self.text(table, where, "username"),
            password_file=self.path_value(table, where, "password_file"),
            password_source=self.source(table, where, "password_source"),
            timeout=float(timeout),
        )
        if server.ca_file is None and server.ca_fingerprint is None and not server.system_trust:
            raise self.fail(where, "no trust anchor: give ca_file, ca_fingerprint or "
                                   "system_trust = true (RFC 7030 3.6)")  # fmt: skip
        if server.username is None and (server.password_file or server.password_source):
            raise self.fail(where, "a password without username")
        return server

    def key(self, table: dict[str, Any]) -> KeyPlan:
        where = "[key]"
        self.known(table, where, {"type", "label", "csrattrs"})
        key_type = self.text(table, where, "type")
        if key_type is not None and key_type not in KEY_TYPES:
            raise self.fail(where, f"type {key_type!r} is not one of {', '.join(KEY_TYPES)}")
        return KeyPlan(
            key_type=key_type,
            label=self.text(table, where, "label"),
            csrattrs=self.flag(table, where, "csrattrs", default=True),
        )

    def subject(self, table: dict[str, Any]) -> SubjectPlan:
        where = "[subject]"
        self.known(table, where, {"template", "san"})
        sans = table.get("san", [])
        if isinstance(sans, str):
            sans = [sans]
        if not isinstance(sans, list) or not all(isinstance(s, str) and s for s in sans):
            raise self.fail(where, "san must be a list of 'dns:...', 'ip:...' templates")
        plan = SubjectPlan(template=self.text(table, where, "template"), san=tuple(sans))
        if plan.template is None and not plan.san:
            raise self.fail(where, "give template and/or san: the certificate needs a name")
        return plan

    def values(self, table: dict[str, Any]) -> ValuesPlan:
        where = "[values]"
        self.known(table, where, {"csv", "match"})
        path = self.path_value(table, where, "csv")
        match = self.text(table, where, "match")
        if path is None or match is None:
            raise self.fail(where, "give csv (a file) and match (the device variable)")
        if match not in (*COMMON_VARIABLES, *PKCS11_VARIABLES, *TPM_VARIABLES):
            raise self.fail(where, f"match {match!r} is not a device variable")
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                reader = csv.DictReader(handle)
                columns = tuple(name.strip() for name in reader.fieldnames or ())
                records = [
                    {name.strip(): (value or "").strip() for name, value in row.items() if name}
                    for row in reader
                ]
        except OSError as exc:
            raise self.fail(where, f"cannot read {path}: {exc.strerror}") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise self.fail(where, f"{path} is not a UTF-8 CSV file: {exc}") from None
        if match not in columns:
            raise self.fail(where, f"{path.name} has no column {match!r} (columns: "
                                   f"{', '.join(columns) or 'none'})")  # fmt: skip
        for name in columns:
            if not _IDENTIFIER.match(name):
                raise self.fail(where, f"{path.name}: column {name!r} is not a plain name")
            if name != match and name in (*COMMON_VARIABLES, *PKCS11_VARIABLES, *TPM_VARIABLES):
                raise self.fail(where, f"{path.name}: column {name!r} shadows a device variable")
        rows: dict[str, Mapping[str, str]] = {}
        for number, record in enumerate(records, 2):
            value = record.get(match, "")
            if value in rows:
                raise self.fail(where, f"{path.name} line {number}: {match} {value!r} repeats")
            rows[value] = MappingProxyType({k: v for k, v in record.items() if k != match})
        return ValuesPlan(path, match, columns, MappingProxyType(rows))

    def group(self, table: dict[str, Any], number: int) -> DeviceGroup:
        where = f"[[devices]] #{number}"
        self.known(table, where, {"module", "tokens", "pin_source", "tcti", "tctis",
                                  "owner_auth_source", "key_auth_source", "state_dir"})  # fmt: skip
        module = self.text(table, where, "module")
        tctis: list[Any] = []
        if "tcti" in table:
            tctis.append(table["tcti"])
        if "tctis" in table:
            listed = table["tctis"]
            tctis += listed if isinstance(listed, list) else [listed]
        if module is not None and tctis:
            raise self.fail(where, "a group is either PKCS#11 (module) or TPM (tcti), not both")
        if module is not None:
            for name in ("owner_auth_source", "key_auth_source", "state_dir"):
                if name in table:
                    raise self.fail(where, f"{name} is for TPM groups (tcti)")
            return DeviceGroup(
                number=number,
                kind="pkcs11",
                module=module,
                tokens=self.tokens(table, where),
                pin_source=self.source(table, where, "pin_source"),
            )
        if not tctis:
            raise self.fail(where, "give module (PKCS#11) or tcti / tctis (TPM)")
        if not all(isinstance(t, str) and t for t in tctis):
            raise self.fail(where, "tcti / tctis must be TCTI strings, e.g. 'swtpm:port=2321'")
        if "tokens" in table or "pin_source" in table:
            raise self.fail(where, "tokens and pin_source are for PKCS#11 groups (module)")
        if len(set(tctis)) != len(tctis):
            raise self.fail(where, "a TCTI is listed twice")
        return DeviceGroup(
            number=number,
            kind="tpm",
            tctis=tuple(tctis),
            owner_auth_source=self.source(table, where, "owner_auth_source"),
            key_auth_source=self.source(table, where, "key_auth_source"),
            state_dir=self.path_value(table, where, "state_dir"),
        )

    def tokens(self, table: dict[str, Any], where: str) -> Literal["all"] | tuple[str | int, ...]:
        tokens = table.get("tokens")
        if tokens == "all":
            return "all"
        if isinstance(tokens, str | int) and not isinstance(tokens, bool):
            tokens = [tokens]
        if (
            not isinstance(tokens, list)
            or not tokens
            or not all(isinstance(t, str | int) and not isinstance(t, bool) for t in tokens)
        ):
            raise self.fail(where, 'tokens must be "all" or a list of token labels and slot ids')
        if len(set(tokens)) != len(tokens):
            raise self.fail(where, "a token is listed twice")
        return tuple(tokens)

    # --- values -------------------------------------------------------------------------

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where if where.startswith("[") else f"[{where}]", "must be a table")
        return value

    def known(self, table: Mapping[str, Any], where: str, names: set[str]) -> None:
        unknown = sorted(set(table) - names)
        if unknown:
            raise self.fail(
                where, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(names))})"
            )

    def text(self, table: Mapping[str, Any], where: str, name: str) -> str | None:
        value = table.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"{name} must be a non-empty string")
        return value

    def flag(self, table: Mapping[str, Any], where: str, name: str, *, default: bool) -> bool:
        value = table.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(where, f"{name} must be true or false")
        return value

    def path_value(self, table: Mapping[str, Any], where: str, name: str) -> Path | None:
        text = self.text(table, where, name)
        return self.base / Path(text).expanduser() if text is not None else None

    def source(self, table: Mapping[str, Any], where: str, name: str) -> str | None:
        """An ``env:VAR`` / ``file:PATH`` secret source; a relative file is made absolute."""
        text = self.text(table, where, name)
        if text is None:
            return None
        kind, sep, ref = text.partition(":")
        if not sep or not ref or kind not in ("env", "file"):
            raise self.fail(where, f"{name} must be env:VAR or file:PATH")
        if kind == "file":
            return f"file:{self.base / Path(ref).expanduser()}"
        return text

    # --- templates ----------------------------------------------------------------------

    def check_templates(self, plan: Plan) -> None:
        """Every template names known variables only, and renders with sample values."""
        kinds = {group.kind for group in plan.groups}
        available = set(COMMON_VARIABLES)
        if kinds == {"pkcs11"}:
            available |= set(PKCS11_VARIABLES)
        elif kinds == {"tpm"}:
            available |= set(TPM_VARIABLES)
        if plan.values is not None:
            if plan.values.match not in available:
                raise self.fail("[values]", f"match {plan.values.match!r} is not a variable of "
                                            "every device group")  # fmt: skip
            available |= set(plan.values.columns)
        templates = [("[subject] template", plan.subject.template), ("[key] label", plan.key.label)]
        templates += [("[subject] san", san) for san in plan.subject.san]
        for where, template in templates:
            if template is None:
                continue
            for name in _template_fields(template, where, self.fail):
                if name not in available:
                    raise self.fail(where, f"unknown variable {{{name}}} (available: "
                                           f"{', '.join(sorted(available))})")  # fmt: skip
        sample = {name: "1" for name in available}
        try:
            names = _sample_names(plan, sample)
        except UsageError as exc:
            raise self.fail("[subject]", str(exc)) from None
        if names.subject is not None:
            from est_hw.x509.names import parse_subject

            try:
                parse_subject(names.subject)
            except UsageError as exc:
                raise self.fail("[subject] template", str(exc)) from None


def _sample_names(plan: Plan, sample: Mapping[str, str]) -> DeviceNames:
    """Render the templates with placeholder values (no CSV lookup)."""
    no_csv = Plan(plan.path, plan.server, plan.key, plan.subject, None, plan.groups)
    return no_csv.names_for(sample)


def _template_fields(template: str, where: str, fail: Callable[[str, str], PlanError]) -> list[str]:
    """The variable names of a ``str.format`` template; only plain names are allowed."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise fail(where, f"malformed template {template!r}: {exc}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not _IDENTIFIER.match(field) or conversion is not None or "{" in (spec or ""):
            raise fail(where, f"{{{field}}}: use plain {{name}} or {{name:spec}} variables")
        names.append(field)
    return names


def _render(
    template: str, values: Mapping[str, str], escape: Callable[[str], str] | None = None
) -> str:
    """``template`` with ``{name}`` / ``{name:spec}`` replaced (escaped when asked)."""
    out = []
    for literal, field, spec, _ in string.Formatter().parse(template):
        out.append(literal)
        if field is None:
            continue
        raw = values[field]
        if spec:
            try:
                text = format(int(raw), spec) if raw.lstrip("-").isdigit() else format(raw, spec)
            except ValueError as exc:
                raise UsageError(f"{{{field}:{spec}}} with {raw!r}: {exc}") from None
        else:
            text = raw
        out.append(escape(text) if escape else text)
    return "".join(out)


def _escape_rfc4514(value: str) -> str:
    """Escape an attribute value for an RFC 4514 string (section 2.4)."""
    escaped = "".join("\\" + ch if ch in ',+"\\<>;=' else ch for ch in value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def _common_name(subject: str | None) -> str | None:
    """The first CN of an RFC 4514 subject string, unescaped."""
    if not subject:
        return None
    from cryptography.x509.oid import NameOID

    from est_hw.x509.names import parse_subject

    names = parse_subject(subject).get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None
