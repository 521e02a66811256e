"""The evidence pack's `frames/` folder, from an excerpt (pure): the archive's records as they
are on disk, a table for people, the chain proof, and a note in Chinese on checking it."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from .excerpt import Excerpt
from .record import BEIJING, GENESIS

README = "frames/说明.txt"

_NOTE = """原始报文与哈希链证明
====================

本文件夹收录该异常所涉设备在异常时段内网关收到的全部 HJ 212 原始报文（含被拒收的报文），
摘自网关的原始报文存档（每个北京时间自然日一个文件，如 2026-03-10.frames）。

文件：
- records.txt：存档中的原始记录，逐行照录，未作任何改动；
- frames.csv：便于阅读的表格（接收时间为北京时间；原始报文按文本显示）；
- proof.json：每条报文的记录哈希（hash）与前一条记录的哈希（prev），所在日文件、行号与字节偏移，
  以及所涉每个日文件的记录数和生成本证据包时的最后一条哈希（last_hash）。

记录格式：每行为“HASH PREV CONTENT”，以空格分隔。CONTENT 为一行 JSON，其中 raw 为报文原始字节的
Base64 编码，t 为接收时间（UTC），verdict 为判定（accepted 为已接收，其余为拒收原因）。
HASH = SHA-256( PREV 的 64 位十六进制字符 + CONTENT 的字节 )。每日第一条记录的 PREV 为前一日最后一条
记录的 HASH（最早一条为 64 个 0）。因此改动任一字节、增删任一条记录或整日文件，链都会断开。

如何核验：
1. 逐条核对（只需本证据包）：对 records.txt 的每一行计算
   printf '%s%s' "$PREV" "$CONTENT" | sha256sum
   结果应等于该行的 HASH；也可用 Python：
   import hashlib
   for line in open("records.txt", "rb"):
       h, p, c = line.rstrip(b"\\n").split(b" ", 2)
       assert hashlib.sha256(p + c).hexdigest().encode() == h
2. 核对整条链（需网关上的存档）：在网关主机上运行
   pollution-gateway archive verify 日期      （如 2026-03-10；或 --all 核验全部）
   应显示通过，且该日最后一条哈希与 proof.json 中的 last_hash 一致（当日仍在写入时，
   存档中的链会在其后继续延长，proof.json 中的 last_hash 仍应出现在该日文件中）。
3. 报文内容：将 raw 做 Base64 解码即得设备发来的原始字节，可按 HJ 212 标准逐字段核对
   （含 CRC 校验码）。
"""


def files(excerpt: Excerpt, generated: datetime) -> list[tuple[str, bytes]]:
    """frames/records.txt, frames/frames.csv, frames/proof.json and the note."""
    records = b"".join(
        f"{f.record.hash} {f.record.prev} ".encode() + f.record.content + b"\n"
        for f in excerpt.frames
    )
    proof = {
        "hash": "SHA-256 of PREV's 64 hex digits followed by CONTENT's bytes",
        "genesis": GENESIS,
        "generated_at": generated.isoformat(),
        "mns": list(excerpt.mns),
        "addresses": list(excerpt.addresses),
        "window": {"start": excerpt.start.isoformat(), "end": excerpt.end.isoformat()},
        "limit": excerpt.limit,
        "matched": excerpt.matched,
        "truncated": excerpt.truncated,
        "frames": [
            {
                "day": f.day.isoformat(),
                "line": f.line,
                "offset": f.offset,
                "hash": f.record.hash,
                "prev": f.record.prev,
            }
            for f in excerpt.frames
        ],
        "days": [
            {
                "day": d.day.isoformat(),
                "follows": d.follows,
                "records": d.records,
                "last_hash": d.last_hash,
                "chain_checks": d.broken is None,
                "broken_at": None
                if d.broken is None
                else {"line": d.broken.line, "offset": d.broken.offset, "reason": d.broken.reason},
            }
            for d in excerpt.days
        ],
    }
    return [
        ("frames/records.txt", records),
        ("frames/frames.csv", _table(excerpt)),
        ("frames/proof.json", json.dumps(proof, indent=2, ensure_ascii=False).encode()),
        (README, _NOTE.encode()),
    ]


def summary(excerpt: Excerpt, lang: str) -> str:
    """One sentence for the printable page."""
    broken = [d.day.isoformat() for d in excerpt.days if d.broken is not None]
    if lang == "zh":
        text = f"收录原始报文 {len(excerpt.frames)} 条（frames/ 文件夹，含哈希链证明与核验说明）"
        if excerpt.truncated:
            text += f"，共匹配 {excerpt.matched} 条，仅收录最早的 {excerpt.limit} 条"
        text += "；所涉日文件哈希链核验" + (f"未通过：{'、'.join(broken)}" if broken else "通过")
        return text + "。"
    text = f"{len(excerpt.frames)} raw frames in frames/, with the hash-chain proof"
    if excerpt.truncated:
        text += f" ({excerpt.matched} matched, the earliest {excerpt.limit} kept)"
    text += "; the chain of their day files " + (
        f"does not check: {', '.join(broken)}" if broken else "checks"
    )
    return text + "."


def _table(excerpt: Excerpt) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    header = "日文件 行号 接收时间 来源地址 连接 MN CRC 判定 数据时间 原始报文"
    writer.writerow(header.split())
    for f in excerpt.frames:
        r = f.record.record
        writer.writerow(
            [
                f.day.isoformat(),
                f.line,
                _beijing(r.received_at, ms=True),
                r.peer,
                r.conn,
                r.mn,
                r.crc,
                r.verdict,
                _beijing(r.data_time) if r.data_time else "",
                _cell(r.raw.decode("utf-8", "backslashreplace").rstrip("\r\n")),
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell(text: str) -> str:
    """Text Excel would read as a formula gets a leading '."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _beijing(moment: datetime, *, ms: bool = False) -> str:
    local = moment.astimezone(BEIJING)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    return text + f".{local.microsecond // 1000:03d}" if ms else text
