import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { loadProvisionerConfig, parseProvisionerConfig } from '../../infra/config';

const fromContext = (context: Record<string, unknown>) =>
  loadProvisionerConfig(new App({ context }).node);

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:balena-key-AbC123';

describe('provisioner configuration', () => {
  it('defaults every key when nothing is configured', () => {
    expect(fromContext({})).toEqual({
      stackName: 'BalenaIotProvisioner',
      balenaApiUrl: 'https://api.balena-cloud.com',
      iotTopicPrefixes: ['balena'],
      legacyRouteEnabled: true,
      deviceKeyAlgorithm: 'ec-p256',
      jobTtlDays: 30,
      workerTimeoutSeconds: 60,
      workerMemoryMb: 1024,
      apiMemoryMb: 512,
      workerBatchSize: 10,
      workerMaxBatchingWindowSeconds: 0,
      workerMaxConcurrency: 5,
      maxReceiveCount: 5,
      throttleRateLimit: 50,
      throttleBurstLimit: 100,
      logRetentionDays: 30,
      queueAgeAlarmSeconds: 900,
      tracing: false,
      retainData: true,
      metricsNamespace: 'BalenaIotProvisioner',
      bundleAwsSdk: false,
    });
  });

  it('reads `-c key=value` strings as numbers, booleans and lists', () => {
    const config = fromContext({
      workerMaxConcurrency: '20',
      legacyRouteEnabled: 'false',
      iotTopicPrefixes: 'balena, $aws/things',
      balenaApiKeySecretArn: SECRET_ARN,
      alarmEmail: 'ops@example.com',
    });
    expect(config).toMatchObject({
      workerMaxConcurrency: 20,
      legacyRouteEnabled: false,
      iotTopicPrefixes: ['balena', '$aws/things'],
      balenaApiKeySecretArn: SECRET_ARN,
      alarmEmail: 'ops@example.com',
    });
  });

  it('treats an empty `-c key=` as unset', () => {
    expect(fromContext({ alarmEmail: '', existingIotPolicyName: '' })).toMatchObject({
      alarmEmail: undefined,
      existingIotPolicyName: undefined,
    });
  });

  it('reads a JSON config file, overridden key by key by context', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'provisioner-config-'));
    const file = path.join(dir, 'prod.json');
    writeFileSync(file, JSON.stringify({ workerMaxConcurrency: 8, maxReceiveCount: 3 }));
    expect(fromContext({ configFile: file, maxReceiveCount: '7' })).toMatchObject({
      workerMaxConcurrency: 8,
      maxReceiveCount: 7,
    });
  });

  it('rejects an unknown key in a config file', () => {
    expect(() => parseProvisionerConfig({ workerConcurrency: 8 })).toThrow(/workerConcurrency/);
  });

  it.each([
    [{ workerBatchSize: 50 }, /workerMaxBatchingWindowSeconds/],
    [{ workerMaxConcurrency: 1 }, /workerMaxConcurrency/],
    [
      { balenaApiKeySecretArn: 'arn:aws:secretsmanager:eu-west-1:1:secret:x' },
      /complete secret ARN/,
    ],
    [{ iotTopicPrefixes: 'devices/#' }, /iotTopicPrefixes/],
    [{ logRetentionDays: 31 }, /logRetentionDays/],
    [{ balenaApiUrl: 'http://api.example.com' }, /balenaApiUrl/],
    [{ legacyRouteEnabled: 'yes' }, /legacyRouteEnabled/],
    [{ throttleRateLimit: 200 }, /throttleBurstLimit/],
    [{ iotDataEndpoint: 'https://abc-ats.iot.eu-west-1.amazonaws.com' }, /iotDataEndpoint/],
  ])('rejects %j naming the key', (input, message) => {
    expect(() => parseProvisionerConfig(input)).toThrow(message);
  });
});
