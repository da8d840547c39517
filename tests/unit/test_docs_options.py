"""The documentation names only commands and options that the CLI really has.

Every ``est-hw COMMAND ... --option`` written in README.md, docs/*.md and the systemd
units in docs/systemd/ (in shell code blocks and in inline code) is checked against the
click command it names: a renamed or removed option makes this test fail, so the guide
cannot silently drift from ``est-hw --help``.  Only long options are checked; values,
short options and other programs' options in the same line are left alone.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from est_hw.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted(
    [
        REPO / "README.md",
        *(REPO / "docs").glob("*.md"),
        *(REPO / "docs" / "systemd").glob("*.service"),
        *(REPO / "docs" / "systemd").glob("*.timer"),
    ]
)

_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_SHELL = {"sh", "bash", "shell", "console"}
_INLINE = re.compile(r"`([^`\n]+)`")
_SUBSTITUTION = re.compile(r"\$\([^()]*\)")
_SEPARATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")"}


@dataclass(frozen=True)
class Invocation:
    """One ``est-hw ...`` command line found in a document."""

    where: str
    words: tuple[str, ...]


def _snippets(text: str) -> Iterator[tuple[int, str]]:
    """(line number, shell text) of every shell code block line and inline code span.

    Blocks in another language, or none (program output), are left out.
    """
    fenced: list[tuple[int, int]] = []
    for block in _FENCE.finditer(text):
        fenced.append(block.span())
        if block.group(1).strip() in _SHELL:
            first = text.count("\n", 0, block.start(2)) + 1
            yield from _joined_lines(block.group(2), first)
    for span in _INLINE.finditer(text):
        if not any(lo <= span.start() < hi for lo, hi in fenced):
            yield text.count("\n", 0, span.start()) + 1, span.group(1)


def _joined_lines(text: str, first: int = 1) -> Iterator[tuple[int, str]]:
    """(number of its first line, line) with backslash continuations joined."""
    pending: list[str] = []
    start = first
    for number, line in enumerate(text.split("\n"), first):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        yield start, " ".join([*pending, line])
        pending = []
    if pending:
        yield start, " ".join(pending)


def _unit_lines(text: str) -> Iterator[tuple[int, str]]:
    """A systemd unit: its lines (continuations joined), comments left out."""
    for number, line in _joined_lines(text):
        if not line.lstrip().startswith("#"):
            yield number, line.partition("=")[2] if line.startswith("Exec") else line


def _words(shell: str) -> list[str]:
    shell = _SUBSTITUTION.sub("SUBST", shell.split(" #", 1)[0])
    try:
        lexer = shlex.shlex(shell, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        return list(lexer)
    except ValueError:  # an unbalanced quote in prose: plain words are good enough
        return shell.split()


def _is_est_hw(word: str) -> bool:
    return word == "est-hw" or word.endswith("/est-hw")


def invocations(path: Path, name: str | None = None) -> Iterator[Invocation]:
    """Every est-hw command line in ``path`` (named ``name`` in messages)."""
    name = name or str(path.relative_to(REPO))
    text = path.read_text(encoding="utf-8")
    lines = _unit_lines(text) if path.suffix in (".service", ".timer") else _snippets(text)
    for number, shell in lines:
        words = _words(shell)
        for i, word in enumerate(words):
            if not _is_est_hw(word):
                continue
            rest = words[i + 1 :]
            end = next((j for j, w in enumerate(rest) if w in _SEPARATORS), len(rest))
            yield Invocation(f"{name}:{number}", tuple(rest[:end]))


def _long_options(command: click.Command) -> dict[str, click.Parameter]:
    options: dict[str, click.Parameter] = {}
    for param in command.get_params(click.Context(command)):  # with --help
        for name in (*param.opts, *param.secondary_opts):
            if name.startswith("--"):
                options[name] = param
    return options


def _takes_value(param: click.Parameter) -> bool:
    return isinstance(param, click.Option) and not param.is_flag and not param.count


def _all_long_options(group: click.Group) -> set[str]:
    found = set(_long_options(group))
    for command in group.commands.values():
        found |= set(_long_options(command))
        if isinstance(command, click.Group):
            found |= _all_long_options(command)
    return found


def check(invocation: Invocation, group: click.Group = cli) -> list[str]:
    """What is wrong with ``invocation``: unknown commands and options."""
    problems: list[str] = []
    words = list(invocation.words)
    command: click.Command = group
    options = _long_options(group)
    # Options before the command belong to the group (--config PATH, --no-config).
    while words and words[0].startswith("--"):
        name = words.pop(0).partition("=")[0]
        if name not in options:
            # `est-hw --tpm` in prose means "the --tpm option of est-hw's commands".
            if name not in _all_long_options(group):
                problems.append(f"{invocation.where}: est-hw has no option {name}")
            return problems
        if _takes_value(options[name]) and "=" not in name and words:
            words.pop(0)
    path = ["est-hw"]
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        name = words.pop(0)
        if name.isupper():  # a placeholder: `est-hw COMMAND --help`
            return problems
        sub = command.commands.get(name)
        if sub is None:
            if command is group and not path[1:]:
                problems.append(f"{invocation.where}: est-hw has no command {name!r}")
            return problems
        command = sub
        path.append(name)
    if isinstance(command, click.Group):
        return problems  # `est-hw config` alone
    options = _long_options(command)
    if path[1:] == ["config", "show"] and words and not words[0].startswith("-"):
        # `est-hw config show enroll --key-type ...`: the flags are those of `enroll`.
        shown = group.commands.get(words[0])
        if shown is None:
            problems.append(f"{invocation.where}: est-hw has no command {words[0]!r}")
            return problems
        options = {**options, **_long_options(shown)}
        path.append(words.pop(0))
    for word in words:
        if word.startswith("--") and len(word) > 2:
            name = word.partition("=")[0]
            if name not in options:
                problems.append(f"{invocation.where}: `{' '.join(path)}` has no option {name}")
    return problems


def test_every_documented_est_hw_option_exists() -> None:
    found = [inv for path in DOCS for inv in invocations(path)]
    # The guide's walkthroughs alone hold dozens; far fewer means the extractor broke.
    assert len(found) > 50, [inv.where for inv in found]
    problems = [problem for inv in found for problem in check(inv)]
    assert problems == []


def test_the_guide_is_checked() -> None:
    assert REPO / "docs" / "guide.md" in DOCS
    assert any(True for _ in invocations(REPO / "docs" / "guide.md"))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("est-hw enroll --server https://x --key-type ec-p256 --json", []),
        ("est-hw enroll --bogus 1", ["`est-hw enroll` has no option --bogus"]),
        ("est-hw show --subject CN=x", ["`est-hw show` has no option --subject"]),
        ("est-hw --config c.toml renew --before=30d", []),
        ("est-hw frobnicate --json", ["est-hw has no command 'frobnicate'"]),
        ("est-hw config show enroll --key-type rsa-2048 --all", []),
        (
            "est-hw config show enroll --rekey",
            ["`est-hw config show enroll` has no option --rekey"],
        ),
        ("est-hw --tpm", []),
        ("est-hw COMMAND --help", []),
        ("est-hw --tmp", ["est-hw has no option --tmp"]),
        ("sudo .venv/bin/est-hw cacerts --out a.pem | openssl x509 --nope", []),
        ("est-hw cacerts --ca-fingerprint sha256:$(openssl x509 -noout --x | cut -d= -f2)", []),
        ("cd x && est-hw show --tpm --tcti swtpm:port=2321; est-hw show --nope", ["--nope"]),
    ],
)
def test_the_checker_itself(line: str, expected: list[str], tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"```sh\n{line}\n```\n")
    problems = []
    for inv in invocations(doc, "doc.md"):
        problems += [p.split(": ", 1)[1] for p in check(inv)]
    assert len(problems) == len(expected)
    for problem, want in zip(problems, expected, strict=True):
        assert want in problem
