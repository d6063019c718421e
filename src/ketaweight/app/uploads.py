"""Receiving data from a browser: one zip archive of a data folder, checked before anything is kept.

Refused, each with a message saying why, and with nothing left on disk and nothing in the store:
an archive larger than the upload limit; a member whose name is absolute, climbs out of the folder
(``..``), uses backslashes or drive letters, or is a link; a member the chosen format does not know;
an archive whose members would unpack to more than the unpacked limit, or compress more than the
ratio limit (zip bombs) — checked from the headers first and again while unpacking, since headers can lie.
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ketaweight.core.schema import TABLES
from ketaweight.sources.omop.ddl import ALL_TABLES as OMOP_TABLES

CHUNK = 1024 * 1024
IGNORED = re.compile(r"(^|/)(__MACOSX/.*|\.DS_Store|Thumbs\.db)$")


class UploadRefused(ValueError):
    """An upload that was not accepted; the message says why and what to do."""


@dataclass(frozen=True)
class UploadFormat:
    """A kind of data folder the service can load.  ``member`` says which file names belong in it.

    A source format plugs in with an entry in :data:`FORMATS` (the names it accepts) and, in
    :mod:`ketaweight.app.job_tasks`, the loader that turns the folder into the store's tables."""

    key: str
    label: str
    member: re.Pattern[str]
    hint: str


CANONICAL = UploadFormat(
    "canonical", "Canonical tables (a zipped folder of CSV or Parquet files)",
    re.compile(r"^(" + "|".join(TABLES) + r")\.(csv|parquet)$|^provenance\.json$"),
    "patients.csv, exposures.csv, measurements.csv, lifestyle.csv, adverse_events.csv (or .parquet; any subset)")

OMOP = UploadFormat(
    "omop", "OMOP CDM 5.4 (a zipped folder of CDM CSV files, as OHDSI and Synthea ETLs write them)",
    re.compile(r"^(" + "|".join(OMOP_TABLES) + r")\.csv$", re.IGNORECASE),
    "PERSON.csv, OBSERVATION_PERIOD.csv, CONCEPT.csv, DRUG_EXPOSURE.csv, MEASUREMENT.csv, … (upper- or lower-case; "
    "the vocabulary tables the data use must be included)")
FHIR = UploadFormat(
    "fhir", "FHIR R4 (zipped bulk-export NDJSON or Bundle JSON files)",
    re.compile(r"^[A-Za-z0-9_.-]+\.(ndjson|json)$", re.IGNORECASE),
    "Patient.ndjson, Observation.ndjson, MedicationAdministration.ndjson, … or transaction/collection Bundles (.json)")
FORMATS: dict[str, UploadFormat] = {f.key: f for f in (CANONICAL, OMOP, FHIR)}


def _member_name(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename
    if "\\" in name or re.match(r"^[A-Za-z]:", name) or name.startswith("/"):
        raise UploadRefused(f"refused: the archive member {name!r} has an absolute or Windows path; "
                            "zip the folder's files with relative names")
    path = PurePosixPath(name)
    if any(part in ("..", "") for part in path.parts) or ".." in name.split("/"):
        raise UploadRefused(f"refused: the archive member {name!r} points outside the folder ('..')")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UploadRefused(f"refused: the archive member {name!r} is a symbolic link")
    return path


def unpack(archive: Path, fmt: UploadFormat, into_parent: Path, *, max_unpacked_bytes: int,
           max_ratio: float) -> Path:
    """Check ``archive`` and unpack its data files into a new folder under ``into_parent``; return it.

    Files may sit at the top of the archive or inside one folder.  On any refusal the new folder is removed."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadRefused("refused: the file is not a zip archive; zip the data folder and upload the .zip") from exc
    with zf:
        members: list[tuple[zipfile.ZipInfo, str]] = []
        total = 0
        for info in zf.infolist():
            path = _member_name(info)
            if info.is_dir() or IGNORED.search(info.filename):
                continue
            if info.flag_bits & 0x1:
                raise UploadRefused(f"refused: {info.filename!r} is encrypted; upload an archive without a password")
            parts = path.parts[1:] if len(path.parts) == 2 else path.parts
            if len(parts) != 1 or not fmt.member.match(parts[0]):
                raise UploadRefused(f"refused: {info.filename!r} is not a file this format takes ({fmt.hint}), "
                                    "at the top of the archive or in one folder")
            if any(parts[0] == name for _, name in members):
                raise UploadRefused(f"refused: {parts[0]!r} appears twice in the archive")
            total += info.file_size
            if total > max_unpacked_bytes:
                raise UploadRefused(f"refused: the archive unpacks to more than {max_unpacked_bytes / 1024**2:,.0f} MiB")
            if info.file_size > CHUNK and info.file_size > max_ratio * max(info.compress_size, 1):
                raise UploadRefused(f"refused: {info.filename!r} is compressed {info.file_size / max(info.compress_size, 1):,.0f}× "
                                    f"(more than {max_ratio:g}×): this looks like a zip bomb")
            members.append((info, parts[0]))
        if not any(name != "provenance.json" for _, name in members):
            raise UploadRefused(f"refused: the archive holds no data file ({fmt.hint})")
        into_parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=into_parent))
        try:
            written = 0
            for info, name in members:
                with zf.open(info) as src, open(folder / name, "wb") as dst:
                    got = 0
                    while chunk := src.read(CHUNK):
                        got += len(chunk)
                        written += len(chunk)
                        if got > info.file_size or written > max_unpacked_bytes:
                            raise UploadRefused(f"refused: {info.filename!r} unpacks to more than its header says "
                                                "(a zip bomb or a damaged archive)")
                        dst.write(chunk)
        except (UploadRefused, zipfile.BadZipFile, OSError, EOFError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(exc, UploadRefused):
                raise
            raise UploadRefused(f"refused: the archive is damaged ({exc})") from exc
        return folder
