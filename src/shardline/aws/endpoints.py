"""Where requests for a service go and how they are signed, exactly as botocore decides.

botocore is used for what it is good at: region and endpoint resolution (regions, FIPS,
dual-stack, partitions, ``AWS_ENDPOINT_URL*``); nothing is sent to resolve an endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import botocore.exceptions
import botocore.session
from botocore.config import Config

from shardline.aws.protocol import SIGNING_NAME, check_service
from shardline.aws.settings import AwsSettings
from shardline.errors import ConfigError

__all__ = [
    "ResolvedEndpoint",
    "botocore_session",
    "region_or_aws_region",
    "resolve_endpoint",
]

_PROBE_OPERATIONS: Final[Mapping[str, str]] = {
    "dynamodb": "list_tables",
    "dynamodbstreams": "list_streams",
}


@dataclass(frozen=True)
class ResolvedEndpoint:
    """Where to send requests for one service, and how to sign them."""

    url: str
    region: str
    signing_name: str = SIGNING_NAME

    @property
    def endpoint_url(self) -> str:
        """The URL without the trailing ``/`` botocore adds for the root path."""
        return self.url[:-1] if self.url.endswith("/") else self.url


class _Resolved(Exception):
    """Raised from botocore's ``before-sign`` hook to stop the probe before any I/O."""

    def __init__(self, endpoint: ResolvedEndpoint) -> None:
        super().__init__(endpoint.url)
        self.endpoint = endpoint


def resolve_endpoint(
    service: str, settings: AwsSettings, session: botocore.session.Session | None = None
) -> ResolvedEndpoint:
    """Resolve the URL and signing region exactly as botocore would for ``service``.

    A botocore client is built once and one operation is started with a ``before-sign``
    hook that records the request URL and stops it: the endpoint rules (regions, FIPS,
    dual-stack, partitions, account-ID endpoints, ``AWS_ENDPOINT_URL*``) are botocore's
    own, and nothing is sent. ``client.meta.endpoint_url`` is not used: it differs from
    the real request URL for some settings (e.g. dual-stack Streams, GovCloud FIPS).
    """
    check_service(service)
    session = session or botocore_session(settings)
    client = _botocore_client(session, service, settings)
    try:
        endpoint = _probe(client, service)
    finally:
        client.close()
    return endpoint


def _probe(client: Any, service: str) -> ResolvedEndpoint:
    service_id = client.meta.service_model.service_id.hyphenize()
    operation = client.meta.method_to_api_mapping[_PROBE_OPERATIONS[service]]

    def capture(request: Any, signing_name: str, region_name: str, **_: Any) -> None:
        signing = request.context.get("signing") or {}
        raise _Resolved(
            ResolvedEndpoint(
                url=request.url,
                region=signing.get("region") or region_name,
                signing_name=signing.get("signing_name") or signing_name,
            )
        )

    client.meta.events.register(f"before-sign.{service_id}.{operation}", capture)
    try:
        getattr(client, _PROBE_OPERATIONS[service])()
    except _Resolved as resolved:
        return resolved.endpoint
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigError(f"cannot resolve the {service} endpoint: {exc}") from exc
    raise ConfigError(f"cannot resolve the {service} endpoint: botocore sent no request")


def botocore_session(settings: AwsSettings) -> botocore.session.Session:
    """A botocore session with ``settings.profile`` (None: the default profile)."""
    return botocore.session.Session(profile=settings.profile)


def _botocore_client(session: botocore.session.Session, service: str, settings: AwsSettings) -> Any:
    try:
        client = session.create_client(
            service,
            region_name=region_or_aws_region(settings.region),
            endpoint_url=settings.explicit_endpoint(service),
            config=_endpoint_config(session),
        )
    except botocore.exceptions.NoRegionError as exc:
        raise ConfigError(
            "no AWS region is configured: set AWS_REGION, a region in the profile, or region="
        ) from exc
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"AWS profile {settings.profile!r} was not found: {exc}") from exc
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise ConfigError(f"cannot configure the {service} client: {exc}") from exc
    if not client.meta.region_name:
        client.close()
        raise ConfigError("no AWS region is configured: set AWS_REGION or region=")
    return client


def region_or_aws_region(region: str | None) -> str | None:
    """``region``, else ``AWS_REGION``; None lets botocore read ``AWS_DEFAULT_REGION`` and
    the profile. botocore itself ignores ``AWS_REGION``, which the other AWS SDKs (and
    Lambda, ECS) use."""
    return region or os.environ.get("AWS_REGION") or None


def _endpoint_config(session: botocore.session.Session) -> Config:
    """Regional endpoints, unless the user *requires* account-ID endpoints.

    botocore's account-ID endpoints (``<account>.ddb.<region>...``) depend on each request's
    ARN (stream ARN, iterator, table ARN) and the credentials' account; one URL per client
    cannot follow that. The regional endpoint serves every account, so it is the default
    here. With ``account_id_endpoint_mode = required`` botocore's choice (from the
    credentials' account) is kept.
    """
    mode = session.get_config_variable("account_id_endpoint_mode")
    return Config(account_id_endpoint_mode="required" if mode == "required" else "disabled")
