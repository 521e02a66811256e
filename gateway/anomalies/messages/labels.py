"""The labels of the page, in Chinese and English: anomaly types, families, severities and
states; alert levels and patterns; the keys of the evidence the rules write and the values of
it that are codes. Depends on nothing but the list of types."""

from __future__ import annotations

from typing import Any, Literal

from ..types import TYPES

Lang = Literal["zh", "en"]
Labels = dict[str, dict[Lang, str]]

TIME_NOTE: dict[Lang, str] = {
    "zh": "所有时间均为北京时间。",
    "en": "All times are Beijing time.",
}

TYPE_LABELS: Labels = {
    "device_offline": {"zh": "设备离线", "en": "Device offline"},
    "data_gap": {"zh": "数据缺失", "en": "Missing data"},
    "low_transmission": {"zh": "传输率或有效率不达标", "en": "Transmission or validity too low"},
    "over_limit": {"zh": "超标排放", "en": "Emission over limit"},
    "treatment_not_running": {"zh": "治污设施未运行", "en": "Treatment not running"},
    "suspicious_data": {
        "zh": "数据异常（疑似造假）",
        "en": "Suspicious data (possible falsification)",
    },
    "bypass_flow": {"zh": "旁路排放", "en": "Flow through a bypass"},
    "flow_mismatch": {"zh": "流量与生产工况不符", "en": "Flow against production"},
    "dilution": {"zh": "疑似稀释排放", "en": "Suspected dilution"},
    "flag_abuse": {"zh": "数据标记异常（疑似滥用）", "en": "Data flags abused"},
    "values_copied": {"zh": "数据雷同（疑似复制）", "en": "Values copied between series"},
    "values_pinned": {
        "zh": "数据贴线（疑似人为控制）",
        "en": "Values pinned under the limit (possible manipulation)",
    },
    "production_during_shutdown": {"zh": "停产期间生产", "en": "Production during shutdown"},
    "emission_during_shutdown": {"zh": "停产期间排放", "en": "Emission during shutdown"},
    "curtailment_exceeded": {"zh": "限产超限", "en": "Curtailment exceeded"},
    "banned_vehicle_entry": {"zh": "禁行车辆进厂", "en": "Banned vehicle entry"},
    "plan_indicator_exceeded": {"zh": "方案关键指标超限", "en": "Plan indicator beyond its limit"},
    "unregistered_device": {"zh": "未登记设备", "en": "Unregistered device"},
    "auth_failure": {"zh": "认证失败", "en": "Authentication failure"},
}
FAMILY_LABELS: Labels = {
    "data_gaps": {"zh": "数据缺失与离线", "en": "Data gaps"},
    "abnormal_operation": {"zh": "异常运行", "en": "Abnormal operation"},
    "post_shutdown": {"zh": "停限产管控落实", "en": "Shutdown and curtailment"},
    "data_quality": {"zh": "设备身份异常", "en": "Device identity"},
}
SEVERITY_LABELS: Labels = {
    "warning": {"zh": "预警", "en": "Warning"},
    "alarm": {"zh": "报警", "en": "Alarm"},
}
STATE_LABELS: Labels = {
    "open": {"zh": "进行中", "en": "Open"},
    "closed": {"zh": "已结束", "en": "Closed"},
}
LEVEL_LABELS: Labels = {  # alert levels, and the layers of control plans are keyed by too
    "blue": {"zh": "蓝色预警", "en": "blue alert"},
    "yellow": {"zh": "黄色预警", "en": "yellow alert"},
    "orange": {"zh": "橙色预警", "en": "orange alert"},
    "red": {"zh": "红色预警", "en": "red alert"},
    "event": {"zh": "赛时管控", "en": "event control"},
    "reinforced": {"zh": "应急强化管控", "en": "reinforced control"},
}
PATTERN_LABELS: Labels = {
    "constant": {"zh": "数据恒值", "en": "constant values"},
    "no_flow": {"zh": "生产时无流量", "en": "no flow while producing"},
    "flow_idle": {"zh": "停产时有流量", "en": "flow while not producing"},
    "dilution": {"zh": "氧含量异常升高", "en": "O2 far above normal"},
    "zeros": {"zh": "数据持续为零", "en": "zeros"},
    "flag_f": {"zh": "持续标记停运", "en": "flag F (stopped)"},
}
INTERVAL_LABELS: Labels = {
    "rtd": {"zh": "实时", "en": "real-time"},
    "minute": {"zh": "分钟", "en": "minute"},
    "hour": {"zh": "小时", "en": "hourly"},
    "day": {"zh": "日", "en": "daily"},
}
FUEL_LABELS: Labels = {
    "diesel": {"zh": "柴油", "en": "diesel"},
    "gas": {"zh": "燃气", "en": "gas"},
    "gasoline": {"zh": "汽油", "en": "gasoline"},
    "electric": {"zh": "纯电动", "en": "electric"},
    "hybrid": {"zh": "混合动力", "en": "hybrid"},
    "hydrogen": {"zh": "氢燃料", "en": "hydrogen"},
    "other": {"zh": "其他燃料", "en": "other-fuel"},
}
CARGO_TEXT: Labels = {
    "construction_waste": {"zh": "建筑垃圾", "en": "construction waste"},
    "muck": {"zh": "渣土", "en": "muck"},
    "sand_gravel": {"zh": "砂石", "en": "sand and gravel"},
    "ore": {"zh": "矿石", "en": "ore"},
    "fertiliser_ash": {"zh": "肥料灰渣", "en": "fertiliser and ash"},
    "coal": {"zh": "煤炭", "en": "coal"},
}
DIRECTION_TEXT: Labels = {
    "in": {"zh": "进厂", "en": "entering"},
    "out": {"zh": "出厂", "en": "leaving"},
}
CLASS_LABELS: Labels = {
    "heavy": {"zh": "重型货车", "en": "heavy truck"},
    "medium": {"zh": "中型货车", "en": "medium truck"},
    "light": {"zh": "轻型货车", "en": "light truck"},
    "special": {"zh": "专项作业车", "en": "special vehicle"},
    "machinery": {"zh": "非道路移动机械", "en": "non-road machinery"},
}

# Every key of the evidence the rules write, nested ones too (and `detail`, of older versions).
# Units stay in parentheses; in Chinese they are Chinese words, not symbols.
EVIDENCE_LABELS: Labels = {
    # device_offline
    "last_contact": {"zh": "最后通信时间", "en": "Last contact"},
    "silence_s": {"zh": "静默时长(秒)", "en": "Silence (s)"},
    "threshold_s": {"zh": "判定阈值(秒)", "en": "Threshold (s)"},
    "never_seen": {"zh": "从未上线", "en": "Never seen"},
    # data_gap
    "mn": {"zh": "数采仪编号", "en": "Data logger (MN)"},
    "missing_from": {"zh": "缺失起始小时", "en": "Missing from"},
    "missing_until": {"zh": "缺失截止小时", "en": "Missing until"},
    "missing_hours": {"zh": "缺失小时数", "en": "Missing hours"},
    "filled": {"zh": "已补传小时", "en": "Back-filled hours"},
    "last_before": {"zh": "缺失前最后小时", "en": "Last hour before"},
    "first_after": {"zh": "缺失后首个小时", "en": "First hour after"},
    "seen_by": {"zh": "发现方式", "en": "Seen by"},
    "due_after_s": {"zh": "应报时限(秒)", "en": "Due after (s)"},
    "backfill_requested": {"zh": "已请求补传", "en": "Back-fill requested"},
    "closed_as": {"zh": "结束方式", "en": "Closed as"},
    # over_limit
    "outlet": {"zh": "排放口", "en": "Outlet"},
    "pollutant": {"zh": "污染物", "en": "Pollutant"},
    "code_sent": {"zh": "上报编码", "en": "Code sent"},
    "limit": {"zh": "限值", "en": "Limit"},
    "unit": {"zh": "单位", "en": "Unit"},
    "ref_o2": {"zh": "基准含氧量", "en": "Reference O2"},
    "hours": {"zh": "超标小时记录", "en": "Hours over the limit"},
    "max_value": {"zh": "最大值", "en": "Peak value"},
    "hour": {"zh": "小时", "en": "Hour"},
    "value": {"zh": "数值", "en": "Value"},
    "basis": {"zh": "依据", "en": "Basis"},
    "avg": {"zh": "实测均值", "en": "Measured mean"},
    "zs_avg": {"zh": "折算均值", "en": "Converted mean"},
    "o2": {"zh": "含氧量", "en": "O2"},
    "flag": {"zh": "数据标记", "en": "Flag"},
    "upload_parts": {"zh": "分包情况", "en": "Upload parts"},
    # treatment_not_running, production_during_shutdown: lines, facilities and meters
    "line": {"zh": "生产线", "en": "Line"},
    "lines": {"zh": "所服务生产线", "en": "Lines served"},
    "treatment": {"zh": "治污设施", "en": "Treatment"},
    "production": {"zh": "生产设施", "en": "Production"},
    "facility": {"zh": "设施", "en": "Facility"},
    "duty": {"zh": "主用", "en": "On duty"},
    "meters": {"zh": "电表", "en": "Meters"},
    "meter": {"zh": "电表", "en": "Meter"},
    "running": {"zh": "运行", "en": "Running"},
    "p_kw": {"zh": "有功功率(千瓦)", "en": "Power (kW)"},
    "at": {"zh": "时间", "en": "At"},
    "latest": {"zh": "最新读数", "en": "Latest reading"},
    "rs": {"zh": "设施状态", "en": "Facility state"},
    "grace_s": {"zh": "允许时长(秒)", "en": "Grace (s)"},
    "condition_since": {"zh": "情形起始时间", "en": "Condition since"},
    "closing_production": {"zh": "结束时生产设施", "en": "Production at the end"},
    "closing_treatment": {"zh": "结束时治污设施", "en": "Treatment at the end"},
    "persist_s": {"zh": "持续判定时长(秒)", "en": "Persistence (s)"},
    # orders, alert plans and control periods
    "shutdown": {"zh": "停产要求", "en": "Shutdown"},
    "source": {"zh": "来源", "en": "Source"},
    "sources": {"zh": "管控依据", "en": "Sources"},
    "kind": {"zh": "类别", "en": "Kind"},
    "ref": {"zh": "编号", "en": "Reference"},
    "level": {"zh": "预警级别", "en": "Alert level"},
    "starts_at": {"zh": "开始时间", "en": "Starts at"},
    "ends_at": {"zh": "结束时间", "en": "Ends at"},
    "since": {"zh": "起始时间", "en": "Since"},
    "grace_until": {"zh": "宽限截止", "en": "Grace until"},
    # emission_during_shutdown, suspicious_data
    "shutdown_since": {"zh": "停产起始时间", "en": "Shutdown since"},
    "flow": {"zh": "流量", "en": "Flow"},
    "stopped_flow": {"zh": "停产流量水平", "en": "Stopped flow level"},
    "closing_flow": {"zh": "结束时流量", "en": "Flow at the end"},
    "closing_flag": {"zh": "结束时数据标记", "en": "Flag at the end"},
    # bypass_flow
    "peak_flow": {"zh": "最高流量", "en": "Peak flow"},
    "last_flow": {"zh": "最新流量", "en": "Latest flow"},
    "flags": {"zh": "数据标记", "en": "Flags"},
    # values_pinned
    "band": {"zh": "贴线下限(限值倍数)", "en": "Band (share of the limit)"},
    "cv_below": {"zh": "变异系数判定值", "en": "Variation below"},
    "held_hours": {"zh": "贴线小时数", "en": "Hours held"},
    "last_hour": {"zh": "最近贴线小时", "en": "Last hour held"},
    "min_value": {"zh": "最小值", "en": "Lowest value"},
    "cv": {"zh": "变异系数", "en": "Coefficient of variation"},
    "window_values": {"zh": "首个窗口小时值", "en": "Values of the first window"},
    # data_gap of minute and daily records
    "missing_records": {"zh": "缺失条数", "en": "Records missing"},
    # low_transmission
    "period": {"zh": "统计周期", "en": "Period"},
    "period_label": {"zh": "统计期", "en": "Of"},
    "expected_hours": {"zh": "应报小时数", "en": "Hours expected"},
    "received_hours": {"zh": "实报小时数", "en": "Hours received"},
    "valid_hours": {"zh": "有效小时数", "en": "Valid hours"},
    "stopped_hours": {"zh": "停运小时数", "en": "Stopped hours"},
    "transmission_rate": {"zh": "传输率", "en": "Transmission rate"},
    "validity_rate": {"zh": "有效率", "en": "Validity rate"},
    "min_transmission": {"zh": "传输率要求", "en": "Transmission required"},
    "min_validity": {"zh": "有效率要求", "en": "Validity required"},
    "missing_hours_at": {"zh": "缺失小时", "en": "Missing hours"},
    "invalid_hours_at": {"zh": "无效小时", "en": "Invalid hours"},
    # device_offline of a gate
    "quiet_hours": {"zh": "正常静默时段", "en": "Quiet hours"},
    # flow_mismatch, dilution
    "normal_o2": {"zh": "正常氧含量(%)", "en": "Normal O2 (%)"},
    "o2_rise": {"zh": "氧含量升高判定值(百分点)", "en": "O2 rise to open (points)"},
    "o2_hours_known": {"zh": "氧含量基准小时数", "en": "O2 hours in the normal"},
    "closing_o2": {"zh": "结束时氧含量(%)", "en": "O2 at the end (%)"},
    "closing_running": {"zh": "结束时生产状态", "en": "Producing at the end"},
    # flag_abuse
    "flagged_hours": {"zh": "标记小时数", "en": "Flagged hours"},
    "hours_with_record": {"zh": "有数据小时数", "en": "Hours with a record"},
    "flagged_share": {"zh": "标记占比", "en": "Flagged share"},
    "flagged_over_limit": {"zh": "标记且超标小时数", "en": "Flagged hours over the limit"},
    "flag_share": {"zh": "标记占比判定值", "en": "Share to open"},
    "flag_over_limit_hours": {"zh": "标记超标判定小时数", "en": "Flagged exceedances to open"},
    "over_limit": {"zh": "超标污染物", "en": "Over the limit"},
    "flagged_at": {"zh": "被标记的小时", "en": "Flagged hours"},
    # values_copied
    "other_outlet": {"zh": "对照排放口", "en": "Other outlet"},
    "other_pollutant": {"zh": "对照污染物", "en": "Other pollutant"},
    "equal_hours": {"zh": "数值相同的小时", "en": "Equal hours"},
    "equal_count": {"zh": "相同小时数", "en": "Equal hours (count)"},
    "copied_hours": {"zh": "雷同判定小时数", "en": "Equal hours to open"},
    "pattern": {"zh": "模式", "en": "Pattern"},
    "pollutants": {"zh": "涉及污染物", "en": "Pollutants"},
    "series": {"zh": "序列", "en": "Series"},
    "interval": {"zh": "数据类型", "en": "Interval"},
    "until": {"zh": "结束时间", "en": "Until"},
    "running_by": {"zh": "生产判定依据", "en": "Running judged by"},
    # curtailment_exceeded
    "percent": {"zh": "限产比例(%)", "en": "Curtailment (%)"},
    "curtailed_since": {"zh": "限产起始时间", "en": "Curtailed since"},
    "window_hours": {"zh": "统计时段(小时)", "en": "Window (h)"},
    "energy_kwh": {"zh": "电量(千瓦时)", "en": "Energy (kWh)"},
    "baseline_kwh": {"zh": "基准电量(千瓦时)", "en": "Baseline (kWh)"},
    "allowed_kwh": {"zh": "允许电量(千瓦时)", "en": "Allowed (kWh)"},
    "baseline_days": {"zh": "基准天数", "en": "Baseline days"},
    "tolerance": {"zh": "容差倍数", "en": "Tolerance"},
    # the plan a source applies (grade defaults), schedules (错峰, time of day)
    "plan": {"zh": "所依方案", "en": "Plan applied"},
    "origin": {"zh": "方案来源", "en": "Plan from"},
    "grade": {"zh": "绩效分级", "en": "Performance grade"},
    "schedule": {"zh": "错峰生产安排", "en": "Schedule"},
    "name": {"zh": "名称", "en": "Name"},
    "daily_hours": {"zh": "每日时段", "en": "Daily hours"},
    "in_months": {"zh": "执行月份", "en": "Months"},
    "yearly_span": {"zh": "每年起止日期", "en": "Yearly span"},
    # banned_vehicle_entry
    "gate": {"zh": "门岗", "en": "Gate"},
    "plate": {"zh": "车牌", "en": "Plate"},
    "vin": {"zh": "车辆识别代号", "en": "VIN"},
    "stage": {"zh": "排放阶段", "en": "Emission stage"},
    "stage_raw": {"zh": "原始排放阶段", "en": "Stage as sent"},
    "fuel": {"zh": "燃料", "en": "Fuel"},
    "vehicle_class": {"zh": "车型", "en": "Vehicle class"},
    "alert_id": {"zh": "预警编号", "en": "Alert id"},
    "alert_window": {"zh": "预警时段", "en": "Alert window"},
    "rule": {"zh": "禁行规则", "en": "Ban rule"},
    "banned_fuels": {"zh": "禁行燃料", "en": "Banned fuels"},
    "banned_classes": {"zh": "禁行车型", "en": "Banned classes"},
    "max_banned_stage": {"zh": "禁行最高排放阶段", "en": "Highest banned stage"},
    "banned_cargo": {"zh": "禁运货物", "en": "Banned cargo"},
    "directions": {"zh": "禁行方向", "en": "Directions banned"},
    "direction": {"zh": "方向", "en": "Direction"},
    "cargo": {"zh": "货物类别", "en": "Cargo"},
    "cargo_raw": {"zh": "货物(原文)", "en": "Cargo as sent"},
    "registration_code": {"zh": "非道路移动机械登记编码", "en": "Registration code"},
    "require_registration": {"zh": "禁止未登记编码机械", "en": "Registration required"},
    "time_windows": {"zh": "禁行时段", "en": "Times of day banned"},
    "months": {"zh": "禁行月份", "en": "Months banned"},
    # over_limit tightened under a plan key; plan_indicator_exceeded
    "tightened_by": {"zh": "收严依据", "en": "Tightened by"},
    "normal_limit": {"zh": "常规限值", "en": "Normal limit"},
    "plan_key": {"zh": "方案级别", "en": "Plan key"},
    "indicator": {"zh": "关键指标", "en": "Indicator"},
    "indicator_name": {"zh": "指标名称", "en": "Indicator name"},
    "indicator_source": {"zh": "指标来源", "en": "Indicator source"},
    "from": {"zh": "取值方式", "en": "Read from"},
    "rated_kw": {"zh": "额定功率(千瓦)", "en": "Rated power (kW)"},
    "code": {"zh": "因子编码", "en": "Factor code"},
    "values": {"zh": "超限数值", "en": "Values beyond the limit"},
    "peak": {"zh": "极值", "en": "Peak"},
    "max_allowed": {"zh": "方案上限", "en": "Plan maximum"},
    "min_allowed": {"zh": "方案下限", "en": "Plan minimum"},
    "responsible": {"zh": "方案责任人", "en": "Responsible person"},
    "contact": {"zh": "联系方式", "en": "Contact"},
    "obligation": {"zh": "管控要求", "en": "Obligation"},
    "closing_value": {"zh": "结束时数值", "en": "Value at the end"},
    # unregistered_device, auth_failure
    "frames": {"zh": "帧数", "en": "Frames"},
    "first_at": {"zh": "首次时间", "en": "First at"},
    "last_at": {"zh": "最近时间", "en": "Last at"},
    "address": {"zh": "来源地址", "en": "Address"},
    "reason": {"zh": "原因", "en": "Reason"},
    "distinct_mns": {"zh": "不同编码数", "en": "Distinct MNs"},
    "distinct_mns_exact": {"zh": "编码数为精确值", "en": "MN count exact"},
    "mns_sample": {"zh": "编码示例", "en": "Sample MNs"},
    "distinct_addresses": {"zh": "不同地址数", "en": "Distinct addresses"},
    "distinct_addresses_exact": {"zh": "地址数为精确值", "en": "Address count exact"},
    "addresses_sample": {"zh": "地址示例", "en": "Sample addresses"},
    "sources_max": {"zh": "地址数上限", "en": "Most addresses"},
    "last_accepted_at": {"zh": "最近正常通信时间", "en": "Last accepted at"},
    "quiet_after_s": {"zh": "静默结束时长(秒)", "en": "Quiet after (s)"},
    "detail": {"zh": "详情", "en": "Detail"},
}

# HJ 212-2017 data flags (P: HJ 212-2005's power failure).
_FLAGS: Labels = {
    "N": {"zh": "正常", "en": "normal (N)"},
    "F": {"zh": "停运", "en": "stopped (F)"},
    "M": {"zh": "维护", "en": "maintenance (M)"},
    "S": {"zh": "手工输入", "en": "set by hand (S)"},
    "D": {"zh": "故障", "en": "fault (D)"},
    "C": {"zh": "校准", "en": "calibration (C)"},
    "T": {"zh": "超测定上限", "en": "over range (T)"},
    "B": {"zh": "通讯异常", "en": "communication fault (B)"},
    "P": {"zh": "电源故障", "en": "power failure (P)"},
}
_SOURCE_KINDS: Labels = {
    "order": {"zh": "管控指令", "en": "order"},
    "alert plan": {"zh": "重污染天气预警", "en": "alert plan"},
    "control period": {"zh": "管控期", "en": "control period"},
    "schedule": {"zh": "错峰生产安排", "en": "schedule"},
    "standing rule": {"zh": "常态化管控规定", "en": "standing rule"},
}


def _keyed(key: str, table: Labels) -> Labels:
    return {f"{key}:{value}": text for value, text in table.items()}


# Evidence values that are codes, keyed `<evidence key>:<value>` (the value as written, also
# for an element of a list, e.g. `banned_fuels:diesel`); values that carry numbers (the basis
# `converted to 6.0 % O2 with O2 = 12.0 %`, ids, times) are not codes and not here.
VALUE_LABELS: Labels = {
    "reason:password": {"zh": "密码错误", "en": "wrong password"},
    "reason:decrypt": {"zh": "解密失败", "en": "decryption failed"},
    "reason:no_key": {"zh": "未配置密钥", "en": "no key registered"},
    "seen_by:later_hour": {"zh": "后续小时数据已到达", "en": "a later hour arrived"},
    "seen_by:overdue": {"zh": "超过应报时间", "en": "overdue"},
    "closed_as:backfilled": {"zh": "已补传", "en": "back-filled"},
    "closed_as:released": {"zh": "管控解除", "en": "released"},
    "closed_as:stopped": {"zh": "已停止排放", "en": "stopped"},
    "period:day": {"zh": "日", "en": "day"},
    "period:month": {"zh": "月", "en": "month"},
    "closed_as:varies": {"zh": "数据恢复正常波动", "en": "values vary again"},
    "closed_as:routine": {"zh": "标记恢复正常", "en": "flags back to routine"},
    "closed_as:differ": {"zh": "数值不再相同", "en": "the values differ again"},
    "basis:ZsAvg": {"zh": "折算值", "en": "ZsAvg"},
    "basis:Avg": {"zh": "实测值", "en": "Avg"},
    "closed_as:stopped (flag F)": {"zh": "数据标记停运", "en": "stopped (flag F)"},
    "closed_as:quiet": {"zh": "此后未再收到", "en": "no more frames"},
    "basis:ZsAvg sent by the device": {"zh": "设备上报的折算值", "en": "ZsAvg sent by the device"},
    "basis:measured mean": {"zh": "实测值", "en": "measured mean"},
    "basis:measured mean (no usable O2 for the conversion)": {
        "zh": "实测值(无有效含氧量，未折算)",
        "en": "measured mean (no usable O2 for the conversion)",
    },
    "running_by:meters": {"zh": "生产电表", "en": "production meters"},
    "from:running": {"zh": "产线运行电表台数", "en": "production meters running"},
    "from:load": {"zh": "电表负荷率", "en": "a meter's load"},
    "from:device": {"zh": "监测设备上报值", "en": "a value a device reports"},
    "closed_as:within": {"zh": "回到限值内", "en": "back within the limit"},
    "running_by:flow": {"zh": "流量", "en": "flow"},
    **_keyed("pattern", PATTERN_LABELS),
    **_keyed("interval", INTERVAL_LABELS),
    **_keyed("level", LEVEL_LABELS),
    **_keyed("kind", _SOURCE_KINDS),
    "source:order": _SOURCE_KINDS["order"],
    "source:schedule": _SOURCE_KINDS["schedule"],
    "origin:enterprise": {"zh": "企业“一厂一策”方案", "en": "the enterprise's own plan"},
    "origin:grade": {"zh": "绩效分级默认措施", "en": "the grade's default plan"},
    **{
        f"source:{level} alert plan": {"zh": f"重污染天气{name['zh']}", "en": f"{name['en']} plan"}
        for level, name in LEVEL_LABELS.items()
    },
    **{
        f"source:{level} control period": {
            "zh": f"管控期（按{name['zh']}管控）",
            "en": f"control period ({name['en']})",
        }
        for level, name in LEVEL_LABELS.items()
    },
    **_keyed("fuel", FUEL_LABELS),
    **_keyed("banned_fuels", FUEL_LABELS),
    **_keyed("vehicle_class", CLASS_LABELS),
    **_keyed("banned_classes", CLASS_LABELS),
    **_keyed("flag", _FLAGS),
    **_keyed("closing_flag", _FLAGS),
    **_keyed("flags", _FLAGS),
    **_keyed("cargo", CARGO_TEXT),
    **_keyed("banned_cargo", CARGO_TEXT),
    **_keyed("direction", DIRECTION_TEXT),
    **_keyed("directions", DIRECTION_TEXT),
}

LABELS: dict[str, Labels] = {
    "type": TYPE_LABELS,
    "family": FAMILY_LABELS,
    "severity": SEVERITY_LABELS,
    "state": STATE_LABELS,
    "level": LEVEL_LABELS,
    "pattern": PATTERN_LABELS,
    "evidence": EVIDENCE_LABELS,
    "values": VALUE_LABELS,
    # the types in the order of `types.TYPES`; `labels()` gives their names as a list
    "type_order": {t.name: TYPE_LABELS[t.name] for t in TYPES if t.name in TYPE_LABELS},
}


def _check(lang: str) -> None:
    if lang not in ("zh", "en"):
        raise ValueError(f"unknown language {lang!r} (zh or en)")


def _label(table: Labels, name: str, lang: Lang) -> str:
    _check(lang)
    found = table.get(name)
    return found[lang] if found is not None else name


def type_label(name: str, lang: Lang = "zh") -> str:
    return _label(TYPE_LABELS, name, lang)


def family_label(name: str, lang: Lang = "zh") -> str:
    return _label(FAMILY_LABELS, name, lang)


def severity_label(name: str, lang: Lang = "zh") -> str:
    return _label(SEVERITY_LABELS, name, lang)


def state_label(name: str, lang: Lang = "zh") -> str:
    return _label(STATE_LABELS, name, lang)


def labels(lang: Lang = "zh") -> dict[str, Any]:
    """Every label in one language, for the page: one kind of `LABELS` each, by name, e.g.

        {"type": {"over_limit": "超标排放", ...}, "family": {...}, "severity": {...},
         "state": {...}, "level": {...}, "pattern": {...},
         "evidence": {"last_contact": "最后通信时间", ...},
         "values": {"reason:password": "密码错误", "closed_as:backfilled": "已补传", ...},
         "type_order": ["device_offline", "data_gap", "over_limit", ...]}

    `evidence` names evidence keys (nested ones too); `values` names evidence values that are
    codes, keyed `<key>:<value>` (a value as written, or an element of a list value), a value
    not there is shown as it is; `type_order` is the one list: the types in the order of
    `gateway.anomalies.types.TYPES`."""
    _check(lang)
    page: dict[str, Any] = {
        kind: {name: text[lang] for name, text in table.items()} for kind, table in LABELS.items()
    }
    page["type_order"] = [t.name for t in TYPES]
    return page
