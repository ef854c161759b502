"""The system tier: stacks of real processes (redis-server, the sandbox, gunicorn, `python -m worker`),
each built by tests/stack.py. Every test here carries the `system` marker (`make test-fast` skips them)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/system/" in str(item.path):
            item.add_marker(pytest.mark.system)
