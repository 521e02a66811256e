"""The enterprise status names each plan measure no registered device can verify."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from gateway.registry import Registry, RegistryFile
from tests.api.conftest import REGISTRY, VIEWER


@pytest.fixture
def registry() -> Registry:
    data: Any = copy.deepcopy(REGISTRY)
    data["enterprises"][0]["plans"] = {"red": {"stop_lines": ["L1", "L9"]}}
    return Registry(RegistryFile.model_validate(data))


async def test_the_enterprise_detail_lists_its_plan_problems(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/enterprises/E1", headers=VIEWER)).json()
    assert body["plan_problems"] == [
        {
            "code": "stop_without_meter",
            "key": "red",
            "text": "红色预警方案要求产线L9停产，但该产线没有生产电表，无法核查是否停产。",
        }
    ]
    other = (await client.get("/api/v1/enterprises/E2", headers=VIEWER)).json()
    assert other["plan_problems"] == []
