"""The requests adapter the engine's sessions mount: urllib3's pools, with connections that connect through
addresses.create_connection, so TLS and proxied requests (s3:// and gs:// among them) race a host's
addresses as plain HTTP does, instead of urllib3 trying them one after another with the whole timeout each.

Imported with requests, on the first request that needs it (http_session.py). A SOCKS proxy's manager
keeps its own connections: they connect through the SOCKS library.
"""

from __future__ import annotations

import functools
import socket
from typing import Any

from getm_tui.engine.sources import addresses


@functools.cache
def _pool_classes() -> dict[str, Any]:
    """urllib3's HTTP and HTTPS pool classes with racing connections, made once per process."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

    class Racing(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            """urllib3's own, with the addresses raced: the same errors for the same failures."""
            try:
                return addresses.create_connection(
                    (self._dns_host, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except socket.gaierror as e:
                raise NameResolutionError(self.host, self, e) from e
            except TimeoutError as e:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from e
            except OSError as e:
                raise NewConnectionError(self, f"Failed to establish a new connection: {e}") from e

    class RacingHTTPS(Racing, HTTPSConnection):
        pass

    class Pool(HTTPConnectionPool):
        ConnectionCls = Racing

    class PoolTLS(HTTPSConnectionPool):
        ConnectionCls = RacingHTTPS

    return {"http": Pool, "https": PoolTLS}


def adapter(pool_connections: int, pool_maxsize: int) -> Any:
    """A requests HTTPAdapter whose pool managers (direct and through an HTTP proxy) make racing
    connections."""
    import requests
    from urllib3.poolmanager import pool_classes_by_scheme

    def racing(manager: Any) -> Any:
        if manager.pool_classes_by_scheme == pool_classes_by_scheme:  # not a SOCKS manager's own
            manager.pool_classes_by_scheme = _pool_classes()
        return manager

    class Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            racing(self.poolmanager)

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            return racing(super().proxy_manager_for(proxy, **kwargs))

    return Adapter(pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=0)
