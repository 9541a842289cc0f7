"""Settings, read once from the environment (docs/operations.md)."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # None means "start the embedded server" (only `profile-groups run` does that).
    DATABASE_URL: str | None = None
    REDIS_URL: str | None = None
    HOST: str = "127.0.0.1"
    PORT: int = 8000
    EVALUATION_INTERVAL_SECONDS: int = Field(default=300, ge=1)
    EVENT_RETENTION_DAYS: int = Field(default=400, ge=1)
    LOG_LEVEL: str = "INFO"
    DATA_DIR: Path = Path(".data")
    # Signs pagination cursors; a per-deployment value keeps cursors opaque and tamper-evident.
    CURSOR_SECRET: SecretStr = SecretStr("profile-groups-cursor")
    DB_POOL_SIZE: int = 10
    # Upper bound for a preview or evaluation statement, so a costly rule cannot hang a request.
    STATEMENT_TIMEOUT_MS: int = 60_000
    PREVIEW_TIMEOUT_MS: int = 10_000

    @property
    def job_timeout_seconds(self) -> int:
        """How long the worker lets one job run: twice the statement bound, at least a minute."""
        return max(self.STATEMENT_TIMEOUT_MS // 1000 * 2, 60)

    @property
    def database_url(self) -> str:
        if self.DATABASE_URL is None:
            raise RuntimeError(
                "DATABASE_URL is not set (use `profile-groups run` for embedded defaults)"
            )
        return self.DATABASE_URL

    @property
    def redis_url(self) -> str:
        if self.REDIS_URL is None:
            raise RuntimeError(
                "REDIS_URL is not set (use `profile-groups run` for embedded defaults)"
            )
        return self.REDIS_URL


@lru_cache
def get_settings() -> Settings:
    return Settings()
