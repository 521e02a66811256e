"""The language of what people read: `?lang=zh|en`, else the first of `Accept-Language` that
is one of them, else Chinese. Machine fields (types, codes, ISO 8601 times) do not change."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Header, Query

Lang = Literal["zh", "en"]


def language(
    lang: Annotated[
        Lang | None, Query(description="language of summaries and labels (default Chinese)")
    ] = None,
    accept_language: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Lang:
    if lang is not None:
        return lang
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "zh"


Language = Annotated[Lang, Depends(language)]
