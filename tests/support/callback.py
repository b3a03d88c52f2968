"""Driving callback-style handlers and orcas from asyncio tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run FN (a handler or orca method whose last positional argument is its callback) and await
    its one answer."""
    future = asyncio.get_running_loop().create_future()
    fn(*args, lambda resp: future.done() or future.set_result(resp), **kwargs)
    return await asyncio.wait_for(future, 30)


class Held:
    """A handler (or orca) whose calls of METHOD numbered in NTH (counting from 1) wait for HOOK,
    another client's write, placing it exactly: before the call is sent, or with ANSWER before
    its answer is handed on."""

    def __init__(self, inner: Any, method: str, nth: set[int], hook: Callable[[], Awaitable[None]], *,
                 answer: bool = False) -> None:
        self.inner, self.method, self.nth, self.hook, self.answer = inner, method, nth, hook, answer
        self.calls = 0
        self.tasks: list[asyncio.Task] = []  # held steps in flight (kept: a task is only weakly referenced)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name != self.method:
            return target

        def held(*args: Any, **kwargs: Any) -> None:
            self.calls += 1
            if self.calls not in self.nth:
                target(*args, **kwargs)
                return
            loop = asyncio.get_running_loop()
            if not self.answer:
                async def send_later() -> None:
                    await self.hook()
                    target(*args, **kwargs)

                self.tasks.append(loop.create_task(send_later()))
                return
            *rest, cb = args

            def answered(resp: Any) -> None:
                async def answer_later() -> None:
                    await self.hook()
                    cb(resp)

                self.tasks.append(loop.create_task(answer_later()))

            target(*rest, answered, **kwargs)

        return held
