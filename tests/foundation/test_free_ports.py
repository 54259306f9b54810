"""Ports handed to listeners come from below the kernel's ephemeral range.

A port drawn from the ephemeral range, free when checked, can become the local end of an
outgoing connection before its server binds it; that failed a test run with "address
already in use".
"""

import socket
from pathlib import Path

from tools.embedded import free_port, free_ports


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
