"""Fixtures: an in-process emulator on 127.0.0.1 (fixed ``today``) and an aioboto3 client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from dbcost.emulator import Emulator, EmulatorConfig

from .helpers import TODAY, ce_client


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """The default fleet (240 clusters, 6 accounts), pages of 250 groups, no misbehaviour."""
    async with Emulator(EmulatorConfig(today=TODAY, page_size=250)) as emulator:
        yield emulator


@pytest.fixture
async def ce(emu: Emulator) -> AsyncIterator[Any]:
    """An aioboto3 Cost Explorer client pointed at ``emu``."""
    async with ce_client(emu.url) as client:
        yield client
