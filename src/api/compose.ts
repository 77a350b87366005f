import { makeAwsClients } from '../shared/aws-clients';
import type { ApiConfig } from '../shared/config';
import { DynamoDbJobStore } from '../shared/job-store';
import { SqsWorkQueue } from '../shared/queue';
import { resolveSecret } from '../shared/secrets';
import { Authenticator, BalenaKeyVerifier } from './auth';
import { makeHandler } from './handler';
import { ProvisioningService } from './service';

/** Builds the API handler from its configuration: the composition root, shared by Lambda and the local stack. */
export async function composeApi(config: ApiConfig) {
  const aws = makeAwsClients({ region: config.AWS_REGION, endpoint: config.AWS_ENDPOINT_URL });
  const operatorToken =
    config.OPERATOR_TOKEN || config.OPERATOR_TOKEN_SECRET_ARN
      ? await resolveSecret(
          'OPERATOR_TOKEN',
          config.OPERATOR_TOKEN,
          config.OPERATOR_TOKEN_SECRET_ARN,
          { region: config.AWS_REGION, endpoint: config.AWS_ENDPOINT_URL },
        )
      : undefined;
  return makeHandler({
    service: new ProvisioningService({
      store: new DynamoDbJobStore(aws.doc, config.TABLE_NAME, { ttlDays: config.JOB_TTL_DAYS }),
      queue: new SqsWorkQueue(aws.sqs, config.QUEUE_URL),
    }),
    auth: new Authenticator({
      operatorToken,
      verifier: new BalenaKeyVerifier(config.BALENA_API_URL),
      cacheSeconds: config.AUTH_CACHE_SECONDS,
    }),
    legacyEnabled: config.LEGACY_ROUTE_ENABLED,
    legacyWaitSeconds: config.LEGACY_WAIT_SECONDS,
  });
}
