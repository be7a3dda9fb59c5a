"""The words every command shares (docs/USAGE.md, "Vocabulary"), defined once: the package
version behind ``--version``, the one list syntax
(``a,b,c`` and inclusive ranges ``FIRST..LAST`` or ``FIRST..LAST/STEP``), and the command class
that keeps an old spelling of an option working for one release with a one-line deprecation
note.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata

import click

DISTRIBUTION = "alob-toolkit"
FALLBACK_VERSION = "0.1.0"  # when the project runs from a checkout that is not installed


def package_version() -> str:
    """The installed ``alob-toolkit`` version, else :data:`FALLBACK_VERSION`."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return FALLBACK_VERSION


def version_option(func):
    """``--version``: print the command's name and the package version, then exit."""
    return click.version_option(package_version(), "--version", package_name=DISTRIBUTION,
                                message=f"%(prog)s ({DISTRIBUTION}) %(version)s",
                                help="Print the alob-toolkit version and exit.")(func)


def _number(text: str, kind: type) -> float | int:
    value = kind(text.strip())
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(text)
    return value


def _range(text: str, kind: type) -> list:
    """``FIRST..LAST`` or ``FIRST..LAST/STEP``, both ends included."""
    span, _, step_text = text.partition("/")
    first_text, _, last_text = span.partition("..")
    first, last = _number(first_text, kind), _number(last_text, kind)
    step = _number(step_text, kind) if step_text else kind(1)
    if step <= 0 or last < first:
        raise ValueError(text)
    count = int(math.floor((last - first) / step + 1e-9)) + 1
    return [kind(round(first + k * step, 10)) for k in range(count)]


def parse_list(text: str, kind: type = int) -> list:
    """The one list syntax: values separated by commas, each a number or an inclusive range
    ``FIRST..LAST`` (step 1) or ``FIRST..LAST/STEP``: ``0..4`` is 0, 1, 2, 3, 4; ``1..5/0.5`` is
    1, 1.5 … 5; ``0,2,5..7`` is 0, 2, 5, 6, 7. A ``ValueError`` names the syntax."""
    values: list = []
    try:
        for item in text.split(","):
            if item.strip():
                values += _range(item, kind) if ".." in item else [_number(item, kind)]
        if not values:
            raise ValueError(text)
    except ValueError:
        raise ValueError(f"{text!r}: expected a comma-separated list such as 0,2,4 or a range FIRST..LAST "
                         "or FIRST..LAST/STEP (both ends included), e.g. 0..4 or 1..5/0.5") from None
    return values


def check_device(ctx: click.Context | None, param: click.Parameter | None, value: str) -> str:
    """``--device``'s values in every command: ``auto`` (the GPU when torch sees one, else the
    CPU), ``cpu``, ``cuda`` or ``cuda:N``; a click callback."""
    if re.fullmatch(r"auto|cpu|cuda(:\d+)?", value) is None:
        raise click.BadParameter(f"{value!r}: auto, cpu, cuda or cuda:N")
    return value


def deprecated(old: str, new: str) -> str:
    """The one-line note printed when an old spelling is used."""
    return f"warning: {old} is deprecated and will be removed after the next release; use {new}"


@dataclass(frozen=True)
class Renamed:
    """An option's old name (``--src``), the new one (``--data``) and, when the value's syntax or
    numbering changed too, how an old value becomes a new one."""

    old: str
    new: str
    convert: Callable[[str], str] | None = None


@dataclass(frozen=True)
class OldSyntax:
    """An option whose name stays but whose old value syntax is deprecated: ``is_old`` tells an
    old value, ``convert`` gives the new spelling of it."""

    option: str
    is_old: Callable[[str], bool]
    convert: Callable[[str], str]


class VocabCommand(click.Command):
    """A command that accepts the old spellings of its options (``renamed``, ``old_syntax``) and
    its old positional arguments (``positionals``: the options they now are, in order), rewrites
    them to the current ones before parsing, and prints one deprecation line per old spelling."""

    def __init__(self, *args, renamed: Sequence[Renamed] = (), old_syntax: Sequence[OldSyntax] = (),
                 positionals: Sequence[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.renamed = {r.old: r for r in renamed}
        self.old_syntax = {o.option: o for o in old_syntax}
        self.positionals = tuple(positionals)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args, notes = rewrite_args(self, args)
        if not ctx.resilient_parsing:
            for note in dict.fromkeys(notes):
                click.echo(note, err=True)
        return super().parse_args(ctx, args)


def _takes_value(command: click.Command, name: str) -> bool:
    for param in command.params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return not (param.is_flag or param.count)
    return True  # an unknown option: click reports it; assume it has a value


def _rewrite_option(command: VocabCommand, name: str, value: str | None, notes: list[str]) -> tuple[str, str | None]:
    if name in command.renamed:
        rule = command.renamed[name]
        new_value = rule.convert(value) if rule.convert and value is not None else value
        shown = f" {new_value}" if rule.convert and value is not None else ""
        notes.append(deprecated(name, f"{rule.new}{shown}"))
        name, value = rule.new, new_value
    if name in command.old_syntax and value is not None and command.old_syntax[name].is_old(value):
        new_value = command.old_syntax[name].convert(value)
        notes.append(deprecated(f"{name} {value}", f"{name} {new_value}"))
        value = new_value
    return name, value


def rewrite_args(command: VocabCommand, args: Sequence[str]) -> tuple[list[str], list[str]]:
    """``args`` with every old spelling replaced by the current one, and the deprecation notes."""
    out: list[str] = []
    positional: list[str] = []
    notes: list[str] = []
    tokens = list(args)
    k = 0
    while k < len(tokens):
        token = tokens[k]
        k += 1
        if token == "--":
            positional += tokens[k:]
            break
        if not token.startswith("--"):
            if token.startswith("-") and len(token) > 1:
                out.append(token)
            else:
                positional.append(token)
            continue
        name, eq, value = token.partition("=")
        joined = bool(eq)
        if not eq and name in (*command.renamed, *command.old_syntax) and k < len(tokens):
            target = command.renamed[name].new if name in command.renamed else name
            if _takes_value(command, target):
                value, k, eq = tokens[k], k + 1, "="
        elif not eq and _takes_value(command, name) and k < len(tokens):
            out += [token, tokens[k]]
            k += 1
            continue
        name, value = _rewrite_option(command, name, value if eq else None, notes)
        out += [f"{name}={value}"] if joined else [name, value] if eq else [name]
    if positional and command.positionals:
        named = command.positionals[: len(positional)]
        shown = " ".join(n.lstrip("-").upper() for n in named)
        notes.append(deprecated(f"giving {shown} as positional arguments",
                                " ".join(f"{n} {n.lstrip('-').upper()}" for n in named)))
        for option, value in zip(named, positional):
            out += [option, value]
        out += positional[len(named):]
    else:
        out += positional
    return out, notes
