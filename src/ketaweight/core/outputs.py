"""Outputs that never destroy what ketaweight did not create, and are never left half-written.

Two rules every command follows:

* A command builds its output folder in a hidden temporary folder beside it and moves it into place
  only when everything succeeded (:func:`staged_folder`); an error or Ctrl-C removes the temporary
  folder, so the target is either untouched or complete.
* Nothing is overwritten silently: a target that exists is replaced only when the user asked
  (``--replace``), and only if ketaweight wrote it (a folder carries a ``.ketaweight-output`` marker
  listing what it created; a results file carries the envelope's ``ketaweight_version``).  Files the
  user added to an output folder are kept.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ketaweight.core.errors import InputError, Location

MARKER = ".ketaweight-output"
"""Written into every output folder a command creates: the names of the entries it created."""


class OutputExistsError(InputError):
    """The output target exists and may not be replaced (not asked to, or not ours to replace)."""


def _ours(folder: Path) -> list[str] | None:
    """The entries ketaweight created in ``folder`` (from its marker), or None if it has no marker."""
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        names = json.loads(marker.read_text(encoding="utf-8"))["created"]
    except (ValueError, KeyError, TypeError):
        return None
    return [n for n in names if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")]


def check_folder_target(out: Path, *, replace: bool) -> None:
    """Raise :class:`OutputExistsError` unless ``out`` may receive a command's output folder."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError([(Location(str(out)), "exists and is not a folder; choose a folder for the output")])
    if not out.is_dir() or not any(out.iterdir()):
        return
    if _ours(out) is None:
        raise OutputExistsError([(Location(str(out)), "this folder holds files ketaweight did not write; nothing was "
                                  "changed — choose a new or empty folder for the output")])
    if not replace:
        raise OutputExistsError([(Location(str(out)), "holds an earlier ketaweight output; pass --replace to replace "
                                  "it (files you added there are kept), or choose another folder")])


@contextmanager
def staged_folder(out: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to build ``out`` in; on success move its entries into ``out``.

    With ``replace``, the entries of an earlier ketaweight output in ``out`` that the new one
    rewrites are replaced, and those it no longer writes are removed; entries the user added are
    kept.  On any error (or Ctrl-C) the temporary folder is removed and ``out`` is as it was.
    """
    out = Path(out)
    check_folder_target(out, replace=replace)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the output folder gets the user's usual permissions
    try:
        yield tmp
        created = sorted(p.name for p in tmp.iterdir())
        (tmp / MARKER).write_text(json.dumps({"created": created}, indent=1) + "\n", encoding="utf-8")
        if not out.exists():
            os.replace(tmp, out)
            return
        previous = _ours(out) or []
        for name in [*previous, MARKER]:  # only what an earlier ketaweight output created
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        for entry in tmp.iterdir():
            os.replace(entry, out / entry.name)
        tmp.rmdir()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_file_target(path: str | Path, *, replace: bool) -> bool:
    """Whether ``path`` exists and will be replaced; raise :class:`OutputExistsError` when it may not be.

    A file may be replaced only with ``replace`` and only if ketaweight wrote it (a results file in
    the common envelope, or a report page carrying ketaweight's generator tag)."""
    p = Path(path)
    if not p.exists():
        return False
    if p.is_dir():
        raise OutputExistsError([(Location(str(p)), "is a folder; give a file name for this output")])
    if not written_by_ketaweight(p):
        raise OutputExistsError([(Location(str(p)), "exists and was not written by ketaweight; nothing was changed — "
                                  "choose another file name")])
    if not replace:
        raise OutputExistsError([(Location(str(p)), "exists (an earlier ketaweight output); pass --replace to replace it")])
    return True


GENERATOR = "ketaweight"
"""The generator tag a report page carries (``<meta name="generator" content="ketaweight …">``)."""
MARKDOWN_GENERATOR = "<!-- generator: ketaweight -->\n"
"""The first line of every Markdown file ketaweight writes (so it may replace its own, and only its own)."""


ZIP_COMMENT = b"ketaweight site bundle"
"""The zip comment of every network site bundle ketaweight writes (``ketaweight.network.bundle``)."""


def written_by_ketaweight(path: Path) -> bool:
    """True for a results file in the envelope, a report page/Markdown/JSON of ketaweight, a site bundle."""
    try:
        raw = path.read_bytes()
    except OSError:
        return False
    if raw[:4] == b"PK\x03\x04":  # a zip: a site bundle carries its comment at the very end
        return raw.endswith(ZIP_COMMENT)
    head = raw[:4096].decode("utf-8", errors="replace")
    return '"ketaweight_version"' in head or f'name="generator" content="{GENERATOR}' in head \
        or head.startswith("<!-- generator: ketaweight") or '"generator": "ketaweight' in head


def json_and_markdown_targets(out: Path, stem: str, *, replace: bool) -> tuple[Path, Path]:
    """``out/<stem>.json`` and ``out/<stem>.md`` (a long run's results and their summary), each checked
    by :func:`check_file_target` — call it before the run, so a refused target costs no work."""
    paths = (out / f"{stem}.json", out / f"{stem}.md")
    for p in paths:
        check_file_target(p, replace=replace)
    return paths
