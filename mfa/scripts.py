"""The Lua transitions of mfa/transitions.lua, each called through one wrapper with named parameters.

A section `-- @begin_call(step, lease_deadline, attempt)` becomes `Transitions.begin_call`, called as
`begin_call(keys, id=..., now=..., step=..., lease_deadline=..., attempt=...)`. The wrapper puts each
named value at the position the generated Lua header reads it from, so the order lives only in the
section's signature. The header also carries what the scripts must agree on with Python: the hash
field names (RecordField), the statuses, which statuses are "calling", the standard outcomes, and the
webhook outbox's keys; every transition also gets the outbox's library (mfa/outbox.lua), so a change
and its webhook event are written by one script.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script

from mfa import keys
from mfa.keys import BELVO_PREFIX, CHANGES_CHANNEL, SessionKeys
from mfa.session import (
    CALLING_STATUSES,
    EVENTS_KEPT,
    SNAPSHOT_EXCLUDED,
    STANDARD_OUTCOMES,
    RecordField,
    SessionStatus,
)
from mfa.webhooks import ATTEMPTS_KEPT, EVENT_BY_STATUS, OUTBOX_GRACE_MS, DeliveryStatus

SOURCE = Path(__file__).with_name("transitions.lua")
OUTBOX_SOURCE = Path(__file__).with_name("outbox.lua")
_SECTION = re.compile(r"^-- @(\w+)(?:\(([^)]*)\))?$", re.M)
# ARGV 1-4 of every script (mfa/transitions.lua's prelude reads them).
COMMON = ("id", "now", "retention", "belvo_prefix")
ScriptArg = str | int | float | bytes


def _lua_string(text: str) -> str:
    level = "=" * 3
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def _table(entries: dict[str, str]) -> str:
    return "{" + ", ".join(f"{name}={value}" for name, value in entries.items()) + "}"


def generated_header() -> str:
    """Lua tables of the names the scripts share with Python, generated from the Python definitions."""
    events = EVENT_BY_STATUS
    fields = {f.name.lower(): _lua_string(f.value) for f in RecordField}
    statuses = {s.name.lower(): _lua_string(s.value) for s in SessionStatus}
    calling = {s.value: "true" for s in sorted(CALLING_STATUSES, key=lambda s: s.value)}
    outcomes = {
        name: _lua_string(json.dumps(outcome, separators=(",", ":")))
        for name, outcome in STANDARD_OUTCOMES.items()
    }
    return "\n".join(
        [
            f"local F = {_table(fields)}",
            f"local S = {_table(statuses)}",
            f"local CALLING = {_table(calling)}",
            f"local OUTCOME = {_table(outcomes)}",
            f"local SNAPSHOT_EXCLUDED = {_table({f.value: 'true' for f in sorted(SNAPSHOT_EXCLUDED)})}",
            f"local EVENTS_KEPT = {EVENTS_KEPT}",
            f"local CHANGES_CHANNEL = {_lua_string(CHANGES_CHANNEL)}",
            f"local REF_PREFIX = {_lua_string(keys.REF_PREFIX)}",
            f"local REFS_KEPT = {keys.REFS_KEPT}",
            f"local EVENT_BY_STATUS = {_table({s.value: _lua_string(e.value) for s, e in events.items()})}",
            f"local OUTBOX = {_lua_string(keys.OUTBOX_STREAM)}",
            f"local GROUP = {_lua_string(keys.OUTBOX_GROUP)}",
            f"local WEBHOOK_PREFIX = {_lua_string(keys.WEBHOOK_PREFIX)}",
            f"local WEBHOOK_PAYLOAD_PREFIX = {_lua_string(keys.WEBHOOK_PAYLOAD_PREFIX)}",
            f"local WEBHOOK_ATTEMPTS_PREFIX = {_lua_string(keys.WEBHOOK_ATTEMPTS_PREFIX)}",
            f"local WEBHOOK_STATUS_PREFIX = {_lua_string(keys.WEBHOOK_STATUS_PREFIX)}",
            f"local WEBHOOK_RETRIES = {_lua_string(keys.WEBHOOK_RETRIES_ZSET)}",
            "local WEBHOOK_STATUSES = {" + ", ".join(_lua_string(s.value) for s in DeliveryStatus) + "}",
            f"local OUTBOX_GRACE = {OUTBOX_GRACE_MS}",
            f"local ATTEMPTS_KEPT = {ATTEMPTS_KEPT}",
            "",
        ]
    )


def lua_sections(path: Path) -> dict[str, tuple[tuple[str, ...], bool, str]]:
    """A Lua file's sections `-- @name(param, ...)`: each one's parameters, whether it ends in `...`,
    and its body."""
    parts = _SECTION.split(path.read_text())
    found = {}
    for i in range(1, len(parts), 3):
        names = [p.strip() for p in (parts[i + 1] or "").split(",") if p.strip()]
        found[parts[i]] = (tuple(n for n in names if n != "..."), names[-1:] == ["..."], parts[i + 2])
    return found


def bind(params: tuple[str, ...], varargs: bool, first: int) -> str:
    """Lua locals reading each named parameter from its ARGV position, starting at `first`."""
    binds = "".join(f"local {p} = ARGV[{first + i}]\n" for i, p in enumerate(params))
    return binds + (f"local VARARGS = {first + len(params)}\n" if varargs else "")


@dataclass(frozen=True)
class Transition:
    """One script and the names of its own parameters (ARGV 5 onwards)."""

    name: str
    params: tuple[str, ...]
    varargs: bool
    script: Script

    def __call__(
        self,
        keys: SessionKeys,
        *,
        id: str,
        now: int,
        retention: int,
        rest: tuple[ScriptArg, ...] = (),
        client: Pipeline | None = None,
        **named: ScriptArg,
    ) -> Any:
        """Run the script; `named` must be exactly its parameters, `rest` fills a trailing `...`."""
        if set(named) != set(self.params):
            raise TypeError(f"{self.name}() takes {self.params}, got {tuple(sorted(named))}")
        if rest and not self.varargs:
            raise TypeError(f"{self.name}() takes no trailing values")
        argv = [id, now, retention, BELVO_PREFIX, *(named[p] for p in self.params), *rest]
        result = self.script(keys=keys.as_list(), args=argv, client=client)
        return result.decode() if isinstance(result, bytes) else result


class Transitions:
    """Every script of mfa/transitions.lua, registered on one Redis client (EVALSHA, loaded on first use)."""

    create: Transition
    cancel: Transition
    expire_due: Transition
    begin_call: Transition
    release_call: Transition
    take_retry: Transition
    finish: Transition
    next_step: Transition
    recover_lapsed: Transition
    abort: Transition
    index_ref: Transition

    def __init__(self, redis: Redis) -> None:
        sections = lua_sections(SOURCE)
        header = generated_header() + lua_sections(OUTBOX_SOURCE)["library"][2]
        prelude = sections.pop("prelude")[2]
        declared = set(self.__annotations__)
        if set(sections) != declared:
            raise RuntimeError(
                f"transitions.lua has {sorted(sections)}, Transitions declares {sorted(declared)}"
            )
        for name, (params, varargs, body) in sections.items():
            script = redis.register_script(header + prelude + bind(params, varargs, len(COMMON) + 1) + body)
            setattr(self, name, Transition(name, params, varargs, script))
