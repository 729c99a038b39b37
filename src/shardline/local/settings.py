"""The local stack's settings, declared once: :class:`LocalStackSettings` and :data:`LOCAL`.

``shardline local``'s flags, :class:`~shardline.local.LocalStack`, ``shardline demo``,
:mod:`shardline.testing` and shardline's own tests read the address, region, account
and dummy credentials from here. Pure: no moto, no botocore, no environment reads.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shardline.aws.settings import AwsSettings

__all__ = ["LOCAL", "LocalStackSettings"]

ACCESS_KEY_VARIABLE = "AWS_ACCESS_KEY_ID"
SECRET_KEY_VARIABLE = "AWS_SECRET_ACCESS_KEY"
REGION_VARIABLE = "AWS_REGION"


@dataclass(frozen=True)
class LocalStackSettings:
    """Where the local stack listens and what a client of it uses.

    ``port`` 4566 is ``shardline local``'s; an embedded
    :class:`~shardline.local.LocalStack` takes a free port (0) unless given one.
    ``account_id`` is moto's default account, where the stack's tables live unless
    ``MOTO_ACCOUNT_ID`` says otherwise. The stack accepts any credentials; botocore only
    needs some to sign with, so ``access_key_id`` and ``secret_access_key`` are dummies.
    """

    host: str = "127.0.0.1"
    port: int = 4566
    region: str = "us-east-1"
    account_id: str = "123456789012"
    access_key_id: str = "testing"
    secret_access_key: str = "testing"

    @property
    def endpoint_url(self) -> str:
        """``http://<host>:<port>``, for both DynamoDB and DynamoDB Streams."""
        return f"http://{self.host}:{self.port}"

    def credentials_env(self) -> dict[str, str]:
        """The dummy credentials as ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``."""
        return {
            ACCESS_KEY_VARIABLE: self.access_key_id,
            SECRET_KEY_VARIABLE: self.secret_access_key,
        }

    def env(self) -> dict[str, str]:
        """The dummy credentials and ``AWS_REGION``."""
        return {**self.credentials_env(), REGION_VARIABLE: self.region}

    def child_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The environment of a process that talks to the stack: ``environ`` with the
        dummy credentials where it has none, and ``AWS_REGION`` set to the stack's."""
        return {**self.credentials_env(), **environ, REGION_VARIABLE: self.region}

    def setdefault_credentials(self, environ: MutableMapping[str, str]) -> None:
        """Put the dummy credentials into ``environ`` (``os.environ``) where none are set."""
        for name, value in self.credentials_env().items():
            environ.setdefault(name, value)

    def aws_settings(self, **options: Any) -> AwsSettings:
        """:class:`~shardline.aws.settings.AwsSettings` for the stack (region and
        endpoint); ``options`` are its other fields."""
        from shardline.aws.settings import AwsSettings  # pulls in the HTTP transport

        return AwsSettings(region=self.region, endpoint_url=self.endpoint_url, **options)


LOCAL = LocalStackSettings()
"""The defaults: ``shardline local``'s address, region, moto's account, dummy credentials."""
