import path from 'node:path';
import {
  type CfnElement,
  CfnOutput,
  Duration,
  Stack,
  type StackProps,
  Validations,
} from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { ProvisionerConfig } from './config';
import { ProvisionerAlarms } from './constructs/alarms';
import { DeviceIotPolicy } from './constructs/device-iot-policy';
import { JobTable } from './constructs/job-table';
import { ProvisionerApi } from './constructs/provisioner-api';
import { ProvisionerFunction } from './constructs/provisioner-function';
import { ProvisionerSecrets } from './constructs/provisioner-secrets';
import { ProvisioningQueue } from './constructs/provisioning-queue';

const SRC = path.resolve(__dirname, '..', 'src');

/** The API Lambda answers within API Gateway's 30 s integration limit (long polls up to 25 s). */
export const API_TIMEOUT = Duration.seconds(29);
export const LEGACY_WAIT_SECONDS = 25;
/** Size budgets (bytes) of the minified `index.js`, reported at synth and enforced by test/infra. */
export const BUNDLE_BUDGETS = { api: 1_000_000, worker: 1_500_000 } as const;

export interface ProvisionerStackProps extends StackProps {
  readonly config: ProvisionerConfig;
  /** @default src/api/index.ts */
  readonly apiEntry?: string;
  /** @default src/worker/index.ts */
  readonly workerEntry?: string;
}

/**
 * The whole provisioning pipeline: HTTP API -> API Lambda -> DynamoDB + SQS -> worker Lambda ->
 * IoT Core and balena, with the DLQ, secrets, device IoT policy and alarms.
 */
export class ProvisionerStack extends Stack {
  readonly api: ProvisionerApi;
  readonly apiFunction: ProvisionerFunction;
  readonly workerFunction: ProvisionerFunction;
  readonly queue: ProvisioningQueue;
  readonly table: JobTable;
  readonly secrets: ProvisionerSecrets;
  readonly devicePolicy: DeviceIotPolicy;
  readonly alarms: ProvisionerAlarms;

  constructor(scope: Construct, id: string, props: ProvisionerStackProps) {
    super(scope, id, {
      description: 'balena devices provisioned with AWS IoT Core through a queue-backed pipeline',
      ...props,
    });
    const { config } = props;
    const logRetention = config.logRetentionDays as logs.RetentionDays;
    const workerTimeout = Duration.seconds(config.workerTimeoutSeconds);

    this.table = new JobTable(this, 'Jobs', { retain: config.retainData });
    this.queue = new ProvisioningQueue(this, 'Work', {
      visibilityTimeout: Duration.seconds(
        6 * config.workerTimeoutSeconds + config.workerMaxBatchingWindowSeconds,
      ),
      maxReceiveCount: config.maxReceiveCount,
    });
    this.secrets = new ProvisionerSecrets(this, 'Secrets', {
      balenaApiKeySecretArn: config.balenaApiKeySecretArn,
      operatorTokenSecretArn: config.operatorTokenSecretArn,
    });
    this.devicePolicy = new DeviceIotPolicy(this, 'DevicePolicy', {
      topicPrefixes: config.iotTopicPrefixes,
      existingPolicyName: config.existingIotPolicyName,
      retain: config.retainData,
    });

    const sharedEnvironment = {
      TABLE_NAME: this.table.table.tableName,
      QUEUE_URL: this.queue.queue.queueUrl,
      BALENA_API_URL: config.balenaApiUrl,
      BALENA_API_KEY_SECRET_ARN: this.secrets.balenaApiKey.secretArn,
      JOB_TTL_DAYS: String(config.jobTtlDays),
      POWERTOOLS_METRICS_NAMESPACE: config.metricsNamespace,
    };
    const functionDefaults = {
      bundleAwsSdk: config.bundleAwsSdk,
      logRetention,
      retainLogs: config.retainData,
      tracing: config.tracing,
    };

    this.apiFunction = new ProvisionerFunction(this, 'Api', {
      ...functionDefaults,
      name: 'api',
      entry: props.apiEntry ?? path.join(SRC, 'api', 'index.ts'),
      timeout: API_TIMEOUT,
      memorySize: config.apiMemoryMb,
      bundleBudgetBytes: BUNDLE_BUDGETS.api,
      environment: {
        ...sharedEnvironment,
        POWERTOOLS_SERVICE_NAME: 'provisioner-api',
        OPERATOR_TOKEN_SECRET_ARN: this.secrets.operatorToken.secretArn,
        LEGACY_ROUTE_ENABLED: String(config.legacyRouteEnabled),
        LEGACY_WAIT_SECONDS: String(LEGACY_WAIT_SECONDS),
      },
    });

    this.workerFunction = new ProvisionerFunction(this, 'Worker', {
      ...functionDefaults,
      name: 'worker',
      entry: props.workerEntry ?? path.join(SRC, 'worker', 'index.ts'),
      timeout: workerTimeout,
      memorySize: config.workerMemoryMb,
      bundleBudgetBytes: BUNDLE_BUDGETS.worker,
      environment: {
        ...sharedEnvironment,
        POWERTOOLS_SERVICE_NAME: 'provisioner-worker',
        IOT_POLICY_NAME: this.devicePolicy.policyName,
        MAX_RECEIVE_COUNT: String(config.maxReceiveCount),
        DEVICE_KEY_ALGORITHM: config.deviceKeyAlgorithm,
        // Worker instances share the account's IoT quotas by this many.
        WORKER_MAX_CONCURRENCY: String(config.workerMaxConcurrency),
        // A job's lease must outlive the invocation holding it, so a timed-out worker is gone
        // before another may take the job over (and stay below the visibility timeout).
        LEASE_SECONDS: String(config.workerTimeoutSeconds + 30),
        ...(config.iotDataEndpoint ? { IOT_DATA_ENDPOINT: config.iotDataEndpoint } : {}),
      },
    });
    this.workerFunction.function.addEventSource(
      new SqsEventSource(this.queue.queue, {
        batchSize: config.workerBatchSize,
        maxBatchingWindow:
          config.workerMaxBatchingWindowSeconds > 0
            ? Duration.seconds(config.workerMaxBatchingWindowSeconds)
            : undefined,
        maxConcurrency: config.workerMaxConcurrency,
        reportBatchItemFailures: true,
      }),
    );

    this.grantApi();
    this.grantWorker();

    this.api = new ProvisionerApi(this, 'Http', {
      handler: this.apiFunction.function,
      legacyRoutes: config.legacyRouteEnabled,
      throttleRateLimit: config.throttleRateLimit,
      throttleBurstLimit: config.throttleBurstLimit,
      logRetention,
      retainLogs: config.retainData,
    });

    this.alarms = new ProvisionerAlarms(this, 'Alarms', {
      queue: this.queue.queue,
      deadLetterQueue: this.queue.deadLetterQueue,
      worker: this.workerFunction.function,
      queueAgeThreshold: Duration.seconds(config.queueAgeAlarmSeconds),
      alarmEmail: config.alarmEmail,
    });

    this.addOutputs(config);
  }

  private grantApi(): void {
    const role = this.apiFunction.role;
    this.table.table.grantReadWriteData(role);
    this.queue.queue.grantSendMessages(role);
    this.secrets.balenaApiKey.grantRead(role);
    this.secrets.operatorToken.grantRead(role);
    this.acknowledgeTableIndexWildcard(this.apiFunction);
  }

  private grantWorker(): void {
    const role = this.workerFunction.role;
    this.table.table.grantReadWriteData(role);
    // grantConsumeMessages (added by the event source) includes ChangeMessageVisibility; send is
    // for re-enqueueing a job with a delay.
    this.queue.queue.grantConsumeMessages(role);
    this.queue.queue.grantSendMessages(role);
    this.secrets.balenaApiKey.grantRead(role);
    this.acknowledgeTableIndexWildcard(this.workerFunction);

    const iotArn = (resource: string, resourceName: string) =>
      this.formatArn({ service: 'iot', resource, resourceName });
    const anyThing = iotArn('thing', '*');
    const anyCert = iotArn('cert', '*');
    // Resource types per action: IAM Service Authorization Reference, "Actions, resources, and
    // condition keys for AWS IoT", and the IoT developer guide, "How AWS IoT works with IAM".
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'Things',
        actions: [
          'iot:DescribeThing',
          'iot:CreateThing',
          'iot:DeleteThing',
          'iot:ListThingPrincipals',
        ],
        resources: [anyThing],
      }),
    );
    // The reference lists the thing as the resource of (Attach|Detach)ThingPrincipal, the
    // developer guide the certificate: both are granted so either evaluation succeeds.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ThingPrincipals',
        actions: ['iot:AttachThingPrincipal', 'iot:DetachThingPrincipal'],
        resources: [anyThing, anyCert],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'Certificates',
        actions: [
          'iot:DescribeCertificate',
          'iot:UpdateCertificate',
          'iot:DeleteCertificate',
          // Retiring a certificate first detaches it from every thing it is attached to.
          'iot:ListPrincipalThings',
        ],
        resources: [anyCert],
      }),
    );
    // AttachPolicy/DetachPolicy are authorized against the target (certificate or thing group),
    // not the policy, and have no condition key naming the policy: the policy cannot be pinned
    // in IAM. The worker takes its name only from IOT_POLICY_NAME.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'CertificatePolicies',
        actions: ['iot:AttachPolicy', 'iot:DetachPolicy'],
        resources: [anyCert],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'DevicePolicyTargets',
        actions: ['iot:ListTargetsForPolicy'],
        resources: [this.devicePolicy.policyArn],
      }),
    );
    // Neither action supports resource-level permissions (the reference lists no resource type).
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'NoResourceLevelPermissions',
        actions: ['iot:CreateCertificateFromCsr', 'iot:ListCertificates'],
        resources: ['*'],
      }),
    );

    Validations.of(this.workerFunction.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:thing/*]`,
      reason:
        'Things are created at run time, one per balena device (thing name = device uuid): their names are not known at deploy time.',
    });
    Validations.of(this.workerFunction.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:cert/*]`,
      reason:
        'Certificates are issued at run time, one per device; their ids are not known at deploy time.',
    });
    Validations.of(this.workerFunction.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'iot:CreateCertificateFromCsr and iot:ListCertificates support no resource-level permissions (Service Authorization Reference for AWS IoT), so IAM accepts only * for them.',
    });
  }

  private acknowledgeTableIndexWildcard(fn: ProvisionerFunction): void {
    Validations.of(fn.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${this.getLogicalId(this.table.table.node.defaultChild as CfnElement)}.Arn>/index/*]`,
      reason:
        'grantReadWriteData covers the table indexes (gsi1) with <table>/index/*; the indexes belong to this table only.',
    });
  }

  private addOutputs(config: ProvisionerConfig): void {
    const url = this.api.url;
    new CfnOutput(this, 'ApiUrl', { value: url, description: 'Base URL of the HTTP API' });
    new CfnOutput(this, 'ProvisionUrl', {
      value: `${url}v1/provision`,
      description: 'PROVISION_URL for devices using the v1 API',
    });
    if (config.legacyRouteEnabled) {
      new CfnOutput(this, 'LegacyProvisionUrl', {
        value: `${url}provision`,
        description: 'PROVISION_URL for devices running the original cloud-relay client',
      });
    }
    new CfnOutput(this, 'QueueUrl', { value: this.queue.queue.queueUrl });
    new CfnOutput(this, 'DlqUrl', { value: this.queue.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'TableName', { value: this.table.table.tableName });
    new CfnOutput(this, 'BalenaApiKeySecretArn', { value: this.secrets.balenaApiKey.secretArn });
    new CfnOutput(this, 'OperatorTokenSecretArn', { value: this.secrets.operatorToken.secretArn });
    new CfnOutput(this, 'IotPolicyName', { value: this.devicePolicy.policyName });
    new CfnOutput(this, 'ApiFunctionName', { value: this.apiFunction.function.functionName });
    new CfnOutput(this, 'WorkerFunctionName', {
      value: this.workerFunction.function.functionName,
    });
  }
}
