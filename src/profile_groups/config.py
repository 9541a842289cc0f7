"""Settings, read once from the environment (docs/operations.md)."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values published in this repository (the old default, the old compose file's): they sign
# nothing.
KNOWN_CURSOR_SECRETS = frozenset({"profile-groups-cursor", "change-me-in-production"})
MIN_CURSOR_SECRET_LENGTH = 16


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # None means "start the embedded server" (only `profile-groups run` does that).
    DATABASE_URL: str | None = None
    REDIS_URL: str | None = None
    HOST: str = "127.0.0.1"
    PORT: int = 8000
    EVALUATION_INTERVAL_SECONDS: int = Field(default=300, ge=1)
    EVENT_RETENTION_DAYS: int = Field(default=400, ge=1)
    # Membership changes older than this are pruned, and no history read reaches further back
    # (docs/changes.md).
    CHANGE_RETENTION_DAYS: int = Field(default=90, ge=1)
    LOG_LEVEL: str = "INFO"
    DATA_DIR: Path = Path(".data")
    # Signs pagination cursors; a per-deployment value keeps cursors opaque and tamper-evident.
    # Unset: `run`, `api` and `worker` use the one generated for DATA_DIR (cli.py); an app built
    # from Settings without one (tests, embedding) signs with a random per-process secret.
    CURSOR_SECRET: SecretStr | None = None
    DB_POOL_SIZE: int = 10
    # Bounds on waiting for PostgreSQL, so a stopped or frozen server is a 503, never a hang:
    # opening a connection, waiting for a free pooled one, and (client side, a little above the
    # server's statement_timeout) any one command.
    DB_CONNECT_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    DB_POOL_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    # Upper bound for a preview or evaluation statement, so a costly rule cannot hang a request.
    STATEMENT_TIMEOUT_MS: int = 60_000
    PREVIEW_TIMEOUT_MS: int = 10_000
    # Lets webhooks call loopback, private and other non-public addresses (development and tests
    # only: otherwise a subscription could reach the service's own network, docs/webhooks.md).
    WEBHOOK_ALLOW_PRIVATE_TARGETS: bool = False

    @field_validator("CURSOR_SECRET")
    @classmethod
    def _not_the_published_default(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (
            value.get_secret_value() in KNOWN_CURSOR_SECRETS
            or len(value.get_secret_value()) < MIN_CURSOR_SECRET_LENGTH
        ):
            raise ValueError(
                f"CURSOR_SECRET must be a private value of at least {MIN_CURSOR_SECRET_LENGTH} "
                "characters (unset, `profile-groups run` generates one in DATA_DIR)."
            )
        return value

    @property
    def db_command_timeout_seconds(self) -> float:
        """Client-side bound of one database command: the server's statement_timeout + 5 s."""
        return self.STATEMENT_TIMEOUT_MS / 1000 + 5

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
