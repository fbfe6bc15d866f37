"""A fast check before a data set is downloaded, used by every family's data sources.

TFDS and Keras retry a failed download for minutes (3 min 25 s for ``imdb_reviews`` with no DNS)
and then end in a long traceback. Asking first whether the download host answers on its port
takes at most a few seconds, and lets the error say what to do instead: point the pipeline at a
local copy of the data.
"""

from __future__ import annotations

import concurrent.futures
import socket
from urllib.parse import urlsplit

from components.errors import DataError

CONNECT_TIMEOUT_S = 5.0
"""How long the host's name lookup and TCP connection may take together."""


def reachable(host: str, port: int, timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout_s``.

    The name lookup runs on a helper thread because ``getaddrinfo`` itself has no timeout; a
    resolver that hangs then counts as unreachable instead of stalling the run.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    lookup = pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        addresses = lookup.result(timeout=timeout_s)
        family, kind, protocol, _, address = addresses[0]
        with socket.socket(family, kind, protocol) as connection:
            connection.settimeout(timeout_s)
            connection.connect(address)
        return True
    except (OSError, IndexError, concurrent.futures.TimeoutError):
        return False
    finally:
        pool.shutdown(wait=False)


def require_reachable(dataset: str, url: str, local_copy: str) -> None:
    """Raise a DataError naming ``dataset`` when ``url``'s host cannot be reached.

    Args:
        dataset: the data set's name as the user knows it (``IMDB reviews (TFDS imdb_reviews)``).
        url: where the download would come from.
        local_copy: how to use a local copy instead: the setting and the layout it expects.
    """
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if reachable(parts.hostname, port):
        return
    raise DataError(
        f"{dataset} could not be downloaded: {parts.hostname}:{port} (from {url}) cannot be "
        f"reached from this machine (no network, or it is blocked). Use a local copy instead: "
        f"{local_copy}"
    )
