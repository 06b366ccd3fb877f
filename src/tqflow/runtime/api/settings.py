"""How the REST API is served: where it binds, its token, its request size cap."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tqflow.errors import SettingError

DEFAULT_MAX_BODY = 1024 * 1024  # bytes
TOKEN_ENV = "TQFLOW_API_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


@dataclass(frozen=True)
class ApiSettings:
    redis_url: str
    namespace: str = "tqflow"
    token: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    # without a token the API answers only Host headers naming loopback (or one of these names)
    allowed_hosts: tuple[str, ...] = ()

    def check_binding(self, host: str) -> None:
        """Refuse to serve beyond loopback without a token: anyone on the network could drive the queue."""
        if not is_loopback(host) and not self.token:
            raise SettingError(
                f"the API binds to {host}, beyond loopback: give a bearer token with --token or ${TOKEN_ENV}"
            )
