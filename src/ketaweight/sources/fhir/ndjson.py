"""NDJSON files read in large binary blocks: each line as bytes for the validator, and any subset of a
block's lines as an Arrow string array for DuckDB without a Python string per line.

Lines end at ``\\n`` only (a ``\\r`` before it is JSON whitespace), as DuckDB's NDJSON reader splits them;
a UTF-8 byte-order mark at the start of a file is skipped.  The bytes of a line are not decoded here: the
JSON parser that reads a line refuses text that is not UTF-8, so every line handed on was valid UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

BLOCK_BYTES = 1 << 25
"""Bytes read at a time (32 MiB; a line longer than that makes its block longer)."""

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Block:
    """Consecutive lines of one file: ``lines[k]`` is line ``first_line + k`` (without its ``\\n``)."""

    data: bytes
    lines: list[bytes]
    first_line: int

    def arrow(self, keep: list[int]) -> pa.StringArray:
        """The lines at indices ``keep`` (ascending) as an Arrow string array over :attr:`data` (a line
        keeps its ``\\n``, which JSON reads as whitespace)."""
        lengths = np.fromiter(map(len, self.lines), np.int64, count=len(self.lines)) + 1
        offsets = np.zeros(len(self.lines) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        offsets[-1] = min(offsets[-1], len(self.data))  # the last line of a file may have no newline
        whole = pa.LargeStringArray.from_buffers(len(self.lines), pa.py_buffer(offsets), pa.py_buffer(self.data))
        if len(keep) == len(self.lines):
            return whole
        return whole.take(pa.array(keep, pa.int64()))


def blocks(path: Path) -> Iterator[Block]:
    """The lines of the NDJSON file at ``path``, block by block."""
    with path.open("rb") as fh:
        tail, line = b"", 1
        first = fh.read(len(_BOM))
        if first != _BOM:
            tail = first
        while True:
            chunk = fh.read(BLOCK_BYTES)
            data = tail + chunk
            if not chunk:  # end of the file: what is left is its last line, without a newline
                if data:
                    yield Block(data, [data], line)
                return
            cut = data.rfind(b"\n")
            if cut < 0:
                tail = data
                continue
            tail, data = data[cut + 1:], data[: cut + 1]
            lines = data.split(b"\n")
            lines.pop()  # empty: after the block's last newline
            yield Block(data, lines, line)
            line += len(lines)
