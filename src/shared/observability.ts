import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';

/** Shared Powertools logger; entries append correlation keys per request and remove them after. */
export const logger = new Logger({
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'balena-iot-provisioner',
  logLevel: (process.env.LOG_LEVEL as 'INFO' | undefined) ?? 'INFO',
  // Powertools serializes an error's own properties and its cause; keep requests out of logs.
});

export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'BalenaIotProvisioner',
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'balena-iot-provisioner',
});
