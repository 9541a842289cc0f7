"""The arq pool as a dependency: routes that enqueue jobs (after commit) take `ArqDep`."""

from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Request


def _arq(request: Request) -> ArqRedis:
    pool: ArqRedis = request.app.state.arq
    return pool


ArqDep = Annotated[ArqRedis, Depends(_arq)]
