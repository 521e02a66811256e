"""The API's case tests (tests/api/test_cases.py) again, with the anomaly and case stores in
PostgreSQL as a cluster node has them (the audit log stays a file of the node's own).

Left out: the append-only check through sqlite3 (PostgreSQL's own is in
test_cases_contract.py) and the OpenAPI conformance test, which opens stores of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.anomalies.store import AnomalyStore
from gateway.cases.store import CaseStore, policy
from gateway.cluster.pg_anomalies import PgAnomalies
from gateway.cluster.pg_cases import PgCases
from tests.api.conftest import audit, regime
from tests.api.test_cases import (
    Clock,
    api,
    clock,
    test_a_change_the_audit_cannot_record_is_not_made,
    test_a_deadline_in_the_past_is_400,
    test_a_replayed_anomaly_event_opens_no_second_case,
    test_a_warning_is_the_enterprise_s_to_answer_and_stays_answered_as_an_alarm,
    test_a_warning_of_a_type_not_in_the_policy_opens_no_case,
    test_an_action_the_state_does_not_allow_is_409,
    test_an_alarm_after_a_handled_warning_case_opens_a_case_of_its_own,
    test_an_alarm_joining_a_warning_case_raises_it,
    test_an_empty_optional_note_is_no_note,
    test_an_enterprise_answers_only_its_own_enterprise_s_case,
    test_an_escalated_warning_opens_its_case_then,
    test_an_officer_joins_an_anomaly_of_the_same_enterprise_and_day,
    test_anomalies_of_one_enterprise_and_beijing_day_join_one_case,
    test_each_action_is_allowed_or_refused_by_role,
    test_filters_and_paging,
    test_outside_the_scope_a_case_does_not_exist,
    test_overdue_follows_the_api_clock,
    test_reopen_goes_back_to_checking_with_its_reason,
    test_the_whole_loop_with_history_and_audit,
)

__all__ = [  # collected here, with the fixtures of this module
    "api",
    "audit",
    "clock",
    "regime",
    "test_a_change_the_audit_cannot_record_is_not_made",
    "test_a_deadline_in_the_past_is_400",
    "test_a_replayed_anomaly_event_opens_no_second_case",
    "test_a_warning_is_the_enterprise_s_to_answer_and_stays_answered_as_an_alarm",
    "test_a_warning_of_a_type_not_in_the_policy_opens_no_case",
    "test_an_action_the_state_does_not_allow_is_409",
    "test_an_alarm_after_a_handled_warning_case_opens_a_case_of_its_own",
    "test_an_alarm_joining_a_warning_case_raises_it",
    "test_an_empty_optional_note_is_no_note",
    "test_an_enterprise_answers_only_its_own_enterprise_s_case",
    "test_an_escalated_warning_opens_its_case_then",
    "test_an_officer_joins_an_anomaly_of_the_same_enterprise_and_day",
    "test_anomalies_of_one_enterprise_and_beijing_day_join_one_case",
    "test_each_action_is_allowed_or_refused_by_role",
    "test_filters_and_paging",
    "test_outside_the_scope_a_case_does_not_exist",
    "test_overdue_follows_the_api_clock",
    "test_reopen_goes_back_to_checking_with_its_reason",
    "test_the_whole_loop_with_history_and_audit",
]


@pytest.fixture
def store(pg_dsn: str) -> Iterator[AnomalyStore]:
    s = AnomalyStore(PgAnomalies(pg_dsn))
    yield s
    s.close()


@pytest.fixture
def cases(pg_dsn: str, store: AnomalyStore, clock: Clock) -> Iterator[CaseStore]:
    c = CaseStore(PgCases(pg_dsn), policy({"suspicious_data"}), clock=clock)
    store.add_listener(c.on_anomaly)
    yield c
    c.close()
