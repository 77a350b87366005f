import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { apiConfigSchema, parseConfig } from '../shared/config';
import { composeApi } from './compose';
import type { HttpResponse } from './http';

// Clients and the operator token are built once per cold start.
const ready = composeApi(parseConfig(apiConfigSchema));

export const handler = async (event: APIGatewayProxyEventV2): Promise<HttpResponse> =>
  (await ready)(event);
