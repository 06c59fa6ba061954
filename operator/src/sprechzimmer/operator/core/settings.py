"""The operator's configuration: one typed, validated object. No I/O.

Values come from environment variables prefixed ``SPRECHZIMMER_OPERATOR_`` (nested fields with
``__``, e.g. ``SPRECHZIMMER_OPERATOR_MEDIA_RESOURCES__LIMITS_CPU``) and optionally a YAML file
(``SPRECHZIMMER_OPERATOR_CONFIG_FILE``, read by ``load_settings`` in ``__main__``); environment
variables win over the file. docs/operator.md lists every field.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sprechzimmer.contract import DURATION_PATTERN, Region, parse_duration


def _duration(value: Any) -> Any:
    """Durations as the CRD writes them (``10m``, ``1h30m``), plain seconds, or ISO 8601."""
    if isinstance(value, str):
        text = value.strip()
        if DURATION_PATTERN.fullmatch(text):
            return parse_duration(text)
        if text.replace(".", "", 1).isdigit():
            return timedelta(seconds=float(text))
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]

# Where media may run, per country: the dev/KWOK regions and the German/Austrian regions of the
# big clouds (AWS Frankfurt; Azure Germany West Central/North, Austria East; GCP Frankfurt and
# Berlin; Hetzner Falkenstein and Nuremberg). Anything else is never used.
DEFAULT_REGION_ALLOW_LIST: dict[Region, list[str]] = {
    Region.DE: [
        "de-fra",
        "de-ber",
        "eu-central-1",
        "germanywestcentral",
        "germanynorth",
        "europe-west3",
        "europe-west10",
        "fsn1",
        "nbg1",
    ],
    Region.AT: ["at-vie", "austriaeast"],
}


class MediaResources(BaseModel):
    """Requests and limits of the media pod's containers (each of sfu and turn)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_cpu: str = "250m"
    requests_memory: str = "128Mi"
    limits_cpu: str = "1"
    limits_memory: str = "256Mi"


class OperatorSettings(BaseSettings):
    """Everything the operator can be told. Durations: ``90s``, ``10m``, seconds, ISO 8601."""

    model_config = SettingsConfigDict(
        env_prefix="SPRECHZIMMER_OPERATOR_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    # --- lifecycle ----------------------------------------------------------------------------
    lead_time: Duration = Field(
        timedelta(minutes=5), description="Media pods start this long before scheduledStart."
    )
    idle_timeout: Duration = Field(
        timedelta(minutes=10), description="Everyone gone this long → Idle, media released."
    )
    retention: Duration = Field(
        timedelta(hours=1), description="Expired sessions are deleted this long after expiry."
    )
    usage_record_retention: Duration = Field(
        timedelta(days=90), description="Usage records older than this are deleted."
    )
    billing_checkpoint_interval: Duration = Field(
        timedelta(seconds=30), description="While billing, status is checkpointed this often."
    )
    presence_max_vouch: Duration = Field(
        timedelta(seconds=60),
        description="A presence Lease vouches at most this long after its renewTime.",
    )
    presence_namespace: str = Field(
        "sprechzimmer-system", description="Namespace of the signaling replicas' presence Leases."
    )
    usage_namespace: str = Field(
        "sprechzimmer-system",
        description=(
            "Namespace of the usage records: the operator's own, so a bill outlives the"
            " practice's namespace."
        ),
    )
    signaling_url: str = Field(
        "https://signaling.sprechzimmer.local", description="Base URL of signaling."
    )

    placement_grace: Duration = Field(
        timedelta(seconds=15),
        description=(
            "How long a media pod may stay unschedulable (the scheduler retries as nodes change)"
            " before the session fails closed."
        ),
    )

    # --- media pods ---------------------------------------------------------------------------
    media_image: str = "sprechzimmer/media-pod:dev"
    turn_image: str = "coturn/coturn:4.6.3"
    image_pull_policy: str = "IfNotPresent"
    turn_realm: str = "sprechzimmer"
    media_tolerations: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Tolerations of media pods (JSON list of core/v1 Toleration).",
    )
    media_node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="nodeSelector of media pods (JSON object), on top of the region affinity.",
    )
    media_resources: MediaResources = MediaResources()
    host_port_min: int = Field(10000, ge=1024, le=65535)
    host_port_max: int = Field(20000, ge=1024, le=65535)
    region_allow_list: dict[Region, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_REGION_ALLOW_LIST.items()}
    )

    # --- secrets ------------------------------------------------------------------------------
    shared_key: SecretStr = Field(
        description=(
            "Key shared with signaling (≥ 32 bytes): code digests, per-session TURN secrets "
            "and control tokens are HMACs under it. Mount it from a Secret."
        ),
    )

    # --- runtime ------------------------------------------------------------------------------
    workers: int = Field(32, ge=1, le=512, description="Concurrent reconciles.")
    http_port: int = Field(8080, ge=0, le=65535, description="/metrics, /healthz, /readyz.")
    peering_name: str = "sprechzimmer-operator"
    peering_lifetime: int = Field(
        8, ge=3, le=120, description="Seconds without keep-alive before a standby takes over."
    )
    standalone: bool = Field(False, description="Run without peering (one replica only).")
    log_level: str = "INFO"

    @field_validator("shared_key")
    @classmethod
    def _key_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < 32:
            raise ValueError("shared_key must be at least 32 bytes")
        return value

    @field_validator("region_allow_list")
    @classmethod
    def _every_country_has_regions(cls, value: dict[Region, list[str]]) -> dict[Region, list[str]]:
        for country in Region:
            if not value.get(country):
                raise ValueError(f"region_allow_list needs at least one region for {country}")
        seen: dict[str, Region] = {}
        for country, regions in value.items():
            for region in regions:
                if region in seen and seen[region] != country:
                    raise ValueError(
                        f"region {region!r} is listed for both {seen[region]} and {country}"
                    )
                seen[region] = country
        return value

    @model_validator(mode="after")
    def _sane(self) -> OperatorSettings:
        if self.host_port_min > self.host_port_max:
            raise ValueError("host_port_min must not exceed host_port_max")
        for name in ("idle_timeout", "billing_checkpoint_interval", "presence_max_vouch"):
            value: Any = getattr(self, name)
            if value <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        if self.presence_max_vouch > timedelta(seconds=60):
            raise ValueError(
                "presence_max_vouch must be at most 60s (unvouched billing stops within 60 s)"
            )
        return self

    def allowed_regions(self, country: Region) -> frozenset[str]:
        """Node region labels on which a session of this country may run media."""
        return frozenset(self.region_allow_list[country])
