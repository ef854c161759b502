"""How deeply JSON may nest: checked before anything recurses into it (parsers, validators, encoders).

Depth counts containers: a scalar is 0, `{}` or `[]` is 1, `{"a": [1]}` is 2.
"""

from __future__ import annotations

from typing import Any

MAX_BODY_DEPTH = 32  # any request body (Belvo's 428 body with its challenge needs about 6)
MAX_CHALLENGE_DEPTH = 8  # token_generation_data as stored and shown, itself counted


def deeper_than(value: Any, limit: int) -> bool:
    """True when `value` nests containers more than `limit` deep; walks iteratively, never recursing."""
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        todo.extend((child, depth + 1) for child in children)
    return False
