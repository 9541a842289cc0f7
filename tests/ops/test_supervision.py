"""The worker never exits silently (docs/operations.md): `supervise` restarts a worker that
stopped on a dependency error, with backoff; a fatal error ends it with status 1 and a log line,
unless it restarts always (`run`)."""

import asyncio
import logging
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from profile_groups.ops import heartbeat
from profile_groups.ops.heartbeat import supervise


class FakeWorker:
    """Stands in for arq's Worker: `async_run` raises the next scripted error, or returns."""

    def __init__(self, outcome: BaseException | None, closed: list[int]) -> None:
        self.outcome = outcome
        self.closed = closed
        self.on_shutdown = None
        self.ctx: dict[str, Any] = {}

    async def async_run(self) -> None:
        await asyncio.sleep(0)
        if self.outcome is not None:
            raise self.outcome

    async def close(self) -> None:
        self.closed.append(1)


def maker(outcomes: list[BaseException | None], closed: list[int]) -> Any:
    it = iter(outcomes)
    return lambda: FakeWorker(next(it), closed)


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heartbeat, "FIRST_RESTART_DELAY", 0.01)


async def test_a_dependency_error_restarts_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    closed: list[int] = []
    outcomes: list[BaseException | None] = [RedisConnectionError("gone"), OSError("reset"), None]
    with caplog.at_level(logging.ERROR, "profile_groups.worker"):
        assert await supervise(maker(outcomes, closed), restart_always=False) == 0
    assert len(closed) == 3
    assert [r.message for r in caplog.records].count("worker stopped on an error; restarting") == 2


async def test_a_fatal_error_exits_non_zero_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed: list[int] = []
    with caplog.at_level(logging.ERROR, "profile_groups.worker"):
        code = await supervise(maker([RuntimeError("bug"), None], closed), restart_always=False)
    assert code == 1
    assert closed == [1]
    (record,) = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "fatal" in record.message and record.exc_info is not None


async def test_run_restarts_its_worker_whatever_stopped_it() -> None:
    closed: list[int] = []
    outcomes: list[BaseException | None] = [RuntimeError("bug"), KeyError("x"), None]
    assert await supervise(maker(outcomes, closed), restart_always=True) == 0
    assert len(closed) == 3


async def test_cancelling_the_supervisor_closes_its_worker() -> None:
    closed: list[int] = []

    class Forever(FakeWorker):
        async def async_run(self) -> None:
            await asyncio.sleep(60)

    task = asyncio.create_task(supervise(lambda: Forever(None, closed), restart_always=True))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == [1]
