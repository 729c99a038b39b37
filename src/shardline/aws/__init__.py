"""AWS plumbing shared by the lease table, the stream, the sinks and the local stack.

- :mod:`.settings`: :class:`~.settings.AwsSettings`, how to reach AWS;
  :mod:`.deadlines`: per-operation deadlines of the calls.
- :mod:`.protocol`: the AWS JSON 1.0 constants (content type, targets, signing name).
- :mod:`.errors`: AWS error codes onto :mod:`shardline.errors` (the only place).
- :mod:`.endpoints`: region and endpoint resolution, as botocore resolves them;
  :mod:`.credentials`: the credential chain.
- :mod:`.signing`: SigV4 signing of one request.
- :mod:`.backoff`: the retry delays; :mod:`.parsing`: JSON answers.
- :mod:`.client`: :class:`~.client.AwsJsonClient`, the signed client with its retries.
- :mod:`.transport`: the keep-alive HTTP/1.1 client and the proxy seam under it.

Nothing is re-exported here: import from the module that owns a name.
"""
