"""Notifications: the bureau is told when an anomaly opens or escalates and when a case is
overdue or left unsigned, by webhook, WeCom or DingTalk robot (see README.md here).

`config` (the `[notify]` section), `notices` (what is told, with stable ids), `routing` (which
channels), `formats` (bodies and signatures) are pure; `outbox` (SQLite), `sender` (aiohttp),
`escalation` (the case scan) and `service` (the wiring) do the I/O.
"""
