"""A copy of the gateway's state taken while the daemon runs (``pollution-gateway backup``).

The SQLite stores (anomalies, regime, audit log) are copied with SQLite's online backup API in
one step, so each copy is that store as of one committed transaction, whatever writes go on
meanwhile. The audit log is never pruned: its backups are what keeps it when a disk is lost.

The spool is a write-ahead log that keeps growing at its end and losing delivered segments at
its start. Its cursor is read first, then each segment from the cursor's on is copied in turn,
and the newest one is cut after its last whole record. The copy so holds every record that
was acknowledged before the backup began and had not been delivered to InfluxDB when its
segment was copied; records appended while it runs may be missing from its end. Its cursor is
at or before the live one when the copy ends, so a gateway started on it may write some
delivered records again (the same points, which InfluxDB stores once).

Restore: stop the gateway, and put the copy's files in place of those of the data folder.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from gateway.archive.copy import ArchiveCopy, copy_archive
from gateway.ingest.segments import Position, read_cursor, scan_segment
from gateway.migrations import user_version

STORES = ("anomalies.sqlite", "regime.sqlite", "audit.sqlite", "cases.sqlite", "notify.sqlite")


class BackupError(Exception):
    """The backup cannot be made (nothing to copy, or the destination is in use)."""


@dataclass(slots=True)
class SpoolCopy:
    cursor: Position | None  # as read before copying; None when the spool had none
    segments: int = 0
    bytes: int = 0
    records: int = 0  # whole records from the cursor on


@dataclass(slots=True)
class BackupReport:
    destination: Path
    stores: dict[str, int] = field(default_factory=dict)  # file -> schema version copied
    spool: SpoolCopy | None = None
    archive: ArchiveCopy | None = None  # the raw frame archive (gateway/archive)


def backup(data_dir: Path, destination: Path) -> BackupReport:
    """Copy the stores and the spool of `data_dir` into `destination` (absent or empty)."""
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir}: no such data folder")
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise BackupError(f"{destination}: exists and is not an empty folder")
    if not any((data_dir / name).exists() for name in (*STORES, "spool")):
        raise BackupError(f"{data_dir}: holds no gateway state (no stores, no spool)")
    destination.mkdir(parents=True, exist_ok=True)
    report = BackupReport(destination)
    for name in STORES:
        if (data_dir / name).exists():
            report.stores[name] = copy_store(data_dir / name, destination / name)
    if (data_dir / "spool").is_dir():
        report.spool = copy_spool(data_dir / "spool", destination / "spool")
    if (data_dir / "archive").is_dir():  # the frames' proof: kept like the audit log
        report.archive = copy_archive(data_dir / "archive", destination / "archive")
    _fsync_dir(destination)
    return report


def copy_store(source: Path, target: Path) -> int:
    """Copy one SQLite store as of one transaction; the schema version of the copy."""
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True)  # never creates it
    try:
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # the copy is one self-contained file
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"{target}: the copy of {source} fails its check: {check}")
            return user_version(dst)
        finally:
            dst.close()
    finally:
        src.close()


def copy_spool(source: Path, target: Path) -> SpoolCopy:
    """Copy the spool segment by segment from its cursor on (see the module's docstring)."""
    target.mkdir()
    cursor = read_cursor(source / "cursor")  # first: it only moves forward
    segments = sorted(
        (int(p.name[4:-4]), p)
        for p in source.glob("seg-*.log")
        if p.name[4:-4].isdigit() and (cursor is None or int(p.name[4:-4]) >= cursor.segment)
    )
    copy = SpoolCopy(cursor)
    for i, (number, path) in enumerate(segments):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # delivered and removed since it was listed
            continue
        count_from = cursor.offset if cursor is not None and number == cursor.segment else 0
        scan = scan_segment(path, data, count_from)  # StateError for a newer format
        if i == len(segments) - 1:
            data = data[: scan.end]  # the newest may end in a record being written
            if scan.start is None or scan.end == scan.start:
                continue
        _write_synced(target / path.name, data)
        copy.segments += 1
        copy.bytes += len(data)
        copy.records += scan.records
    if cursor is not None:
        _write_synced(target / "cursor", f"{cursor.segment} {cursor.offset}\n".encode())
    _fsync_dir(target)
    return copy


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
