"""Byte-level mutations of a valid input, as a mutational fuzzer makes them: flips, deletions,
insertions, duplications, truncations, and splices of hostile tokens."""

from __future__ import annotations

from hypothesis import strategies as st

TOKENS = [b"\x00", b"\xff\xfe", b"\xe9", b"\r", b"\r\n", b'"', b"'", b",", b"=", b"[", b"]", b"{", b"}", b"\n\n",
          b"NaN", b"inf", b"-1", b"1e308", b"99999999999999999999", b"\xef\xbb\xbf", b"<img src=x onerror=alert(1)>",
          b"../../x", b"\t", b"true", b"null", "é".encode(), "²".encode()]


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, max_edits: int = 6) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_edits))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "token", "duplicate", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0))) if data else 0
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "token":
            data[pos:pos] = draw(st.sampled_from(TOKENS))
        elif op == "duplicate" and data:
            end = min(len(data), pos + draw(st.integers(1, 40)))
            data[pos:pos] = data[pos:end]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)
