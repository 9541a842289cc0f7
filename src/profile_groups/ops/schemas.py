"""Bodies of the operational endpoints (docs/operations.md)."""

from typing import Literal

from pydantic import BaseModel, Field

CHECKS = (
    "Each dependency's state: `ok`, or what is wrong with it (`database`, `redis`, `worker`, ...)."
)


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"] = Field(description="Always `ok` when the process answers.")


class Readiness(BaseModel):
    """Every dependency the service needs answers."""

    status: Literal["ok"] = Field(description="`ok`: the service can serve requests.")
    checks: dict[str, str] = Field(description=CHECKS)


class NotReady(BaseModel):
    """A dependency is down or behind: the service cannot serve every request now."""

    detail: str = Field(description="What went wrong, as a sentence for a person.")
    error_code: Literal["unavailable"] = Field(description="Always `unavailable`.")
    checks: dict[str, str] = Field(description=CHECKS)
