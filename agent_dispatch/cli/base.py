"""Shared CLI plumbing: one-line errors, the runtime, output helpers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from agent_dispatch.bootstrap import ConfigurationError, Runtime, get_runtime, set_runtime
from agent_dispatch.settings import Settings


class CLIError(Exception):
    """A problem to report as one line, exit code 1 (bad use is exit code 2)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def runtime() -> Runtime:
    """The process runtime; bad settings become a one-line CLIError."""
    try:
        return get_runtime()
    except ConfigurationError as exc:
        raise CLIError(str(exc)) from None


def install(settings: Settings) -> Runtime:
    rt = Runtime(settings)
    set_runtime(rt)
    return rt


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def table(rows: list[list[str]], headers: list[str]) -> str:
    cells = [headers, *rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def skill(text: str) -> int:
    value = positive_int(text)
    if value > 5:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 1 and 5")
    return value
