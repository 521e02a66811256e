"""Notifications: the bureau is told when an anomaly opens or escalates, when a case is overdue
and when a 报警 case is left unsigned, by webhook, WeCom or DingTalk robot (see README.md here).

`config` (the `[notify]` section), `notices` (what is told, with stable ids), `routing` (which
channels), `formats` (bodies and signatures) are pure; `outbox` (SQLite), `sender` (aiohttp),
`escalation` (the case scan) and `service` (the wiring) do the I/O.
"""
