"""Reading Server-Sent Events in the tests: the stream's blocks as the HTML standard's parser splits them.

`Block` is one blank-line-terminated block: an event (with `data`), a `retry:` hint, or a comment (a
heartbeat). `StreamReader` reads a stream on a thread of its own into a queue, so a test can act on the
service while the stream is open and then take what arrived, with a deadline, never hanging.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

END = object()  # put on the queue when the stream ends


@dataclass
class Block:
    """One block of a stream: its fields (`id`, `data`, `retry`, ...) and comment lines."""

    fields: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    @property
    def is_event(self) -> bool:
        return "data" in self.fields

    @property
    def id(self) -> str | None:
        return self.fields.get("id")

    @property
    def retry(self) -> int | None:
        return int(self.fields["retry"]) if "retry" in self.fields else None

    def session(self) -> dict[str, Any]:
        """The event's data: a session object."""
        return json.loads(self.fields["data"])


def blocks(lines: Iterable[str]) -> Iterator[Block]:
    """Blocks from the stream's lines (line terminators already removed)."""
    block = Block()
    for line in lines:
        if line == "":
            if block.fields or block.comments:
                yield block
            block = Block()
        elif line.startswith(":"):
            block.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            block.fields[name] = (
                block.fields[name] + "\n" + value if name == "data" and name in block.fields else value
            )
    if block.fields or block.comments:
        yield block


def text_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines of a byte stream, split however its chunks arrive."""
    pending = ""
    for chunk in chunks:
        pending += chunk.decode()
        *complete, pending = pending.split("\n")
        yield from (line.rstrip("\r") for line in complete)
    if pending:
        yield pending


class StreamReader:
    """Reads the blocks of a stream on a thread; `next_block` and `events_until` take them with a deadline."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(chunks,), daemon=True)
        self._thread.start()

    def _read(self, chunks: Iterable[bytes]) -> None:
        try:
            for block in blocks(text_lines(chunks)):
                self._queue.put(block)
        except Exception as exc:  # a dropped connection ends the stream too; the test sees it
            self._queue.put(exc)
        finally:
            self.ended.set()
            self._queue.put(END)

    def next_block(self, timeout: float = 10) -> Block | None:
        """The next block, or None when the stream has ended; AssertionError if none comes in time."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no block within {timeout}s") from None
        if item is END:
            self._queue.put(END)
            return None
        if isinstance(item, Exception):
            raise item
        return item

    def next_event(self, timeout: float = 10) -> Block | None:
        """The next event (data-carrying block), skipping heartbeats and hints; None at the end."""
        while True:
            block = self.next_block(timeout)
            if block is None or block.is_event:
                return block

    def rest(self, timeout: float = 10) -> list[Block]:
        """Every block until the stream ends (AssertionError if it does not end in time)."""
        out = []
        while (block := self.next_block(timeout)) is not None:
            out.append(block)
        return out
