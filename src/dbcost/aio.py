"""asyncio helpers shared by the pipeline and the jobs (layer L0: stdlib only)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end, without swallowing a cancellation of the *calling* task.

    The task's own outcome (its cancellation, or an error it ended with) is dropped: whoever cancels it
    has already decided what happens next.
    """
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:
        with contextlib.suppress(Exception):
            task.exception()  # mark it retrieved
