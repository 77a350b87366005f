import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';

/**
 * Shared Powertools logger (level from POWERTOOLS_LOG_LEVEL, default INFO); entries append
 * correlation keys per request and remove them after.
 */
export const logger = new Logger({
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'balena-iot-provisioner',
});

/** Shared Powertools metrics (EMF); the worker publishes them once per batch. */
export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'BalenaIotProvisioner',
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'balena-iot-provisioner',
});
