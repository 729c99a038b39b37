"""The AWS credentials of a botocore session: refreshable when the source is."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import botocore.session

from shardline.errors import ConfigError, CredentialsError

__all__ = ["load_credentials"]


def load_credentials(session: botocore.session.Session) -> Any:
    """The session's credentials (refreshable when the source is); CredentialsError if none."""
    hint = "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role"
    try:
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"AWS profile not found: {exc}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise CredentialsError(f"cannot load AWS credentials: {exc}") from exc
    if frozen is None or not frozen.access_key or not frozen.secret_key:
        raise CredentialsError(f"no AWS credentials were found: {hint}")
    return credentials
