"""The not-enabled answer of GetCostAndUsageWithResources, through the real AWS seam (aioboto3, SigV4, HTTP)
against the emulator with resource-level data off: one line naming the Cost Explorer setting to turn on."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import DataUnavailableError, NotEnabledError, ServiceValidationError
from dbcost.operations import COST_AND_USAGE_WITH_RESOURCES
from dbcost.transport.aws import AwsTransport

TODAY = dt.date(2026, 11, 28)
REQUEST: dict[str, Any] = {
    "TimePeriod": {"Start": "2026-11-14", "End": "2026-11-28"},
    "Granularity": "DAILY",
    "Metrics": ["UnblendedCost"],
    "Filter": {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon DynamoDB"]}},
    "GroupBy": [{"Type": "DIMENSION", "Key": "RESOURCE_ID"}],
}


async def test_not_enabled_is_one_line_naming_the_setting() -> None:
    """DataUnavailableException on GetCostAndUsageWithResources becomes NotEnabledError: one line, the setting."""
    async with (Emulator(EmulatorConfig(today=TODAY, resource_data_enabled=False)) as emu,
                AwsTransport(endpoint_url=emu.url, region="us-east-1", credentials=("testing", "testing")) as t):
        with pytest.raises(NotEnabledError) as info:
            await t.call("GetCostAndUsageWithResources", REQUEST)
    err = info.value
    assert isinstance(err, DataUnavailableError)  # not retried, exit 1 like every ApiError
    assert COST_AND_USAGE_WITH_RESOURCES.opt_in is not None
    assert err.setting == COST_AND_USAGE_WITH_RESOURCES.opt_in
    line = str(err)
    assert "\n" not in line
    assert line.startswith("GetCostAndUsageWithResources: resource-level data is not enabled")
    assert COST_AND_USAGE_WITH_RESOURCES.opt_in in line
    assert err.code == "DataUnavailableException" and err.status == 400


async def test_a_rule_broken_with_data_enabled_stays_a_validation_error() -> None:
    """With the data on, a start beyond 14 days is the service's ValidationException, not "not enabled"."""
    async with (Emulator(EmulatorConfig(today=TODAY)) as emu,
                AwsTransport(endpoint_url=emu.url, region="us-east-1", credentials=("testing", "testing")) as t):
        with pytest.raises(ServiceValidationError) as info:
            await t.call("GetCostAndUsageWithResources",
                         {**REQUEST, "TimePeriod": {"Start": "2026-11-01", "End": "2026-11-28"}})
    assert not isinstance(info.value, NotEnabledError)
