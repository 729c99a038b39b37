/*
 * A DynamoDB Streams consumer for `shardline multilang`, written with the npm aws-kcl
 * package exactly as its README shows (the processor is unchanged from a Kinesis one).
 *
 *   npm install aws-kcl
 *   shardline multilang --properties consumer.properties
 *
 * Each record's `data` is the JSON of the stream record (eventName, dynamodb.Keys,
 * dynamodb.NewImage, ...; ApproximateCreationDateTime in epoch milliseconds).
 * Write logs to stderr: stdout carries the protocol.
 */
'use strict';

var kcl = require('aws-kcl');

function log(message) {
  process.stderr.write(message + '\n');
}

var recordProcessor = {
  initialize: function(initializeInput, completeCallback) {
    this.shardId = initializeInput.shardId;
    log('initialize ' + this.shardId + ' at ' + initializeInput.sequenceNumber);
    completeCallback();
  },

  processRecords: function(processRecordsInput, completeCallback) {
    if (!processRecordsInput || !processRecordsInput.records) {
      completeCallback();
      return;
    }
    var records = processRecordsInput.records;
    var sequenceNumber;
    for (var i = 0; i < records.length; ++i) {
      var record = records[i];
      sequenceNumber = record.sequenceNumber;
      var change = JSON.parse(Buffer.from(record.data, 'base64').toString());
      var image = change.dynamodb.NewImage || change.dynamodb.OldImage || {};
      log(['record', sequenceNumber, change.eventName,
           change.dynamodb.Keys.pk.S, image.version ? image.version.N : '-',
           change.dynamodb.ApproximateCreationDateTime].join(' '));
    }
    if (!sequenceNumber) {
      completeCallback();
      return;
    }
    // Checkpoint after the batch is handled; complete only once the checkpoint answered.
    processRecordsInput.checkpointer.checkpoint(sequenceNumber, function(err) {
      if (err) {
        log('checkpoint failed: ' + err);
      }
      completeCallback();
    });
  },

  leaseLost: function(leaseLostInput, completeCallback) {
    log('lease lost ' + this.shardId);
    completeCallback();
  },

  shardEnded: function(shardEndedInput, completeCallback) {
    // Required: checkpoint SHARD_END so the shard's children can start.
    shardEndedInput.checkpointer.checkpoint(function(err) {
      if (err) {
        log('shard end checkpoint failed: ' + err);
      }
      completeCallback();
    });
  },

  shutdownRequested: function(shutdownRequestedInput, completeCallback) {
    shutdownRequestedInput.checkpointer.checkpoint(function(err) {
      completeCallback();
    });
  }
};

kcl(recordProcessor).run();
