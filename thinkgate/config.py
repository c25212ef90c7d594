"""Gateway configuration: one TOML file, overridable by ``THINKGATE_*`` variables.

Precedence (highest first): explicit keyword arguments, environment variables
(``THINKGATE_GATEWAY__PORT=9000``, nested with ``__``), the TOML file named by
``--config`` or ``THINKGATE_CONFIG``, then the embedded defaults below. With no
file at all, the embedded default describes the testbed stack that
``thinkgate up`` starts.

This module is imported by the server and the CLI only; ``import thinkgate``
never loads it (it needs pydantic-settings, a server dependency).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

GuidanceMode = Literal["hard", "soft", "soft+hard", "extend", "none"]


class BackendConfig(BaseModel):
    """One vLLM replica. Several entries with the same ``model`` are replicas."""

    name: str
    url: str
    model: str
    price_input_per_m: float = Field(0.0, ge=0, description="$ per million prompt tokens")
    price_output_per_m: float = Field(0.0, ge=0, description="$ per million completion tokens")
    reasoning_parser: str | None = "deepseek_r1"
    enforces_thinking_budget: bool = True
    guidance: bool = False
    # Overrides [router] guidance_mode for this model (all its replicas must agree), e.g. "hard" for a
    # model that cannot think more concisely when steered, so guidance would only cost it accuracy.
    guidance_mode: GuidanceMode | None = None
    api_key: str | None = None

    @field_validator("url")
    @classmethod
    def _strip_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("backend url must start with http:// or https://")
        return v.rstrip("/")


class GatewayConfig(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    connect_timeout_s: float = Field(3.0, gt=0)
    read_timeout_s: float = Field(600.0, gt=0)
    health_interval_s: float = Field(5.0, gt=0)
    health_timeout_s: float = Field(2.0, gt=0)
    # A backend marked down by a failed request is retried by the health loop;
    # until then it only serves when no healthy replica is left.
    max_connections: int = Field(1024, gt=0)
    aliases: list[str] = Field(default_factory=lambda: ["auto"])
    require_api_key: bool = False
    admin_key: str | None = None
    decision_ttl_s: float = Field(3600.0, gt=0)
    # max_tokens imposed on budgeted requests that set none, so that the
    # reserved worst case is enforced by vLLM.
    reserve_max_tokens: int = Field(4096, gt=0)
    # The single special token that ends thinking; its id is learned from each
    # backend's /tokenize and used to count thinking tokens exactly.
    think_end_marker: str = "</think>"


class RouterConfig(BaseModel):
    strategy: str = "fixed"
    default_model: str | None = None
    default_thinking_budget: int | None = Field(None, ge=0)
    default_max_tokens: int | None = Field(None, gt=0)
    guidance_mode: GuidanceMode = "hard"
    # Strength of the decode-time guidance for backends with the plugin (1 = the paper's rule).
    guidance_strength: float = Field(1.0, ge=0, le=50)
    # 0: Budget Guidance's rule (the whole remaining thinking must fit the budget left);
    # 1: only the next line must fit (thinking runs to the last line boundary before the budget).
    guidance_horizon: Literal[0, 1] = 0
    # Strategy parameters passed to its constructor, e.g. {alpha = 0.3} for
    # linucb or {target_share = 0.3} for tiers.
    options: dict[str, Any] = Field(default_factory=dict)


class Settings(BaseSettings):
    """Everything the gateway needs; build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="THINKGATE_", env_nested_delimiter="__", extra="forbid"
    )

    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    backends: list[BackendConfig] = Field(default_factory=list)
    ledger_url: str = "sqlite:///.thinkgate/ledger.db"
    predictor_path: str | None = None
    outcomes_path: str | None = None

    @model_validator(mode="after")
    def _check_backends(self) -> Settings:
        names = [b.name for b in self.backends]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"backends: duplicate name(s) {sorted(dup)}")
        models = {b.model for b in self.backends}
        for m in sorted(models):
            modes = {b.guidance_mode for b in self.backends if b.model == m}
            if len(modes) > 1:
                raise ValueError(f"backends: guidance_mode differs between the replicas of model {m!r}: "
                                 f"{sorted(str(x) for x in modes)}")
        clash = models & set(self.gateway.aliases)
        if clash:
            raise ValueError(f"gateway.aliases: {sorted(clash)} is also a backend model name")
        if self.router.default_model and self.backends and self.router.default_model not in models:
            raise ValueError(
                f"router.default_model: unknown model {self.router.default_model!r}, "
                f"available: {sorted(models)}"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the TOML file, which arrives as init kwargs
        # merged under explicit overrides by load_settings().
        return (env_settings, init_settings)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def default_config() -> dict[str, Any]:
    """The embedded default: the testbed stack started by ``thinkgate up``."""
    try:
        from testbed.stack import default_gateway_config
    except ImportError:
        return {}
    return default_gateway_config()


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (or ``$THINKGATE_CONFIG``, or the embedded default).

    Raises ``FileNotFoundError`` naming the file, or ``ValueError`` naming the
    offending key, so the CLI can print a one-line error.
    """
    path = path or os.environ.get("THINKGATE_CONFIG")
    data: dict[str, Any]
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{p}: invalid TOML: {exc}") from exc
    else:
        data = default_config()
    data = _deep_merge(data, overrides)
    return Settings(**data)
