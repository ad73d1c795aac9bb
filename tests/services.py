"""Tests that need a real service (Redis, PostgreSQL): marked, skipped where it is absent, required in CI.

Mark a test `@pytest.mark.redis` or `@pytest.mark.postgres` and take the `redis_url` or
`postgres_url` fixture. Where the service does not answer, the test is skipped, so the suite
passes on a laptop with neither. CI sets `REQUIRE_TEST_SERVICES=redis,postgres`: there a
service that does not answer fails its tests instead, so they cannot silently stop running.
Loaded by tests/conftest.py (and with `-p tests.services` by the test of this very mechanism).
"""

from __future__ import annotations

import os
import socket
from functools import cache
from urllib.parse import urlsplit

import pytest

REQUIRE_VARIABLE = "REQUIRE_TEST_SERVICES"
SERVICES = {
    # marker: (environment variable with the URL, default URL, what reachability means)
    "redis": ("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "postgres": ("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
}


def service_url(service: str) -> str:
    variable, default = SERVICES[service]
    return os.environ.get(variable) or default


def required_services() -> set[str]:
    return {name.strip() for name in os.environ.get(REQUIRE_VARIABLE, "").split(",") if name.strip()}


@cache
def unreachable(service: str) -> str | None:
    """Why the service does not answer at its URL (None when it does). Checked once per run."""
    url = urlsplit(service_url(service))
    port = url.port or {"redis": 6379, "postgres": 5432}[service]
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", port), timeout=1.0) as sock:
            if service == "redis":  # something listens; make sure it is a Redis
                sock.sendall(b"PING\r\n")
                answer = sock.recv(64)
                if not (answer.startswith(b"+PONG") or answer.startswith(b"-NOAUTH")):
                    return f"{url.hostname}:{port} answered {answer[:20]!r}, not like a Redis"
    except OSError as error:
        return f"nothing answers at {url.hostname}:{port} ({error.strerror or error})"
    return None


def pytest_configure(config: pytest.Config) -> None:
    for service, (variable, default) in SERVICES.items():
        config.addinivalue_line(
            "markers", f"{service}: needs {service} at ${variable} (default {default}); skipped where absent, "
                       f"a failure when ${REQUIRE_VARIABLE} names it"
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for service in SERVICES:
        if item.get_closest_marker(service) is None:
            continue
        reason = unreachable(service)
        if reason is None:
            continue
        if service in required_services():
            pytest.fail(f"{service} is required here (${REQUIRE_VARIABLE}) but {reason}", pytrace=False)
        pytest.skip(f"{service} not available: {reason}")


@pytest.fixture
def redis_url() -> str:
    return service_url("redis")


@pytest.fixture
def postgres_url() -> str:
    return service_url("postgres")
