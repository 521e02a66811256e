"""`pollution-gateway archive verify [DAY | --all]` and `archive frames --mn MN --since T
--until T`: the archive folder of the configured data folder, or `--dir`."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from pathlib import Path

from .files import day_files
from .record import BEIJING, RecordError, decode
from .verify import Broken, verify


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--config", default="config/gateway.toml")
    where.add_argument("--dir", help="an archive folder (default: the data folder's archive)")
    sub = parser.add_subparsers(dest="archive_command", required=True)
    verify_p = sub.add_parser(
        "verify", parents=[where], help="check the hash chain: exit 0, or 1 at a break"
    )
    verify_p.add_argument("day", nargs="?", help="YYYY-MM-DD (Beijing day); default --all")
    verify_p.add_argument("--all", action="store_true", help="every day, in order (default)")
    frames_p = sub.add_parser("frames", parents=[where], help="print archived frames")
    frames_p.add_argument("--mn", help="this MN only")
    frames_p.add_argument("--since", help="receipt time from, ISO 8601 (no offset: Beijing)")
    frames_p.add_argument("--until", help="receipt time to, ISO 8601 (no offset: Beijing)")
    frames_p.add_argument("--lines", action="store_true", help="the archive's lines as they are")


def run(args: argparse.Namespace, directory: Path) -> int:
    if not directory.is_dir():
        print(f"archive: {directory}: no such folder", file=sys.stderr)
        return 2
    try:
        if args.archive_command == "verify":
            return _verify(directory, args)
        return _frames(directory, args)
    except ValueError as exc:
        print(f"archive: {exc}", file=sys.stderr)
        return 2


def _verify(directory: Path, args: argparse.Namespace) -> int:
    only = date.fromisoformat(args.day) if args.day and not args.all else None
    result = verify(directory, only)
    if isinstance(result, Broken):
        print(
            f"archive {directory}: chain broken: day {result.day}, line {result.line}, "
            f"offset {result.offset}: {result.reason}"
        )
        return 1
    span = f" ({result.first_day} .. {result.last_day})" if result.first_day else ""
    torn = f"; {result.torn_bytes} bytes of an unfinished write at the end" * bool(
        result.torn_bytes
    )
    print(
        f"archive {directory}: OK: {result.days} days{span}, {result.records} records, "
        f"last hash {result.last_hash}{torn}"
    )
    return 0


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=BEIJING)


def _frames(directory: Path, args: argparse.Namespace) -> int:
    since, until = _time(args.since), _time(args.until)
    first = since.astimezone(BEIJING).date() if since else None
    last = until.astimezone(BEIJING).date() if until else None
    needle = f'"mn":"{args.mn}"'.encode() if args.mn else b""
    shown = 0
    for day, path in day_files(directory):
        if (first and day < first) or (last and day > last):
            continue
        with path.open("rb") as source:
            for number, line in enumerate(source, start=1):
                if needle not in line or not line.endswith(b"\n"):
                    continue
                try:
                    rec = decode(line)
                except RecordError:
                    print(f"{day} line {number}: not a record", file=sys.stderr)
                    continue
                r = rec.record
                if (args.mn and r.mn != args.mn) or (since and r.received_at < since):
                    continue
                if until and r.received_at > until:
                    continue
                shown += 1
                if args.lines:
                    sys.stdout.buffer.write(line)
                    continue
                when = r.received_at.astimezone(BEIJING).isoformat(timespec="milliseconds")
                text = r.raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
                print(
                    f"{when} {r.peer} conn={r.conn} mn={r.mn or '-'} crc={r.crc or '-'} "
                    f"{r.verdict} {rec.hash[:16]} {text}"
                )
    print(f"{shown} frames", file=sys.stderr)
    return 0
