"""The download check on loopback only: an open port is reachable, a closed one is not, fast."""

import socket
import time

import pytest

from components import downloads
from components.errors import DataError


def test_an_open_loopback_port_is_reachable_and_a_closed_one_is_not():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert downloads.reachable("127.0.0.1", port)
    started = time.monotonic()
    assert not downloads.reachable("127.0.0.1", port, timeout_s=2.0)
    assert time.monotonic() - started < 5


def test_unreachable_host_is_a_data_error_naming_the_data_set_and_the_way_out(monkeypatch):
    monkeypatch.setattr(downloads, "reachable", lambda host, port: False)
    with pytest.raises(DataError) as error:
        downloads.require_reachable("Toy set", "http://data.example/toy.tgz", "set $X to a copy")
    assert str(error.value).startswith("Toy set could not be downloaded: data.example:80")
    assert str(error.value).endswith("Use a local copy instead: set $X to a copy")
