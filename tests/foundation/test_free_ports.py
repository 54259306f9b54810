"""Ports handed to listeners come from below the kernel's ephemeral range.

A port drawn from the ephemeral range, free when checked, can become the local end of an
outgoing connection before its server binds it; that failed a test run with "address
already in use". And a port handed out is reserved until its process ends, so no other
process (another test worker) is handed it before its server binds it.
"""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tools import embedded
from tools.cluster import claim_base_port
from tools.embedded import PORTS, free_port, free_ports


def ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_free_ports_are_outside_the_ephemeral_range_and_bindable() -> None:
    ephemeral = ephemeral_range()
    for _ in range(50):
        port = free_port()
        assert port not in ephemeral
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_block_of_ports_is_consecutive_and_free() -> None:
    base = free_ports(6)
    ephemeral = ephemeral_range()
    sockets = [socket.socket() for _ in range(6)]
    try:
        for offset, sock in enumerate(sockets):
            assert base + offset not in ephemeral
            sock.bind(("127.0.0.1", base + offset))
    finally:
        for sock in sockets:
            sock.close()


def bindable_base(count: int, avoid: range = range(0)) -> int:
    """A base of ``count`` ports free right now and reserved by no process (other test
    workers hold reservations of their own), nowhere near ``avoid``: drawn by free_ports
    itself, then given back for the test to hand out."""
    for _ in range(50):
        base = free_ports(count)
        ports = range(base, base + count)
        PORTS.release(ports)
        if not set(ports) & set(range(avoid.start - count, avoid.stop)):
            return base
    raise AssertionError("no free ports to test with")


def drawing(monkeypatch: pytest.MonkeyPatch, bases: list[int]) -> None:
    """The random draws of free_ports come out as ``bases``, in order."""
    draws = iter(bases)
    monkeypatch.setattr(embedded.random, "randrange", lambda *_: next(draws))


def test_a_port_handed_out_is_not_handed_out_again_before_it_is_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = bindable_base(3)
    other = bindable_base(3, avoid=range(first, first + 3))
    drawing(monkeypatch, [first, first + 1, other])
    assert free_ports(3) == first
    assert free_ports(3) == other  # first + 1 overlaps the block still unbound


def test_a_port_another_process_holds_is_skipped_until_that_process_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two test workers each picked a free port and the second `up` found it taken when its
    gateway bound it, seconds later: a reservation is seen across processes."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from tools import embedded\n"
            "print(embedded.free_ports(6), flush=True)\n"  # reserved there, as a worker would
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert holder.stdout is not None
        printed = holder.stdout.readline()
        assert printed.strip().isdigit(), holder.communicate(timeout=30)
        held = int(printed)
        other = bindable_base(1, avoid=range(held, held + 6))
        drawing(monkeypatch, [held + 5, other])
        assert free_ports(1) == other
    finally:
        holder.communicate(timeout=30)  # stdin closed: it exits, and its locks go with it
    drawing(monkeypatch, [held + 2])
    assert free_ports(1) == held + 2


def test_a_clusters_ports_are_reserved_like_any_other_and_given_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A local cluster's management and distribution ports lie where free_ports draws from;
    with a picker of its own (lock files per base) the two could hand out the same port."""
    base, claimed = claim_base_port(3)
    try:
        distribution = claimed[-1]
        assert distribution == range(base + 20_001, base + 20_004)
        other = bindable_base(1, avoid=distribution)
        drawing(monkeypatch, [distribution.start, other])
        assert free_ports(1) == other  # the cluster's port is skipped
    finally:
        for ports in claimed:
            PORTS.release(ports)
    assert not PORTS.held_here(distribution)
    drawing(monkeypatch, [distribution.start])
    assert free_ports(1) == distribution.start  # given back: free to hand out again
