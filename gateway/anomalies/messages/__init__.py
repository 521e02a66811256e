"""What an anomaly says to an enforcement officer: its summary rendered from its type, state and
evidence, in Chinese (the default) or English, and the labels of types, families, severities,
states and evidence for the page. Pure: no I/O; a registry, when given, only names things.

Every time in a text is Beijing time (Asia/Shanghai), written `2025-01-10 08:00`; the page says
so once (`TIME_NOTE`). Pollutants are named by the vocabulary with their code, e.g.
`二氧化硫(a21026)`; limits and units come from the evidence. An anomaly whose evidence lacks what
its type's sentence needs (one stored by an older version) gets a generic sentence built from
its type, subject and times: rendering never fails on evidence.

`labels` holds the label tables and `labels()`; `common` the rendering context, times, numbers
and the generic sentence; one module per family renders its types (`data_gaps`,
`abnormal_operation`, `post_shutdown` with `plan_indicators`, `data_quality`); `render` gives
`summary()`. The underscored helpers are shared within the package only.
"""

from .common import BEIJING, HOUR, format_time
from .labels import (
    EVIDENCE_LABELS,
    FAMILY_LABELS,
    LABELS,
    LEVEL_LABELS,
    PATTERN_LABELS,
    SEVERITY_LABELS,
    STATE_LABELS,
    TIME_NOTE,
    TYPE_LABELS,
    VALUE_LABELS,
    Labels,
    Lang,
    family_label,
    labels,
    severity_label,
    state_label,
    type_label,
)
from .render import summary

__all__ = [
    "BEIJING",
    "EVIDENCE_LABELS",
    "FAMILY_LABELS",
    "HOUR",
    "LABELS",
    "LEVEL_LABELS",
    "PATTERN_LABELS",
    "SEVERITY_LABELS",
    "STATE_LABELS",
    "TIME_NOTE",
    "TYPE_LABELS",
    "VALUE_LABELS",
    "Labels",
    "Lang",
    "family_label",
    "format_time",
    "labels",
    "severity_label",
    "state_label",
    "summary",
    "type_label",
]
