"""Anomaly texts: every type rendered from the evidence its rule really writes (the rules driven
as their own tests drive them), in Chinese and English, in Beijing time; the labels; evidence
of older shapes."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.anomalies.messages import (
    EVIDENCE_LABELS,
    LABELS,
    TIME_NOTE,
    VALUE_LABELS,
    family_label,
    format_time,
    labels,
    severity_label,
    state_label,
    summary,
    type_label,
)
from gateway.anomalies.model import Anomaly
from gateway.anomalies.types import TYPES
from gateway.model import DeviceEvent
from gateway.regime import AlertSpec, OrderSpec, Regime, period_alerts
from gateway.registry import Registry, RegistryFile
from gateway.rules.auth import RefusedDevices
from gateway.rules.bypass import BypassFlow
from gateway.rules.copied import ValuesCopied
from gateway.rules.curtailment import CurtailmentExceeded
from gateway.rules.emission_shutdown import EmissionDuringShutdown
from gateway.rules.flags import FlagAbuse
from gateway.rules.indicators import PlanIndicatorExceeded
from gateway.rules.mismatch import OperatingMismatch
from gateway.rules.offline import DeviceOffline
from gateway.rules.over_limit import OverLimit
from gateway.rules.pinned import ValuesPinned
from gateway.rules.rates import LowTransmission
from gateway.rules.shutdown import ProductionDuringShutdown
from gateway.rules.suspicious import SuspiciousData
from gateway.rules.treatment import TreatmentNotRunning
from gateway.rules.vehicles import BannedVehicleEntry
from gateway.vocabulary import describe
from tests.rules import test_bypass as bypass
from tests.rules import test_copied as copied
from tests.rules import test_curtailment as curtail
from tests.rules import test_data_gap as gaps
from tests.rules import test_dated_limits as dated
from tests.rules import test_emission_shutdown as emission
from tests.rules import test_flags as flags
from tests.rules import test_grades as grades
from tests.rules import test_mismatch as mismatch
from tests.rules import test_pinned as pinned
from tests.rules import test_plan_indicators as indicators
from tests.rules import test_rates as rates
from tests.rules import test_refused as refused
from tests.rules import test_rules as base
from tests.rules import test_schedules as schedules
from tests.rules import test_shutdown as shutdown
from tests.rules import test_suspicious as suspicious
from tests.rules import test_treatment as treatment
from tests.rules import test_vehicle_standing as standing
from tests.rules import test_vehicles as vehicles

# -- what every rendering must satisfy -------------------------------------------------------

STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")
TOKEN = re.compile(r"[0-9A-Za-z][0-9A-Za-z._:/*³²-]*")
UNITS = frozenset({"mg/m³", "mg/L", "kWh", "kW", "L/s", "m³/s", "m/s"})


def foreign(text: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """ASCII words of a Chinese text that are neither a code, an id nor a unit. Codes, ids,
    MNs, plates and addresses all carry a digit (a21026, DA001, E1, 冀A12345, 203.0.113.7);
    English words never do. `allowed`: names without a digit the test itself gave."""
    return [
        token
        for token in TOKEN.findall(text)
        if re.search("[A-Za-z]", token)
        and not re.search("[0-9]", token)
        and token not in UNITS
        and token not in allowed
    ]


def pollutant(code: str) -> str:
    known = describe(code)
    assert known is not None
    return f"{known.name_zh}({code})"


def pollutant_en(code: str) -> str:
    known = describe(code)
    assert known is not None
    return f"{known.name_en} ({code})"


def check(
    anomaly: Anomaly,
    zh_words: list[str],
    en_words: list[str],
    *,
    at: str,
    registry: Registry | None = None,
    allowed: tuple[str, ...] = (),
) -> tuple[str, str]:
    """Render both languages; each must come from the evidence (not the generic sentence),
    contain its words and the Beijing time `at`, and never say UTC."""
    zh, en = summary(anomaly, registry=registry), summary(anomaly, "en", registry)
    bare = replace(anomaly, evidence={})
    assert zh != summary(bare, registry=registry), zh
    assert en != summary(bare, "en", registry), en
    for word in zh_words:
        assert word in zh, (word, zh)
    for word in en_words:
        assert word.lower() in en.lower(), (word, en)
    for text in (zh, en):
        assert "UTC" not in text and at in text and STAMP.search(text), (at, text)
    assert foreign(zh, allowed) == [], zh
    return zh, en


@pytest.fixture
def regime(tmp_path: Path) -> Iterator[Regime]:
    regime = Regime(tmp_path / "regime.sqlite")
    yield regime
    regime.close()


# -- device_offline ------------------------------------------------------------------------


def offline() -> list[Anomaly]:
    """Opened (warning), escalated (alarm), a meter, and closed on contact."""
    rule = DeviceOffline(lambda: base.REGISTRY, started_at=base.T0)
    out = rule.on_tick(base.T0 + timedelta(minutes=10))
    out += rule.on_tick(base.T0 + timedelta(minutes=61))
    contact = DeviceEvent("contact", f"mn:{base.MN}", base.T0 + timedelta(minutes=70))
    return out + rule.on_device_event(contact)


def test_device_offline_opened_as_a_warning() -> None:
    opened = offline()[0]
    assert (opened.state, opened.severity) == ("open", "warning")
    zh, en = check(
        opened,
        ["离线", "未发送任何数据", "离线判定阈值10分钟", f"数采仪{base.MN}"],
        ["has sent nothing since 2026-03-01 08:00", "threshold 10 min"],
        at="2026-03-01 08:00",
    )
    assert "报警" not in zh and "alarm" not in en


def test_device_offline_escalated_to_an_alarm_and_a_silent_meter() -> None:
    _, escalated, meter, _ = offline()
    assert (escalated.severity, escalated.subject) == ("alarm", f"mn:{base.MN}")
    check(
        escalated,
        ["离线", "1小时1分钟", "报警"],
        ["1 h 1 min as of 2026-03-01 09:01", "alarm"],
        at="2026-03-01 08:00",
    )
    assert meter.subject == "meter:E1/M1"
    check(meter, ["电表M1", "离线判定阈值30分钟"], ["meter M1"], at="2026-03-01 08:00")


def test_device_offline_closed_when_heard_from() -> None:
    closed = offline()[-1]
    assert closed.state == "closed"
    check(
        closed,
        ["2026-03-01 08:00至2026-03-01 09:10离线1小时10分钟", "已恢复通信"],
        ["silent for 1 h 10 min", "heard from again"],
        at="2026-03-01 09:10",
    )


def test_a_registry_names_the_outlet_of_a_data_logger() -> None:
    zh = summary(offline()[0], registry=base.REGISTRY)
    assert f"数采仪{base.MN}(废气排放口DA001)" in zh  # a gas outlet unless the registry says


# -- data_gap --------------------------------------------------------------------------------


def later_hour_gap() -> list[Anomaly]:
    """Seen by a later hour: opened with a back-fill request, one hour filled, all filled."""
    rule = gaps.rule_with([])
    out = rule.on_points([base.hourly("w01018", 0, avg=1.0)], base.T0)
    for hour in (3, 1, 2):
        out += rule.on_points([base.hourly("w01018", hour, avg=1.0)], base.T0)
    return out


def overdue_gap() -> list[Anomaly]:
    """Seen overdue on the device's clock, grown by a second overdue hour."""
    rule = gaps.rule_with([])
    for hour in range(3):
        gaps.live(rule, hour)
    for minute in range(195, 330, 15):
        gaps.heartbeat(rule, minute)
    return rule.on_tick(base.T0 + timedelta(minutes=260)) + rule.on_tick(
        base.T0 + timedelta(minutes=320)
    )


def test_data_gap_opened_by_a_later_hour() -> None:
    opened, _, _ = later_hour_gap()
    assert opened.evidence["seen_by"] == "later_hour" and opened.state == "open"
    check(
        opened,
        [
            "缺失2026-03-01 09:00至2026-03-01 10:00共2条小时数据",
            "其后2026-03-01 11:00的数据已到达",
            "已请求设备补传",
        ],
        ["missing 2 hourly records", "back-fill requested"],
        at="2026-03-01 09:00",
    )


def test_data_gap_partly_filled_then_back_filled() -> None:
    _, partial, closed = later_hour_gap()
    assert partial.state == "open" and partial.evidence["filled"]
    check(partial, ["已补传到达1条，仍缺1条"], ["1 arrived since, 1 still missing"], at="09:00")
    assert closed.state == "closed" and closed.evidence["closed_as"] == "backfilled"
    check(closed, ["缺失", "已全部补传到达"], ["back-filled"], at="2026-03-01 10:00")


def test_data_gap_overdue_and_grown() -> None:
    opened, grown = overdue_gap()
    assert opened.evidence["seen_by"] == "overdue"
    check(
        opened,
        ["缺失2026-03-01 11:00的小时数据", "超过应报时间20分钟仍未收到"],
        ["the hourly record of 2026-03-01 11:00", "overdue by more than 20 min"],
        at="2026-03-01 11:00",
    )
    assert grown.id == opened.id and grown.evidence["missing_hours"] == 2
    check(grown, ["共2条小时数据"], ["2 hourly records"], at="2026-03-01 12:00")


def test_data_gap_without_a_back_fill_request() -> None:
    rule = gaps.rule_with([], accept=False)
    rule.on_points([base.hourly("w01018", 0, avg=1.0)], base.T0)
    (gap,) = rule.on_points([base.hourly("w01018", 2, avg=1.0)], base.T0)
    assert gap.evidence["backfill_requested"] is False
    check(gap, ["未发出补传请求"], ["no back-fill request sent"], at="2026-03-01 09:00")


# -- over_limit ------------------------------------------------------------------------------


def o2_run() -> list[Anomaly]:
    """SO2 converted to 6 % O2 with the hour's O2: opened, extended, closed."""
    return base.run_over_limit(
        [base.hourly("a19001", 0, avg=12.0), base.hourly("a21026", 0, avg=30.0)],
        [base.hourly("a19001", 1, avg=12.0), base.hourly("a21026", 1, avg=27.0)],
        [base.hourly("a19001", 2, avg=12.0), base.hourly("a21026", 2, avg=18.0)],
    )


def test_over_limit_opened_with_the_o2_converted_value() -> None:
    opened = o2_run()[0]
    zh, en = check(
        opened,
        [
            pollutant("a21026"),
            "二氧化硫(a21026)",
            "超标",
            "自2026-03-01 08:00起连续1小时超过排放限值35 mg/m³",
            "最高50 mg/m³",
            "按实测氧含量12%折算至基准氧含量6%",
            "超标0.43倍",
        ],
        [
            pollutant_en("a21026"),
            "over its limit of 35 mg/m³",
            "converted to 6 % reference O2 from measured O2 12 %",
            "43 % over the limit",
        ],
        at="2026-03-01 08:00",
    )
    assert "排放口DA001" in zh and "outlet DA001" in en


def test_over_limit_extended_then_closed() -> None:
    _, extended, closed = o2_run()
    assert extended.state == "open" and len(extended.evidence["hours"]) == 2
    check(extended, ["连续2小时", pollutant("a21026")], ["for 2 h since"], at="2026-03-01 08:00")
    assert closed.state == "closed"
    check(
        closed,
        ["2026-03-01 08:00至2026-03-01 10:00连续2小时", "已结束", pollutant("a21026")],
        ["2026-03-01 08:00 to 2026-03-01 10:00"],
        at="2026-03-01 10:00",
    )


def test_over_limit_bases_zsavg_measured_and_no_usable_o2() -> None:
    (zs,) = base.run_over_limit([base.hourly("a21026", 0, avg=10.0, zs=36.0)])
    check(zs, ["设备上报的折算值", pollutant("a21026")], ["ZsAvg sent by the device"], at="08:00")
    (water,) = base.run_over_limit([base.hourly("w01018", 0, avg=60.0)])
    check(
        water,
        [pollutant("w01018"), "排放限值50 mg/L", "最高60 mg/L", "实测值"],
        [pollutant_en("w01018"), "measured value"],
        at="2026-03-01 08:00",
    )
    (no_o2,) = base.run_over_limit([base.hourly("a21026", 0, avg=40.0)])
    check(no_o2, ["无有效氧含量数据"], ["no usable O2"], at="2026-03-01 08:00")


def test_over_limit_late_hour_is_its_own_closed_hour() -> None:
    found = base.run_over_limit(
        [base.hourly("w01018", 0, avg=60.0)],
        [base.hourly("w01018", 2, avg=60.0)],
        [base.hourly("w01018", 1, avg=60.0)],
    )
    late = found[-1]
    assert late.state == "closed" and late.started_at == base.T0 + timedelta(hours=1)
    check(late, ["2026-03-01 09:00至2026-03-01 10:00连续1小时"], ["for 1 h"], at="09:00")


def test_over_limit_of_a_split_upload_says_so() -> None:
    point = base.hourly("w01018", 0, avg=60.0)
    split = point._replace(fields=(*point.fields, ("upload_parts", "2/3")))
    (anomaly,) = base.run_over_limit([split])
    check(anomaly, ["分包"], ["split uploads"], at="2026-03-01 08:00")


# -- treatment_not_running -------------------------------------------------------------------


def no_treatment() -> list[Anomaly]:
    rule = TreatmentNotRunning(lambda: treatment.REGISTRY)
    out = treatment.run(rule, treatment.timeline(True, {"T1": False, "T2": False}, until=20))
    return out + rule.on_points([treatment.power("T1", 25, True, 30.0)], treatment.T0)


def test_treatment_not_running_opened() -> None:
    opened = no_treatment()[0]
    check(
        opened,
        ["产线L1自2026-03-01 08:00起生产", "功率120 kW", "治污设施F1、F2(备用)、F3均未运行"],
        ["none of its treatment facilities", "for more than 15 min"],
        at="2026-03-01 08:00",
    )


def test_treatment_not_running_closed_when_treatment_resumes_or_production_stops() -> None:
    closed = no_treatment()[-1]
    assert closed.state == "closed"
    check(
        closed,
        ["治污设施", "未运行的情况下生产25分钟", "治污设施F1恢复运行"],
        ["treatment resumed (F1)"],
        at="2026-03-01 08:25",
    )
    restarted = TreatmentNotRunning(lambda: treatment.REGISTRY)
    restarted.restore([no_treatment()[0]])
    (stopped,) = restarted.on_points([treatment.power("P1", 31, False, 3.0)], treatment.T0)
    check(stopped, ["产线已停止生产"], ["production stopped"], at="2026-03-01 08:31")


NAMED = Registry(
    RegistryFile.model_validate(
        {
            "enterprises": [
                {
                    **treatment.REGISTRY.data.enterprises[0].model_dump(),
                    "name": "测试热电有限公司",
                    "lines": [
                        {
                            "id": "L1",
                            "name": "1号锅炉",
                            "treatment": [
                                {"facility": "F1"},
                                {"facility": "F2", "duty": False},
                                {"facility": "F3"},
                            ],
                        }
                    ],
                    "facilities": [
                        {"id": "F1", "name": "脱硫塔", "meters": ["T1"]},
                        {"id": "F2", "name": "备用脱硫塔", "meters": ["T2"]},
                        {
                            "id": "F3",
                            "name": "除尘器",
                            "state": {"mn": treatment.MN, "facility": "SB1"},
                        },
                    ],
                }
            ]
        }
    )
)


def test_a_registry_names_enterprise_line_facilities_and_meters() -> None:
    opened = no_treatment()[0]
    zh, _ = check(
        opened,
        ["测试热电有限公司 产线1号锅炉(L1)", "脱硫塔(F1)", "备用脱硫塔(F2)(备用)", "生产电表P1"],
        ["line 1号锅炉 (L1) of 测试热电有限公司", "production meter P1"],
        at="2026-03-01 08:00",
        registry=NAMED,
    )
    assert "E1" not in zh


# -- production_during_shutdown --------------------------------------------------------------


def test_production_during_shutdown_under_an_order_opened_and_stopped(regime: Regime) -> None:
    shutdown.order(regime, ["L1"])
    rule = ProductionDuringShutdown(lambda: shutdown.REGISTRY, regime)
    found = shutdown.feed(rule, "P1", range(0, 140, 5))
    found += shutdown.feed(rule, "P1", range(150, 151), running=False)
    opened, closed = found
    check(
        opened,
        [
            "产线L1处于停产管控期",
            "依据停产指令",
            "停产过渡期至2026-12-01 10:00",
            "自2026-12-01 10:00起仍在生产",
            "功率300 kW",
        ],
        ["under shutdown (a shutdown order", "grace until 2026-12-01 10:00", "producing since"],
        at="2026-12-01 08:00",
    )
    assert closed.state == "closed"
    check(
        closed,
        ["停产管控期", "2026-12-01 10:00至2026-12-01 10:30仍在生产", "已停止生产"],
        ["produced for 30 min", "when it stopped"],
        at="2026-12-01 10:30",
    )


def test_production_during_an_escalating_shutdown_updated_then_released(regime: Regime) -> None:
    shutdown.alert(regime, "orange", 0, 3)
    shutdown.alert(regime, "red", 3, 12)
    rule = ProductionDuringShutdown(lambda: shutdown.ESCALATING, regime)
    found = shutdown.readings(rule, range(0, 10 * 60, 5))
    found += shutdown.readings(rule, range(12 * 60, 12 * 60 + 1))
    opened, updated, closed = found
    check(opened, ["依据重污染天气橙色预警", "仍在生产"], ["orange alert plan"], at="10:00")
    check(
        updated,
        ["管控依据先后为重污染天气橙色预警、重污染天气红色预警"],
        ["successively the orange alert plan, then the red alert plan"],
        at="2026-12-01 10:00",
    )
    check(closed, ["停产管控解除"], ["the shutdown ended"], at="2026-12-01 20:00")


def test_production_under_a_control_period_then_an_alert(regime: Regime) -> None:
    shutdown.alert(regime, "orange", 36, 40)
    regime.calendar = lambda: period_alerts(shutdown.ESCALATING.data.control_periods)
    rule = ProductionDuringShutdown(lambda: shutdown.ESCALATING, regime)
    last = shutdown.readings(rule, range(30 * 60, 39 * 60, 5))[-1]
    check(
        last,
        ["依据games管控期（按橙色预警管控）", "管控依据先后为games管控期"],
        ["control period games (orange alert)"],
        at="2026-12-02 14:00",
        allowed=("games",),
    )


# -- emission_during_shutdown ----------------------------------------------------------------


def test_emission_during_shutdown_opened_then_flag_f(regime: Regime) -> None:
    emission.order(regime, [])
    rule = EmissionDuringShutdown(lambda: emission.REGISTRY, regime)
    opened, closed = emission.feed(rule, range(0, 140, 5), 30.0) + emission.feed(
        rule, range(150, 151), 0.4, flag="F"
    )
    check(
        opened,
        ["排放口DA1所服务的产线L1、产线L2均处于停产管控期", "依据停产指令", "仍有排放"],
        ["still been emitting since 2026-12-01 10:00", "above its stopped level 2"],
        at="2026-12-01 10:00",
    )
    assert "流量30，高于停运判定值2" in summary(opened)
    check(closed, ["持续排放", "数据标记为停运"], ["flagged the source stopped"], at="10:30")


def test_emission_during_shutdown_closed_by_flow_or_release(regime: Regime) -> None:
    emission.order(regime, [])
    rule = EmissionDuringShutdown(lambda: emission.REGISTRY, regime)
    _, closed = emission.feed(rule, range(120, 140, 5), 30.0) + emission.feed(
        rule, range(140, 141), 1.5
    )
    check(closed, ["流量降至1.5", "不高于停运判定值2"], ["fell to 1.5"], at="2026-12-01 10:20")


def test_emission_during_a_shutdown_that_ends(regime: Regime) -> None:
    regime.add_order(
        OrderSpec.model_validate(
            {
                "kind": "shutdown",
                "enterprise": "E1",
                "starts_at": emission.T0,
                "ends_at": emission.T0 + timedelta(hours=3),
            }
        )
    )
    rule = EmissionDuringShutdown(lambda: emission.REGISTRY, regime)
    emission.feed(rule, range(120, 140, 5), 30.0)
    (closed,) = emission.feed(rule, range(180, 181), 30.0, flag="M")
    assert closed.evidence["closed_as"] == "released"
    check(closed, ["停产管控解除"], ["the shutdown ended"], at="2026-12-01 11:00")


def test_a_registry_gives_the_flow_its_name_and_unit(regime: Regime) -> None:
    emission.order(regime, [])
    rule = EmissionDuringShutdown(lambda: emission.REGISTRY, regime)
    (opened,) = emission.feed(rule, range(120, 140, 5), 30.0)
    flow = describe("a00000")
    assert flow is not None
    check(
        opened,
        ["废气排放口DA1", f"{flow.name_zh}30 {flow.unit}"],
        [f"{flow.name_en} 30 {flow.unit}"],
        at="2026-12-01 10:00",
        registry=emission.REGISTRY,
    )


# -- suspicious_data -------------------------------------------------------------------------


def frozen_stack() -> list[Anomaly]:
    """Four channels frozen at 01:00 UTC: opened, joined by the hour series, series moving
    again, closed (the multi-series form)."""
    rule = SuspiciousData(lambda: suspicious.REGISTRY)
    return suspicious.play(
        rule,
        range(0, 781, 5),
        suspicious.meters(),
        suspicious.cems(suspicious.MN, suspicious.FROZEN),
    )


def test_suspicious_constant_values_opened_and_joined() -> None:
    opened, joined, *_ = frozen_stack()
    codes = (suspicious.SO2, suspicious.NOX, suspicious.DUST, suspicious.FLOW)
    check(
        opened,
        [
            "疑似数据造假（数据恒值）",
            "生产电表显示正在生产",
            f"{pollutant(suspicious.SO2)}分钟数据自2026-03-01 09:00起恒为31.2",
            "判定时长6小时",
            *(pollutant(code) for code in codes),
        ],
        ["suspected falsification (constant values)", "held 31.2", "threshold 6 h"],
        at="2026-03-01 09:00",
    )
    assert pollutant(suspicious.O2) not in summary(opened)
    check(joined, [f"{pollutant(suspicious.SO2)}分钟、小时数据"], ["minute and hourly"], at="09:00")


def test_suspicious_series_moving_again_then_closed() -> None:
    found = frozen_stack()
    moving, closed = found[2], found[-1]
    check(
        moving,
        [f"{pollutant(suspicious.SO2)}分钟数据自2026-03-01 09:00起恒为31.2", "18:00起已恢复"],
        ["moving again since 2026-03-01 18:00"],
        at="2026-03-01 09:00",
    )
    assert closed.state == "closed"
    check(
        closed,
        ["2026-03-01 09:00至2026-03-01 19:00", "至2026-03-01 18:00", "已结束"],
        ["from 2026-03-01 09:00 until 2026-03-01 19:00"],
        at="2026-03-01 19:00",
    )


def test_suspicious_zeros_and_flag_f() -> None:
    zeros = suspicious.feed(
        SuspiciousData(lambda: suspicious.REGISTRY),
        range(0, 16),
        lambda m: suspicious.value(m, 0.0),
    )
    check(
        zeros[0],
        ["数据持续为零", f"{pollutant(suspicious.SO2)}实时数据自2026-03-01 08:00起持续为0"],
        ["zeros", "reported 0"],
        at="2026-03-01 08:00",
    )
    flag_f = suspicious.feed(
        SuspiciousData(lambda: suspicious.REGISTRY),
        range(0, 16),
        lambda m: suspicious.value(m, 3.0 + m, flag="F"),
    )
    check(flag_f[0], ["持续标记为停运"], ["reported flag F (stopped)"], at="2026-03-01 08:00")


def test_suspicious_judged_by_flow_and_closed_when_the_source_stops() -> None:
    def flow(m: int) -> float:
        return 30.0 + m // 60 % 5 if m < 540 else 0.3

    rule = SuspiciousData(lambda: suspicious.REGISTRY)
    opened, closed = suspicious.play(
        rule,
        range(0, 781, 5),
        suspicious.water(suspicious.MN_W, {suspicious.COD: (60, 781, 22.0)}, flow),
    )
    check(
        opened,
        [
            "流量32高于停运判定值0.5",
            f"{pollutant(suspicious.COD)}小时数据自2026-03-01 09:00起恒为22",
        ],
        ["its flow 32, above the stopped level 0.5"],
        at="2026-03-01 09:00",
    )
    check(closed, ["至2026-03-01 17:00", "已结束"], ["until 2026-03-01 17:00"], at="17:00")


def test_suspicious_of_a_2005_logger_names_the_2017_code() -> None:
    rule = SuspiciousData(lambda: suspicious.REGISTRY)
    found = suspicious.play(
        rule,
        range(0, 181, 5),
        suspicious.meters(),
        suspicious.cems(
            suspicious.MN_OLD, {"02": (30, 781, 0.0), "S01": (0, 781, 20.9)}, suspicious.GAS_2005
        ),
    )
    check(found[-1], [pollutant(suspicious.SO2)], [pollutant_en(suspicious.SO2)], at="08:30")


def legacy_suspicious() -> Anomaly:
    """An open anomaly of the former one-series form, as the rule's test builds it."""
    at = suspicious.at
    return Anomaly(
        type="suspicious_data",
        severity="warning",
        enterprise="E1",
        subject=f"outlet:E1/DA1/{suspicious.DUST}/minute:zeros",
        started_at=at(0),
        summary="a34013 (minute) at outlet DA1 has reported 0 since 2026-03-01 00:00 UTC.",
        evidence={
            "pattern": "zeros",
            "outlet": "DA1",
            "mn": suspicious.MN,
            "pollutant": suspicious.DUST,
            "interval": "minute",
            "value": 0.0,
            "since": at(0).isoformat(),
        },
        rule="suspicious_data",
        detected_at=at(20),
        as_of=at(20),
    )


def test_suspicious_of_the_former_one_series_form_open_and_retired() -> None:
    legacy = legacy_suspicious()
    check(
        legacy,
        [f"{pollutant(suspicious.DUST)}分钟数据自2026-03-01 08:00起持续为0"],
        ["reported 0 since 2026-03-01 08:00"],
        at="2026-03-01 08:00",
    )
    rule = SuspiciousData(lambda: suspicious.REGISTRY)
    rule.restore([legacy])
    found = suspicious.play(
        rule,
        range(30, 41, 5),
        suspicious.meters(),
        suspicious.cems(suspicious.MN, {suspicious.DUST: (0, 781, 0.0)}),
    )
    retired = next(a for a in found if a.id == legacy.id)
    assert retired.state == "closed"
    check(retired, ["2026-03-01 08:00至2026-03-01 08:30", "已结束"], ["until"], at="08:30")


# -- curtailment_exceeded --------------------------------------------------------------------


def test_curtailment_exceeded_under_an_order_opened_and_closed(regime: Regime) -> None:
    regime.add_order(
        OrderSpec.model_validate(
            {
                "kind": "curtailment",
                "enterprise": "E1",
                "lines": ["L1"],
                "percent": 30,
                "starts_at": curtail.START,
                "ends_at": curtail.START + timedelta(days=2),
            }
        )
    )
    rule = curtail.with_history(regime)
    found = curtail.hours(rule, curtail.START, 6, 900.0)
    found += curtail.hours(rule, curtail.START + timedelta(hours=6), 6, 500.0)
    opened, closed = found
    check(
        opened,
        [
            "产线L1处于限产30%管控",
            "依据限产指令",
            "2026-12-08 08:00起4小时用电量3600 kWh",
            "超过允许值3080 kWh",
            "基准用电量4000 kWh",
            "限产前3天",
        ],
        ["30 % curtailment (a curtailment order", "used 3600 kWh", "allowed 3080 kWh"],
        at="2026-12-08 08:00",
    )
    assert closed.state == "closed"
    check(
        closed,
        ["用电超出允许值", "已回到允许范围内或限产解除"],
        ["back within it or no longer curtailed"],
        at="2026-12-08 16:30",
    )


def test_curtailment_exceeded_under_escalating_plans(tmp_path: Path) -> None:
    regime = Regime(tmp_path / "escalating.sqlite")
    for level, start_h, end_h in (("orange", 0, 24), ("red", 24, 48)):
        regime.add_alert(
            AlertSpec.model_validate(
                {
                    "level": level,
                    "regions": ["city-a"],
                    "starts_at": curtail.START + timedelta(hours=start_h),
                    "ends_at": curtail.START + timedelta(hours=end_h),
                }
            )
        )
    rule = CurtailmentExceeded(lambda: curtail.ESCALATING, regime)
    for day in range(1, 4):
        curtail.hours(rule, curtail.START - timedelta(days=day), 24, 1000.0)
    curtail.hours(rule, curtail.START, 24, 700.0)
    found = curtail.hours(rule, curtail.START + timedelta(days=1), 8, 800.0)
    regime.close()
    (opened,) = [a for a in found if a.state == "open"]
    check(
        opened,
        [
            "限产50%",
            "依据重污染天气红色预警",
            "管控依据先后为重污染天气橙色预警、重污染天气红色预警",
        ],
        ["50 % curtailment (the red alert plan", "then the red alert plan"],
        at="2026-12-08 08:00",
    )


# -- banned_vehicle_entry --------------------------------------------------------------------


def test_banned_vehicle_entry_under_an_alert(regime: Regime) -> None:
    vehicles.alert(regime, "orange", regions=["city-a"])
    (entry,) = BannedVehicleEntry(lambda: vehicles.REGISTRY, regime).on_points(
        [vehicles.passage("冀A12345", "4")], vehicles.T0
    )
    assert entry.state == "closed"
    check(
        entry,
        [
            "门禁G1",
            "冀A12345（国四柴油重型货车）于2026-12-01 10:00进厂",
            "重污染天气橙色预警生效",
            "禁止国四及以下柴油、燃气重型货车进厂",
        ],
        ["entered at 2026-12-01 10:00", "bans diesel and gas heavy trucks of China 4 and below"],
        at="2026-12-01 10:00",
    )


def test_banned_vehicle_entry_under_a_control_period(regime: Regime) -> None:
    from gateway.regime import Alert

    regime.calendar = lambda: [
        Alert(
            id="period:games:0",
            level="red",
            regions=["city-a"],
            starts_at=vehicles.T0 - timedelta(days=1),
            ends_at=vehicles.T0 + timedelta(days=1),
        )
    ]
    (entry,) = BannedVehicleEntry(lambda: vehicles.REGISTRY, regime).on_points(
        [vehicles.passage("冀A3", "3")], vehicles.T0
    )
    check(
        entry,
        ["games管控期（按红色预警管控）", "国三"],
        ["control period games (red alert)"],
        at="2026-12-01 10:00",
        allowed=("games",),
    )


# -- unregistered_device ---------------------------------------------------------------------


def flood(count: int, update_every_s: float = 300.0) -> tuple[RefusedDevices, list[Anomaly]]:
    rule = RefusedDevices(update_every_s=update_every_s)
    out: list[Anomaly] = []
    for i, mn in enumerate(refused.made_up(count)):
        at = refused.T0 + timedelta(seconds=i)
        out += rule.on_device_event(refused.refused("unknown_mn", mn, at, refused.SCANNER))
    return rule, out


def test_unregistered_device_opened_updated_closed() -> None:
    rule, out = flood(601)
    opened, updated, _ = out
    zh, _ = check(
        opened,
        ["来自203.0.113.7的1帧数据因设备编码未登记被拒收", "自2026-03-01 14:00起"],
        ["1 frame(s) from 203.0.113.7 refused", "unregistered", "since 2026-03-01 14:00"],
        at="2026-03-01 14:00",
    )
    assert "如" not in zh  # the whole list is shown
    check(updated, ["301帧", "涉及301个不同编码（如"], ["301 unregistered", "e.g."], at="14:00")
    (closed,) = rule.on_tick(refused.T0 + timedelta(seconds=600) + refused.QUIET)
    check(
        closed,
        ["601帧", "时间2026-03-01 14:00至2026-03-01 14:10", "此后15分钟内未再收到"],
        ["from 2026-03-01 14:00 until 2026-03-01 14:10", "none since for 15 min"],
        at="2026-03-01 14:10",
    )


def test_unregistered_device_counted_as_a_lower_bound() -> None:
    from gateway.rules.auth import MAX_DISTINCT_PER_SOURCE

    rule, _ = flood(MAX_DISTINCT_PER_SOURCE + 5, update_every_s=10**6)
    (closed,) = rule.on_tick(refused.T0 + timedelta(hours=4))
    check(closed, [f"至少{MAX_DISTINCT_PER_SOURCE}个"], ["at least"], at="2026-03-01 14:00")


def test_unregistered_device_overflow_and_the_former_per_mn_form() -> None:
    rule = RefusedDevices(max_open=2)
    out: list[Anomaly] = []
    for n, mn in enumerate(refused.made_up(5)):
        event = refused.refused("unknown_mn", mn, refused.T0, f"10.0.0.{n + 1}")
        out += rule.on_device_event(event)
    overflow = next(a for a in out if a.subject == "address:*")
    check(
        overflow,
        ["超过2个地址", "另有1个地址（10.0.0.3）"],
        ["more than 2 addresses"],
        at="2026-03-01 14:00",
    )
    old = Anomaly(
        type="unregistered_device",
        severity="warning",
        enterprise="unregistered",
        subject="mn:SIM0001X00000000000000",
        started_at=refused.T0,
        summary="3 frame(s) from an unregistered MN refused.",
        evidence={
            "frames": 3,
            "first_at": refused.T0.isoformat(),
            "last_at": refused.T0.isoformat(),
        },
        rule="refused_devices",
        detected_at=refused.T0,
    )
    rule = RefusedDevices()
    rule.restore([old])
    (closed,) = rule.on_tick(refused.T0 + refused.QUIET)
    check(closed, ["未登记设备编码SIM0001X00000000000000的3帧"], ["3 frame(s)"], at="14:00")


# -- auth_failure ----------------------------------------------------------------------------


def test_auth_failure_wrong_password_opened_updated_closed() -> None:
    rule = RefusedDevices()
    out: list[Anomaly] = []
    for i in range(0, 400, 100):
        event = refused.refused(
            "bad_password", refused.MN, refused.T0 + timedelta(seconds=i), refused.IMPOSTOR, "E1"
        )
        out += rule.on_device_event(event)
    rule.on_device_event(refused.contact(refused.T0 + timedelta(seconds=301)))
    opened, updated = out
    check(
        opened,
        [f"数采仪{refused.MN}有1帧数据因访问密码错误被拒收", "来自1个地址（198.51.100.23）"],
        ["refused for a wrong password", "since 2026-03-01 14:00"],
        at="2026-03-01 14:00",
    )
    check(updated, ["有4帧数据"], ["4 frame(s)"], at="2026-03-01 14:00")
    (closed,) = rule.on_tick(refused.T0 + timedelta(seconds=300) + refused.QUIET)
    check(
        closed,
        ["时间2026-03-01 14:00至2026-03-01 14:05", "该设备最近一次正常通信于2026-03-01 14:05"],
        ["its last accepted frame came at 2026-03-01 14:05", "none since for 15 min"],
        at="2026-03-01 14:05",
    )


def test_auth_failure_undecryptable_and_keyless() -> None:
    rule = RefusedDevices()
    mn = refused.MN_2025
    (key,) = rule.on_device_event(refused.refused("bad_key", mn, refused.T0, refused.REAL, "E1"))
    (none,) = rule.on_device_event(refused.refused("no_key", mn, refused.T0, refused.REAL, "E1"))
    check(key, ["无法用登记的SM4密钥解密"], ["SM4 key does not decrypt"], at="2026-03-01 14:00")
    check(none, ["未登记SM4密钥"], ["no SM4 key registered"], at="2026-03-01 14:00")


# -- every type: coverage, empty and partial evidence ----------------------------------------


def every_type(tmp_path: Path) -> list[Anomaly]:
    """Anomalies of every type, each with the evidence its rule writes."""
    out = offline() + later_hour_gap() + overdue_gap() + o2_run() + no_treatment()
    out += [*frozen_stack(), legacy_suspicious()]
    bypass_rule = BypassFlow(lambda: bypass.REGISTRY)
    out += bypass.feed(bypass_rule, [bypass.flow(m, 900.0, flag="C") for m in range(0, 8)])
    out += bypass.feed(bypass_rule, [bypass.flow(8, 0.0)])
    pinned_rule = ValuesPinned(lambda: pinned.REGISTRY)
    out += pinned.feed(pinned_rule, pinned.pinned(random.Random(1), range(0, 13)))
    out += pinned.feed(pinned_rule, [pinned.hour(13, 20.0)])
    flags_rule = FlagAbuse(lambda: flags.REGISTRY)
    out += flags.feed(flags_rule, [flags.hour(h, 150.0, "D") for h in range(2)])
    out += flags.feed(flags_rule, [flags.hour(h) for h in range(2, 30)])
    rates_rule = LowTransmission(lambda: rates.REGISTRY)
    rates.send_day(rates_rule, rates.DAY, skip={1, 2, 3})
    out += rates.send_day(rates_rule, rates.DAY + timedelta(days=1))
    copied_rule = ValuesCopied(lambda: copied.REGISTRY)
    out += copied.feed(copied_rule, copied.copied_stack(random.Random(1), range(0, 6)))
    differ = [copied.hour(h, 10.0 + h) for h in range(6, 13)]
    differ += [copied.hour(h, 50.0 + h, mn=copied.MN2) for h in range(6, 13)]
    out += copied.feed(copied_rule, differ)
    regime = Regime(tmp_path / "mismatch.sqlite")
    mismatch_rule = OperatingMismatch(lambda: mismatch.REGISTRY, regime)
    rng = random.Random(2)
    out += mismatch.run(mismatch_rule, range(0, 40), 320.0, 0.5, rng)
    out += mismatch.run(mismatch_rule, range(40, 45), 320.0, 45.0, rng)
    out += mismatch.o2_hours(mismatch_rule, range(1, 49), 10.5, 320.0)
    out += mismatch.o2_hours(mismatch_rule, range(49, 53), 16.0, 320.0)
    out += mismatch.o2_hours(mismatch_rule, range(53, 54), 10.5, 320.0)
    regime.close()
    regime = Regime(tmp_path / "every.sqlite")
    shutdown.alert(regime, "orange", 0, 3)
    shutdown.alert(regime, "red", 3, 12)
    rule = ProductionDuringShutdown(lambda: shutdown.ESCALATING, regime)
    out += shutdown.readings(rule, range(0, 10 * 60, 5))
    out += shutdown.readings(rule, range(12 * 60, 12 * 60 + 1))
    regime.close()
    regime = Regime(tmp_path / "schedules.sqlite")  # a schedule; plans of grades, of their own
    schedule_rule = ProductionDuringShutdown(lambda: schedules.REGISTRY, regime)
    out += schedules.run(schedule_rule, schedules.JULY_10, range(11 * 60, 14 * 60, 5))
    grades.orange(regime)
    grade_rule = ProductionDuringShutdown(lambda: grades.REGISTRY, regime)
    out += grades.run(grade_rule, "E2", range(0, 140, 5))
    out += grades.over_the_cut(regime)
    regime.close()
    regime = Regime(tmp_path / "emission.sqlite")
    emission.order(regime, [])
    emission_rule = EmissionDuringShutdown(lambda: emission.REGISTRY, regime)
    out += emission.feed(emission_rule, range(0, 140, 5), 30.0)
    out += emission.feed(emission_rule, range(140, 141), 1.0)
    regime.close()
    regime = Regime(tmp_path / "curtail.sqlite")
    regime.add_order(
        OrderSpec.model_validate(
            {
                "kind": "curtailment",
                "enterprise": "E1",
                "lines": ["L1"],
                "percent": 30,
                "starts_at": curtail.START,
                "ends_at": curtail.START + timedelta(days=2),
            }
        )
    )
    curtail_rule = curtail.with_history(regime)
    out += curtail.hours(curtail_rule, curtail.START, 6, 900.0)
    out += curtail.hours(curtail_rule, curtail.START + timedelta(hours=6), 6, 500.0)
    vehicles.alert(regime, "orange", regions=["city-a"])
    out += BannedVehicleEntry(lambda: vehicles.REGISTRY, regime).on_points(
        [vehicles.passage("冀A12345", "4")], vehicles.T0
    )
    regime.close()
    regime = Regime(tmp_path / "indicators.sqlite")
    indicators.alert(regime, 0, 24, layer="event")
    indicator_rule = PlanIndicatorExceeded(lambda: indicators.REGISTRY, regime)
    out += indicators.furnaces(indicator_rule, range(120, 210, 5), running=2)
    out += indicators.furnaces(indicator_rule, range(210, 215, 5), running=1)
    kiln = [indicators.condition(m, 950.0) for m in range(120, 155, 5)]
    out += indicators.feed(indicator_rule, kiln)
    dated.event(regime, 2, 4)  # over_limit with the event's tightened limit
    tightened = OverLimit(lambda: dated.TIGHTENED, regime)
    for hour in range(5):
        out += tightened.on_points([base.hourly("w01018", hour, avg=30.0)], base.T0)
    regime.close()
    refusals, opened = flood(3)
    auth = refusals.on_device_event(
        refused.refused("bad_password", refused.MN, refused.T0, refused.IMPOSTOR, "E1")
    )
    out += opened + auth + refusals.on_tick(refused.T0 + timedelta(hours=1))
    return out


def test_every_type_and_state_its_rule_produces_is_rendered_from_evidence(tmp_path: Path) -> None:
    found = every_type(tmp_path)
    assert {a.type for a in found} == {t.name for t in TYPES}
    for anomaly in found:
        zh, en = summary(anomaly), summary(anomaly, "en")
        assert zh != summary(replace(anomaly, evidence={})), zh
        assert "UTC" not in zh + en and STAMP.search(zh) and STAMP.search(en)
        # performance grades (绩效分级) are codes
        assert foreign(zh, ("A", "B", "C", "D")) == [], zh


@pytest.mark.parametrize("state", ["open", "closed"])
@pytest.mark.parametrize("name", [t.name for t in TYPES])
def test_empty_evidence_gives_the_generic_sentence(name: str, state: str) -> None:
    start = datetime(2025, 1, 10, 0, 0, tzinfo=UTC)
    anomaly = Anomaly(
        type=name,
        severity="warning",
        enterprise="E1",
        subject="outlet:E1/DA001/a21026",
        started_at=start,
        summary="stored English text",
        evidence={},
        rule="r",
        detected_at=start,
        state=state,  # type: ignore[arg-type]
        ended_at=start + timedelta(hours=2) if state == "closed" else None,
    )
    zh, en = summary(anomaly), summary(anomaly, "en")
    assert zh.startswith(type_label(name)) and en.startswith(type_label(name, "en"))
    assert "2025-01-10 08:00" in zh and "2025-01-10 08:00" in en and "UTC" not in zh + en
    assert ("2025-01-10 10:00" in zh) == (state == "closed")
    assert "stored English text" not in zh + en
    assert foreign(zh) == []


def test_evidence_missing_any_key_or_of_another_shape_never_raises(tmp_path: Path) -> None:
    mangled: list[Callable[[dict[str, Any], str], dict[str, Any]]] = [
        lambda ev, key: {k: v for k, v in ev.items() if k != key},
        lambda ev, key: {**ev, key: None},
        lambda ev, key: {**ev, key: "x"},
        lambda ev, key: {**ev, key: [1, {"a": 2}]},
    ]
    for anomaly in every_type(tmp_path):
        for key in anomaly.evidence:
            for mangle in mangled:
                broken = replace(anomaly, evidence=mangle(dict(anomaly.evidence), key))
                for lang in ("zh", "en"):
                    text = summary(broken, lang, base.REGISTRY)
                    assert text and "UTC" not in text


def test_a_closed_anomaly_without_an_end_and_odd_subjects_still_render() -> None:
    start = datetime(2025, 1, 10, 0, 0, tzinfo=UTC)
    for subject in ("", ":", "outlet:", "gate:E1", "line:E1", "meter:x", "address:*", "weird"):
        anomaly = Anomaly(
            type="over_limit",
            severity="alarm",
            enterprise="",
            subject=subject,
            started_at=start,
            summary="",
            evidence={"hours": []},
            rule="over_limit",
            detected_at=start,
            state="closed",
        )
        assert "2025-01-10 08:00" in summary(anomaly) and summary(anomaly, "en")


# -- labels and times -----------------------------------------------------------------------


def test_every_type_family_severity_and_state_has_labels_in_both_languages() -> None:
    for t in TYPES:
        for label in (type_label(t.name), family_label(t.family)):
            assert label and not re.search("[A-Za-z]", label), label
        for label in (type_label(t.name, "en"), family_label(t.family, "en")):
            assert re.search("[A-Za-z]", label) and label not in (t.name, t.family)
        assert type_label(t.name) != t.name and family_label(t.family) != t.family
    assert (severity_label("warning"), severity_label("alarm")) == ("预警", "报警")
    assert (severity_label("warning", "en"), severity_label("alarm", "en")) == ("Warning", "Alarm")
    assert (state_label("open"), state_label("closed")) == ("进行中", "已结束")
    assert (state_label("open", "en"), state_label("closed", "en")) == ("Open", "Closed")
    assert type_label("over_limit") == "超标排放" and type_label("data_gap") == "数据缺失"
    for kind, table in LABELS.items():
        for name, text in table.items():
            assert set(text) == {"zh", "en"}, (kind, name)
            assert not re.search("[A-Za-z]", text["zh"]), (kind, name, text)
    page = labels("en")
    assert page["type"]["device_offline"] == "Device offline" and set(page) == set(LABELS)
    assert "北京时间" in TIME_NOTE["zh"] and "Beijing time" in TIME_NOTE["en"]
    assert type_label("not_a_type") == "not_a_type"


def test_times_are_beijing_time() -> None:
    assert format_time(datetime(2025, 1, 10, 0, 0, tzinfo=UTC)) == "2025-01-10 08:00"
    assert format_time("2025-01-10T00:00:00+00:00") == "2025-01-10 08:00"
    assert format_time("2025-01-10T08:00:00+08:00") == "2025-01-10 08:00"
    assert format_time("2025-01-10T00:00:00") == "2025-01-10 08:00"  # stored naive: UTC
    assert format_time("2025-01-10T16:30:00+00:00") == "2025-01-11 00:30"


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="language"):
        summary(offline()[0], "fr")  # type: ignore[arg-type]


# -- evidence labels -------------------------------------------------------------------------

# evidence keys whose values are codes the page names (`labels()["values"]`)
CODED = (
    "reason",
    "from",
    "seen_by",
    "closed_as",
    "basis",
    "running_by",
    "pattern",
    "interval",
    "kind",
    "level",
    "fuel",
    "vehicle_class",
    "banned_fuels",
    "banned_classes",
    "flag",
    "closing_flag",
)


def written(tmp_path: Path) -> list[Anomaly]:
    """Every type as its rule writes it, and the evidence only some runs write: a split upload
    and the overflow of addresses."""
    point = base.hourly("w01018", 0, avg=60.0)
    out = every_type(tmp_path)
    out += base.run_over_limit([point._replace(fields=(*point.fields, ("upload_parts", "2/3")))])
    rule = RefusedDevices(max_open=1)
    for n, mn in enumerate(refused.made_up(2)):
        out += rule.on_device_event(
            refused.refused("unknown_mn", mn, refused.T0, f"10.0.0.{n + 1}")
        )
    regime = Regime(tmp_path / "standing.sqlite")  # a standing rule's staggered window
    at = standing.beijing("2026-12-01T07:30")
    out += BannedVehicleEntry(lambda: standing.STANDING, regime).on_points(
        [standing.passage("冀B40001", "6", ent="E2", at=at)], at
    )
    regime.close()
    return out


def evidence_of(value: object, key: str = "") -> Iterator[tuple[str, object]]:
    """(key, value) of every entry of the evidence, nested ones too; a list's elements under
    the key of the list."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from evidence_of(v, k)
    elif isinstance(value, list):
        for v in value:
            if not isinstance(v, dict | list):
                yield key, v
            yield from evidence_of(v, key)


def test_every_evidence_key_the_rules_write_has_a_label_in_both_languages(
    tmp_path: Path,
) -> None:
    found = written(tmp_path)
    keys = {key for a in found for key, _ in evidence_of(a.evidence)}
    assert {"silence_s", "p_kw", "upload_parts", "sources_max", "alert_window"} <= keys
    assert sorted(keys - EVIDENCE_LABELS.keys()) == []
    for lang in ("zh", "en"):
        page = labels(lang)["evidence"]
        for key in keys:
            assert page[key] and page[key] != key, (lang, key)


def test_chinese_evidence_labels_have_no_ascii_words_but_units() -> None:
    for key, text in EVIDENCE_LABELS.items():
        assert set(text) == {"zh", "en"} and text["zh"] and text["en"], key
        bare = re.sub(r"\((?:kWh|kW|%|s)\)", "", text["zh"])
        assert not re.search("[A-Za-z]", bare), (key, text["zh"])
    assert EVIDENCE_LABELS["last_contact"]["zh"] == "最后通信时间"
    assert EVIDENCE_LABELS["silence_s"] == {"zh": "静默时长(秒)", "en": "Silence (s)"}


def test_coded_evidence_values_have_labels(tmp_path: Path) -> None:
    values = {
        f"{key}:{value}"
        for a in written(tmp_path)
        for key, value in evidence_of(a.evidence)
        if key in CODED and isinstance(value, str)
    }
    numbered = {v for v in values if v.startswith("basis:converted to ")}  # numbers, not codes
    assert numbered and {"reason:password", "closed_as:backfilled", "pattern:constant"} <= values
    assert sorted(values - numbered - VALUE_LABELS.keys()) == []
    for key, text in VALUE_LABELS.items():
        assert set(text) == {"zh", "en"} and text["en"], key
        assert text["zh"] and not re.search("[A-Za-z]", text["zh"]), (key, text["zh"])
    zh, en = labels("zh")["values"], labels("en")["values"]
    assert (zh["reason:password"], zh["reason:decrypt"], zh["reason:no_key"]) == (
        "密码错误",
        "解密失败",
        "未配置密钥",
    )
    assert {"seen_by:later_hour", "seen_by:overdue", "running_by:flow"} <= en.keys()
    assert {
        "closed_as:released",
        "closed_as:stopped",
        "pattern:zeros",
        "pattern:flag_f",
    } <= en.keys()


def test_labels_give_the_types_in_the_order_of_types() -> None:
    for lang in ("zh", "en"):
        page = labels(lang)
        assert page["type_order"] == [t.name for t in TYPES]
        assert set(page["type_order"]) == set(page["type"])
        assert page["evidence"]["mn"] and page["values"]["reason:password"]
    assert labels("zh")["evidence"]["p_kw"] == EVIDENCE_LABELS["p_kw"]["zh"]
