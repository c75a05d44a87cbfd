"""The process's runtime for the length of a test or fixture."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from agent_dispatch.bootstrap import Runtime, set_runtime


@contextmanager
def installed(runtime: Runtime) -> Iterator[Runtime]:
    """`runtime` is what flows, tasks and commands find (`get_runtime`) until the block ends;
    then it is disposed and the runtime installed before it is back."""
    previous = set_runtime(runtime)
    try:
        yield runtime
    finally:
        runtime.dispose()
        set_runtime(previous)
