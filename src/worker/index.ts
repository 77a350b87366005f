import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { parseConfig, workerConfigSchema } from '../shared/config';
import { composeWorker } from './compose';

// Clients and the balena key are built once per cold start.
const ready = composeWorker(parseConfig(workerConfigSchema));

export const handler = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> =>
  (await ready)(event, context);
