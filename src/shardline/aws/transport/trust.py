"""Which certificate authorities https endpoints are verified with: botocore's choice."""

from __future__ import annotations

import os
import ssl

import botocore.httpsession

from shardline.errors import ConfigError

__all__ = ["ca_bundle_path", "tls_context"]


def ca_bundle_path(ca_bundle: str | None) -> str:
    """The CA file botocore verifies https endpoints with: ``AWS_CA_BUNDLE`` / the profile's
    ``ca_bundle`` (``ca_bundle``), else ``REQUESTS_CA_BUNDLE``, else certifi's bundle (or
    botocore's own when certifi is missing) -- ``botocore.endpoint`` and
    ``botocore.httpsession.get_cert_path`` decide the same way."""
    if ca_bundle:
        return ca_bundle
    return os.environ.get("REQUESTS_CA_BUNDLE") or botocore.httpsession.get_cert_path(True)


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """An SSL context that trusts what botocore trusts (:func:`ca_bundle_path`)."""
    path = ca_bundle_path(ca_bundle)
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the CA bundle {path!r}: {exc}") from exc
