"""Shared plumbing of the est-hw fuzz targets (see docs/fuzzing.md).

A target is a module ``fuzz_<name>.py`` with a ``test_one_input(data: bytes)`` function
that feeds ``data`` to one decoder of :mod:`est_hw.est` and lets nothing escape but
:class:`est_hw.errors.EstHwError` subclasses: any other exception is a finding.  The same
function runs under atheris (``python fuzz/fuzz_<name>.py``) and under pytest
(``tests/unit/test_fuzz_targets.py``).

Run a target with atheris::

    .venv/bin/python fuzz/fuzz_base64.py -atheris_runs=100000 fuzz/corpus/base64

With no corpus directory on the command line, the target reads the seeds in
``fuzz/corpus/<name>`` (remade by ``python fuzz/make_corpus.py``) and keeps what libFuzzer
finds in ``fuzz/work/<name>`` (ignored by git), so the committed seeds stay as made.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
#: where libFuzzer writes the inputs it finds (not committed: see fuzz/.gitignore)
WORK_DIR = FUZZ_DIR / "work"
#: the packages whose code atheris instruments for coverage feedback
INSTRUMENTED = ("est_hw", "pyasn1", "pyasn1_modules", "email")


def corpus_of(name: str) -> list[bytes]:
    """The seed inputs of target ``name`` found under ``fuzz/corpus/<name>``."""
    directory = CORPUS_DIR / name
    if not directory.is_dir():
        return []
    return [path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()]


def run(name: str, load: Callable[[], Callable[[bytes], None]], argv: Sequence[str]) -> None:
    """Fuzz ``load()``'s one-input function with atheris (libFuzzer flags in ``argv``).

    ``load`` imports the code under test; it runs inside ``atheris.instrument_imports`` so
    that est_hw and pyasn1 report coverage.
    """
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        one_input = load()
    args = list(argv)
    if not any(not arg.startswith("-") for arg in args[1:]):
        work = WORK_DIR / name
        work.mkdir(parents=True, exist_ok=True)
        args.append(str(work))  # libFuzzer writes new inputs to the first directory
        seeds = CORPUS_DIR / name
        if seeds.is_dir():
            args.append(str(seeds))
    atheris.Setup(args, one_input)
    atheris.Fuzz()


def exercise_csrattrs(attributes: Any) -> None:
    """Touch everything the client reads from a decoded /csrattrs answer (the CLI prints all
    of it, the CSR builder honours some): a lazy property must not fail later either."""
    summary = {
        "oids": list(attributes.oids),
        "attributes": [(attr.oid, attr.values) for attr in attributes.attributes],
        "challenge_password_requested": attributes.challenge_password_requested,
        "key_type_hint": attributes.key_type_hint,
        "signature_hash_hint": attributes.signature_hash_hint,
        "extension_requests": [
            (ext.oid, ext.critical, ext.value) for ext in attributes.extension_requests
        ],
    }
    for oid in summary["oids"]:
        attributes.find_attribute(oid)
    template = attributes.template
    if template is not None:
        summary["template"] = (template.key_type_hint, template.version, template.extensions)
        for rdn in template.subject or ():
            for entry in rdn:
                text = entry.text
                if text is not None and not isinstance(text, str):
                    raise TypeError("NameAttributeTemplate.text is not a str")
    repr(summary)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run one of the fuzz_*.py targets, not the harness")
