"""Fixtures: the real warden binary, started on free ports.

`server` is shared by the whole session (tritonclient and perf_analyzer tests
only need a working server); tests that count requests exactly start their
own instance with `start_server`.
"""

from __future__ import annotations

import time

import pytest

from warden_support import WardenServer, warden_binary


@pytest.fixture(scope="session")
def warden_bin():
    return warden_binary()


@pytest.fixture(scope="session")
def start_server(warden_bin):
    """Factory: start_server(extra_args) -> a ready WardenServer, stopped at session end."""
    started: list[WardenServer] = []

    def start(extra_args: list[str] | None = None) -> WardenServer:
        srv = WardenServer(warden_bin, extra_args)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def server(start_server):
    srv = start_server()
    yield srv
    # A server that died during the session (a crash on some request) must not
    # pass silently just because every later test happened to be skipped.
    assert srv.alive(), f"warden exited during the session:\n{srv.output_tail()}"
    # Nothing a client sends may make the lockdown trap a system call of the
    # server's own; a trap marks the process compromised.
    time.sleep(0.5)
    assert not srv.blocked_syscalls(), f"the lockdown blocked a system call during the session:\n{srv.violation_report()}"
    assert srv.is_live()
