import type { SQSRecord } from 'aws-lambda';

/** An SQS record as Lambda's event source mapping hands it to the worker. */
export function sqsRecord(
  messageId: string,
  body: string,
  receiptHandle = `handle-${messageId}`,
): SQSRecord {
  return {
    messageId,
    receiptHandle,
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: '0',
      SenderId: 'test',
      ApproximateFirstReceiveTimestamp: '0',
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:work',
    awsRegion: 'us-east-1',
  };
}
