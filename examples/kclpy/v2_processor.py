"""An amazon-kclpy processor in the v2 style, for ``shardline multilang``.

Unchanged from a Kinesis processor: ``record.binary_data`` is the JSON of the DynamoDB
stream record (``eventName``, ``dynamodb.Keys``, ``dynamodb.NewImage``...;
``ApproximateCreationDateTime`` in epoch milliseconds). Log to stderr: stdout carries
the protocol.
"""

import json
import sys

from amazon_kclpy import kcl
from amazon_kclpy.v2 import processor


class ChangePrinter(processor.RecordProcessorBase):
    def initialize(self, initialize_input):
        self.shard_id = initialize_input.shard_id

    def process_records(self, process_records_input):
        records = process_records_input.records
        for record in records:
            change = json.loads(record.binary_data)
            ddb = change["dynamodb"]
            image = ddb.get("NewImage") or ddb.get("OldImage") or {}
            version = image.get("version", {}).get("N", "-")
            fields = [
                "record",
                record.sequence_number,
                change["eventName"],
                ddb["Keys"]["pk"]["S"],
                version,
                str(ddb["ApproximateCreationDateTime"]),
            ]
            sys.stderr.write(" ".join(fields) + "\n")
        if records:
            last = records[-1]
            process_records_input.checkpointer.checkpoint(
                last.sequence_number, last.sub_sequence_number
            )

    def shutdown(self, shutdown_input):
        if shutdown_input.reason == "TERMINATE":  # the shard ended: checkpoint SHARD_END
            shutdown_input.checkpointer.checkpoint()

    def shutdown_requested(self, shutdown_requested_input):
        shutdown_requested_input.checkpointer.checkpoint()


if __name__ == "__main__":
    kcl.KCLProcess(ChangePrinter()).run()
