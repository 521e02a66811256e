"""The case store's file (``cases.sqlite``): its schema, versioned with `gateway.migrations`.

`case_file` holds each case (its JSON `body`, and the columns the lists filter on);
`case_anomaly` says which case each anomaly is in (one at most: its primary key);
`case_step` is the history, one row per change, append-only down to SQL. The same tables in
PostgreSQL: `gateway.cluster.pg_cases`.
"""

from __future__ import annotations

from ..migrations import Migration

_SCHEMA_V1 = """
CREATE TABLE case_file (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enterprise TEXT NOT NULL,
    day TEXT NOT NULL,
    state TEXT NOT NULL,
    assignee TEXT,
    deadline TEXT,
    opened_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX case_enterprise ON case_file (enterprise, day);
CREATE INDEX case_state ON case_file (state, deadline);
CREATE TABLE case_anomaly (
    anomaly_id TEXT PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES case_file (id)
);
CREATE INDEX case_anomaly_case ON case_anomaly (case_id);
CREATE TABLE case_step (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id INTEGER NOT NULL REFERENCES case_file (id),
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    action TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX case_step_case ON case_step (case_id, seq);
CREATE TRIGGER case_step_no_update BEFORE UPDATE ON case_step
BEGIN
    SELECT RAISE(ABORT, 'case history is append-only: rows cannot be changed');
END;
CREATE TRIGGER case_step_no_delete BEFORE DELETE ON case_step
BEGIN
    SELECT RAISE(ABORT, 'case history is append-only: rows cannot be deleted');
END;
"""

# v2: the case's level (预警 warning / 报警 alarm); cases before it were opened for alarms only
# unless warning types were configured, and say "alarm"
_LEVEL_V2 = """
ALTER TABLE case_file ADD COLUMN level TEXT NOT NULL DEFAULT 'alarm';
CREATE INDEX case_level ON case_file (level, state);
"""

# (version, step) in order; append a step for every change of the schema, never edit one
MIGRATIONS: list[Migration] = [(1, _SCHEMA_V1), (2, _LEVEL_V2)]
SCHEMA_VERSION = MIGRATIONS[-1][0]
