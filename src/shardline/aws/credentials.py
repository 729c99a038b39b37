"""The AWS credentials of a botocore session: refreshable when the source is.

Credentials read here are added to :data:`shardline.redact.SECRETS` (never printed).
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import botocore.session

from shardline.errors import ConfigError, CredentialsError
from shardline.redact import SECRETS

__all__ = ["load_credentials", "remember_credentials"]


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
    remember_credentials(frozen)
    return credentials


def remember_credentials(frozen: Any) -> None:
    """Add frozen credentials (key id, secret key, session token) to the masked secrets."""
    SECRETS.add(frozen.access_key, frozen.secret_key, frozen.token)
