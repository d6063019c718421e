"""The files of one FAERS quarter — a zip as FDA publishes it, or that zip unzipped into a folder —
found, named and read as a stream of bounded chunks.

``discover_quarter(path)`` identifies the quarter and the member chosen for each table (``ascii/``
or ``ASCII/`` folders or none, upper/lower-case names, ``_new`` re-issues preferred, the
deleted-cases list).  ``read_member(quarter, member)`` yields the member's bytes in chunks of
``ReadLimits.chunk_bytes`` and stops with a one-line :class:`~ketaweight.core.errors.InputError`
naming the zip and the member when the member cannot be read: encrypted, a compression method
Python cannot decompress (Deflate64, …), corrupt data or a failed CRC, or bigger than
``ReadLimits`` allow (in bytes, and in expansion ratio once past ``ratio_floor`` — a 127 KB zip
that expands to 100 MB is a zip bomb, not a FAERS file).  The limits are enforced on the bytes
actually produced, not on the sizes the zip claims.
"""

from __future__ import annotations

import lzma
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ketaweight.core.errors import InputError, Location
from ketaweight.signals.display import one_line
from ketaweight.signals.faers_format import MEMBER_RE, REQUIRED_TABLES, TABLES, ZIP_RE

__all__ = ["ReadLimits", "QuarterFiles", "discover_quarter", "expand_inputs", "read_member"]

_READABLE = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
             zipfile.ZIP_LZMA: "lzma"}
_METHOD_NAMES = {9: "Deflate64", 6: "Implode", 1: "Shrink", 93: "Zstandard", 95: "XZ", 98: "PPMd", 99: "AES"}


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what one member may expand to.  A real quarter's largest file (DRUG) is about
    0.3 GB and compresses about 5–8×; the defaults leave a wide margin for both."""

    max_member_bytes: int = 8 * 2**30
    """Largest uncompressed member accepted, in bytes (8 GiB)."""
    max_ratio: float = 100.0
    """Largest uncompressed / compressed size ratio accepted, once past ``ratio_floor`` bytes."""
    ratio_floor: int = 16 * 2**20
    """Bytes a member may produce before the ratio is checked (small files compress oddly)."""
    chunk_bytes: int = 32 * 2**20
    """Size of the chunks handed to the parser (bytes)."""


@dataclass(frozen=True)
class QuarterFiles:
    """What one quarter holds: its label, the member chosen for each table, the deleted-cases lists."""

    path: Path
    quarter: str
    members: dict[str, str]
    deleted: tuple[str, ...]
    ignored: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()

    def label(self, member: str) -> str:
        """How errors name a member: ``faers_ascii_2023q1.zip:ascii/DRUG23Q1.txt``."""
        shown = one_line(member, 200)
        return f"{self.path.name}:{shown}" if not self.is_folder else str(self.path / shown)

    def size(self, member: str) -> int:
        """Uncompressed size in bytes as the zip (or the file system) states it."""
        if self.is_folder:
            return (self.path / member).stat().st_size
        with zipfile.ZipFile(self.path) as zf:
            return zf.getinfo(member).file_size


def _is_table_name(name: str) -> bool:
    base = PurePosixPath(name).name
    return bool(MEMBER_RE.match(base)) or base.lower().startswith("delete")


def expand_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """The quarters named on a command line: each path is a zip, an unzipped quarter folder, or a
    folder of quarter zips (``downloads/`` → every ``faers_ascii_*.zip`` in it, in name order)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
        if p.is_dir() and not any(_is_table_name(str(f.relative_to(p))) for f in p.rglob("*") if f.is_file()):
            zips = sorted((f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".zip"),
                          key=lambda f: f.name.lower())
            if not zips:
                raise InputError([(Location(str(p)), "a folder with neither FAERS table files (DEMO23Q1.txt …) "
                                   "nor quarter zips (faers_ascii_2023q1.zip …)")])
            out.extend(zips)
        else:
            out.append(p)
    return out


def _names(p: Path) -> list[str]:
    if p.is_dir():
        return sorted(f.relative_to(p).as_posix() for f in p.rglob("*") if f.is_file())
    try:
        with zipfile.ZipFile(p) as zf:
            return [n for n in zf.namelist() if not n.endswith("/")]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InputError([(Location(str(p)), f"not a zip file ({one_line(exc, 200)})")]) from exc


def discover_quarter(path: str | Path) -> QuarterFiles:
    """Identify the quarter and the table files of a FAERS ASCII zip or unzipped quarter folder."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    names = _names(p)
    found: dict[str, list[tuple[str, str, bool]]] = {}
    deleted, ignored, notes = [], [], []
    for n in names:
        base = PurePosixPath(n).name
        parts = [x.lower() for x in PurePosixPath(n).parts[:-1]]
        if any("delete" in x for x in parts) or base.lower().startswith("delete"):
            if base.lower().endswith(".txt"):
                deleted.append(n)
            continue
        m = MEMBER_RE.match(base)
        if not m:
            ignored.append(n)
            continue
        qtag = f"20{m.group('yy')}Q{m.group('q')}"
        found.setdefault(m.group("table").upper(), []).append((n, qtag, bool(m.group("new"))))
    zq = ZIP_RE.search(p.name)
    quarter = f"{zq.group('yyyy')}Q{zq.group('q')}" if zq else None
    qtags = {q for v in found.values() for _, q, _ in v}
    if quarter is None:
        if len(qtags) != 1:
            raise InputError([(Location(str(p)), "cannot tell the quarter: the name has no YYYYqN and the "
                               f"table files name {sorted(qtags) or 'no quarter'}")])
        quarter = qtags.pop()
    elif qtags and qtags != {quarter}:
        notes.append(f"table files are named for {', '.join(sorted(qtags))} but the name says {quarter}; "
                     f"using {quarter}")
    members = {}
    for t, lst in found.items():
        lst = sorted(lst, key=lambda x: (x[2], x[0]))  # _new last
        members[t] = lst[-1][0]
        if len(lst) > 1:
            notes.append(one_line(f"{t}: using {lst[-1][0]} (also present: {', '.join(x[0] for x in lst[:-1])})"))
    missing = [t for t in REQUIRED_TABLES if t not in members]
    if missing:
        raise InputError([(Location(str(p)), f"no {', '.join(missing)} file found (expected names like "
                           f"ascii/{missing[0]}{quarter[2:4]}Q{quarter[-1]}.txt); it holds: "
                           f"{one_line(', '.join(names[:12])) or 'nothing'}")])
    for t in TABLES:
        if t not in members:
            notes.append(f"no {t} file in this quarter")
    return QuarterFiles(path=p, quarter=quarter, members=members, deleted=tuple(deleted), ignored=tuple(ignored),
                        notes=tuple(notes))


def read_member(q: QuarterFiles, member: str, limits: ReadLimits = ReadLimits()) -> Iterator[bytes]:
    """The bytes of one member, in chunks of at most ``limits.chunk_bytes`` (see the module docstring)."""
    label = q.label(member)
    if q.is_folder:
        try:
            with open(q.path / member, "rb") as fh:
                while chunk := fh.read(limits.chunk_bytes):
                    yield chunk
        except OSError as exc:
            raise InputError([(Location(label), f"cannot read the file ({exc.strerror or exc})")]) from exc
        return
    try:
        zf = zipfile.ZipFile(q.path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InputError([(Location(str(q.path)), f"not a zip file ({one_line(exc, 200)})")]) from exc
    with zf:
        info = zf.getinfo(member)
        if info.flag_bits & 0x1:
            raise InputError([(Location(label), "the member is encrypted; FAERS zips are not — unzip it with its "
                               "password and give the folder")])
        if info.compress_type not in _READABLE:
            name = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
            raise InputError([(Location(label), f"compressed with {name}, which Python's zipfile cannot read; "
                               "unzip it with another tool and give the folder")])
        produced = 0
        compressed = max(info.compress_size, 1)
        with _zip_errors(label):
            fh = zf.open(info)
        with fh:
            while True:
                with _zip_errors(label):
                    chunk = fh.read(limits.chunk_bytes)
                if not chunk:
                    return
                produced += len(chunk)
                if produced > limits.max_member_bytes:
                    raise InputError([(Location(label), f"expands to more than {limits.max_member_bytes:,} bytes "
                                       "(the limit for one member)")])
                if produced > limits.ratio_floor and produced / compressed > limits.max_ratio:
                    raise InputError([(Location(label), f"expands more than {limits.max_ratio:g}× its compressed "
                                       f"size of {info.compress_size:,} bytes: a zip bomb, not a FAERS file")])
                yield chunk


@contextmanager
def _zip_errors(label: str) -> Iterator[None]:
    """zipfile reports a bad CRC or truncation with BadZipFile/EOFError, corrupt deflate data with
    zlib.error, damaged bzip2/lzma streams with OSError/LZMAError, and methods or encryption it lacks
    with NotImplementedError/RuntimeError: all become one line naming the member."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, RuntimeError,
            NotImplementedError) as exc:
        raise InputError([(Location(label), f"cannot read from the zip: {one_line(exc, 200)}")]) from exc
