"""Driving callback-style handlers and orcas from asyncio tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run FN (a handler or orca method whose last positional argument is its callback) and await
    its one answer."""
    future = asyncio.get_running_loop().create_future()
    fn(*args, lambda resp: future.done() or future.set_result(resp), **kwargs)
    return await asyncio.wait_for(future, 30)
