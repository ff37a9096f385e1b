"""Settings of the Streamlit app, read from the environment through pydantic-settings."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AppSettings(BaseSettings):
    """Where the app finds the ResultsService (prefix ``GREENPRUNE_APP_``).

    Attributes:
        results_address: The ``host:port`` of the ResultsService.
        token: The bearer token the services check, from ``GREENPRUNE_TOKEN``.
        timeout_seconds: The deadline of each call to the ResultsService.
    """

    model_config = SettingsConfigDict(env_prefix="GREENPRUNE_APP_", extra="ignore")

    results_address: str = "127.0.0.1:50053"
    token: str | None = Field(
        default=None, validation_alias=AliasChoices("GREENPRUNE_TOKEN", "token")
    )
    timeout_seconds: float = Field(default=10.0, gt=0)
