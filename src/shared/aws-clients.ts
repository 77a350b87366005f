import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/** The AWS clients every entry point uses, built once per process. */
export interface AwsClients {
  readonly iot: IoTClient;
  readonly sqs: SQSClient;
  readonly dynamodb: DynamoDBClient;
  readonly doc: DynamoDBDocumentClient;
}

export interface AwsClientOptions {
  readonly region: string;
  /** An emulator endpoint (moto); when set, dummy credentials are used. */
  readonly endpoint?: string;
  /** SDK attempts per call; the worker keeps 1-3 and lets SQS do the long retries. */
  readonly maxAttempts?: number;
  /** Per-service endpoint override, e.g. a throttling proxy in front of moto for IoT. */
  readonly iotEndpoint?: string;
}

/** Dummy credentials for emulators: moto routes by the SigV4 scope, so any pair works. */
export const EMULATOR_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' };

export function makeAwsClients(options: AwsClientOptions): AwsClients {
  const base = {
    region: options.region,
    maxAttempts: options.maxAttempts ?? 3,
    ...(options.endpoint ? { endpoint: options.endpoint, credentials: EMULATOR_CREDENTIALS } : {}),
  };
  const dynamodb = new DynamoDBClient(base);
  return {
    iot: new IoTClient(options.iotEndpoint ? { ...base, endpoint: options.iotEndpoint } : base),
    sqs: new SQSClient(base),
    dynamodb,
    doc: DynamoDBDocumentClient.from(dynamodb, {
      marshallOptions: { removeUndefinedValues: true },
    }),
  };
}
