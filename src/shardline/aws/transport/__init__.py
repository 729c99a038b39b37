"""The HTTP under :class:`~shardline.aws.client.AwsJsonClient`.

- :mod:`.http`: ``HttpPool``, the fast keep-alive HTTP/1.1 client for direct connections;
  :mod:`.http_wire`: its pure parts (URLs, heads, framing, content codings, the errors);
  :mod:`.connect`: happy eyeballs and TCP keepalive.
- :mod:`.proxy`: the ``Transport`` seam; ``proxy_for`` (botocore's proxy decision) and
  ``ProxyTransport`` (aiohttp's client through the proxy).
- :mod:`.trust`: the certificate authorities botocore would trust.
"""
