"""Worker jobs of this feature, collected by profile_groups.worker."""

from typing import Any

FUNCTIONS: list[Any] = []
CRON_JOBS: list[Any] = []
