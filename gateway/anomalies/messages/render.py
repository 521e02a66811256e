"""An anomaly's summary: the sentence of its type, or the generic one when the evidence lacks
what that sentence needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..model import Anomaly
from . import abnormal_operation, data_gaps, data_quality, plan_indicators, post_shutdown
from .common import _Ctx, _generic
from .labels import Lang, _check

if TYPE_CHECKING:
    from gateway.registry import Registry

_RENDERERS: dict[str, Callable[[_Ctx], str]] = {
    **data_gaps.RENDERERS,
    **abnormal_operation.RENDERERS,
    **post_shutdown.RENDERERS,
    **data_quality.RENDERERS,
    **plan_indicators.RENDERERS,
}


def summary(anomaly: Anomaly, lang: Lang = "zh", registry: Registry | None = None) -> str:
    """One sentence (or two) saying what the anomaly is, in its present state."""
    _check(lang)
    ctx = _Ctx(anomaly, lang, registry)
    render = _RENDERERS.get(anomaly.type)
    if render is not None:
        try:
            return render(ctx)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError):
            pass  # evidence of another shape (older versions): the generic sentence
    return _generic(ctx)
