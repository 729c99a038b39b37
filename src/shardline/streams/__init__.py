"""DynamoDB Streams access: the signed HTTP client and the pure shard-graph rules."""
