import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { THING_NAME_VARIABLE } from '../../infra/constructs/device-iot-policy';
import { createProvisionerApp } from '../../infra/provisioner-app';
import { apiConfigSchema, workerConfigSchema } from '../../src/shared/config';
import {
  actionsOf,
  cdkJsonContext,
  iotArn,
  type PolicyStatementJson,
  resource,
  roleStatements,
  SKIP_BUNDLING,
  type Synthesized,
  synthesize,
} from './support';

const THING = THING_NAME_VARIABLE;

describe('provisioner stack with the default configuration', () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synthesize();
  });

  describe('work queue and dead-letter queue', () => {
    it('moves a message to the DLQ after maxReceiveCount (default 5) receives', () => {
      const dlq = resource(s.json, 'AWS::SQS::Queue', 'WorkDeadLetterQueue');
      s.template.hasResourceProperties('AWS::SQS::Queue', {
        RedrivePolicy: {
          deadLetterTargetArn: { 'Fn::GetAtt': [dlq.id, 'Arn'] },
          maxReceiveCount: 5,
        },
      });
    });

    it('keeps dead letters for 14 days', () => {
      expect(resource(s.json, 'AWS::SQS::Queue', 'WorkDeadLetterQueue').props).toMatchObject({
        MessageRetentionPeriod: 14 * 24 * 3600,
        SqsManagedSseEnabled: true,
      });
    });

    it('sets the visibility timeout to at least six times the worker timeout', () => {
      const worker = resource(s.json, 'AWS::Lambda::Function', 'WorkerFunction');
      const queue = resource(s.json, 'AWS::SQS::Queue', 'WorkQueue');
      expect(worker.props.Timeout).toBe(60);
      expect(queue.props.VisibilityTimeout).toBeGreaterThanOrEqual(6 * 60);
    });

    it.each(['WorkQueue', 'WorkDeadLetterQueue'])(
      'denies every non-TLS request to %s',
      (prefix) => {
        const queue = resource(s.json, 'AWS::SQS::Queue', prefix);
        s.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
          Queues: [{ Ref: queue.id }],
          PolicyDocument: {
            Statement: Match.arrayWith([
              Match.objectLike({
                Effect: 'Deny',
                Action: 'sqs:*',
                Principal: { AWS: '*' },
                Condition: { Bool: { 'aws:SecureTransport': 'false' } },
              }),
            ]),
          },
        });
      },
    );
  });

  describe('worker event source', () => {
    it('reports partial batch failures with the configured batch size and concurrency', () => {
      const queue = resource(s.json, 'AWS::SQS::Queue', 'WorkQueue');
      s.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        EventSourceArn: { 'Fn::GetAtt': [queue.id, 'Arn'] },
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        BatchSize: 10,
        MaximumBatchingWindowInSeconds: Match.absent(),
        ScalingConfig: { MaximumConcurrency: 5 },
      });
    });
  });

  describe('job table', () => {
    it('is on demand with PITR, TTL on expiresAt and the gsi1 index', () => {
      s.template.hasResourceProperties('AWS::DynamoDB::Table', {
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: 'gsi1',
            KeySchema: [
              { AttributeName: 'gsi1pk', KeyType: 'HASH' },
              { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
        DeletionProtectionEnabled: true,
      });
    });

    it('is retained when the stack is deleted', () => {
      s.template.hasResource('AWS::DynamoDB::Table', {
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
      });
    });
  });

  describe('secrets', () => {
    it('creates the balena API key placeholder and a generated operator token', () => {
      s.template.resourceCountIs('AWS::SecretsManager::Secret', 2);
      s.template.hasResourceProperties('AWS::SecretsManager::Secret', {
        Description: Match.stringLikeRegexp('balena API key'),
        GenerateSecretString: Match.objectLike({ ExcludePunctuation: true }),
      });
      s.template.hasResourceProperties('AWS::SecretsManager::Secret', {
        Description: Match.stringLikeRegexp('Bearer token'),
        GenerateSecretString: { ExcludePunctuation: true, PasswordLength: 48 },
      });
    });

    it('passes secret ARNs to the Lambdas, never secret values', () => {
      const balena = resource(s.json, 'AWS::SecretsManager::Secret', 'SecretsBalenaApiKey');
      const token = resource(s.json, 'AWS::SecretsManager::Secret', 'SecretsOperatorToken');
      s.template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: {
          Variables: Match.objectLike({
            BALENA_API_KEY_SECRET_ARN: { Ref: balena.id },
            OPERATOR_TOKEN_SECRET_ARN: { Ref: token.id },
          }),
        },
      });
      for (const fn of ['ApiFunction', 'WorkerFunction']) {
        const vars = (
          resource(s.json, 'AWS::Lambda::Function', fn).props.Environment as {
            Variables: Record<string, unknown>;
          }
        ).Variables;
        expect(Object.keys(vars)).not.toContain('BALENA_API_KEY');
        expect(Object.keys(vars)).not.toContain('OPERATOR_TOKEN');
      }
    });
  });

  describe('device IoT policy', () => {
    it('lets a device connect only as its own thing name, with its certificate attached', () => {
      s.template.hasResourceProperties('AWS::IoT::Policy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            {
              Effect: 'Allow',
              Action: 'iot:Connect',
              Resource: iotArn(`client/${THING}`),
              Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
            },
          ]),
        },
      });
    });

    it('limits publish, receive and subscribe to the device topics under the prefix', () => {
      s.template.hasResourceProperties('AWS::IoT::Policy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            {
              Effect: 'Allow',
              Action: ['iot:Publish', 'iot:Receive'],
              Resource: [iotArn(`topic/balena/${THING}/*`)],
            },
            {
              Effect: 'Allow',
              Action: 'iot:Subscribe',
              Resource: [iotArn(`topicfilter/balena/${THING}/*`)],
            },
          ]),
        },
      });
      const doc = JSON.stringify(resource(s.json, 'AWS::IoT::Policy', 'DevicePolicy').props);
      expect(doc).not.toMatch(/"iot:\*"|"Resource":"\*"/);
    });

    it('gives the worker the created policy name', () => {
      const policy = resource(s.json, 'AWS::IoT::Policy', 'DevicePolicy');
      s.template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: { Variables: Match.objectLike({ IOT_POLICY_NAME: { Ref: policy.id } }) },
      });
    });
  });

  describe('IAM', () => {
    let worker: PolicyStatementJson[];
    let api: PolicyStatementJson[];
    beforeAll(() => {
      worker = roleStatements(s.json, 'WorkerRole');
      api = roleStatements(s.json, 'ApiRole');
    });
    const iotStatements = (statements: PolicyStatementJson[]) =>
      statements.filter((st) => actionsOf(st).some((a) => a.startsWith('iot:')));
    const resourcesFor = (statements: PolicyStatementJson[], action: string): unknown[] =>
      statements
        .filter((st) => actionsOf(st).includes(action))
        .flatMap((st) => (Array.isArray(st.Resource) ? st.Resource : [st.Resource]));

    it('scopes the worker IoT actions to things, certificates and the device policy', () => {
      const thing = iotArn('thing/*');
      const cert = iotArn('cert/*');
      const policy = resource(s.json, 'AWS::IoT::Policy', 'DevicePolicy');
      for (const action of ['DescribeThing', 'CreateThing', 'DeleteThing', 'ListThingPrincipals']) {
        expect(resourcesFor(worker, `iot:${action}`)).toEqual([thing]);
      }
      for (const action of ['AttachThingPrincipal', 'DetachThingPrincipal']) {
        expect(resourcesFor(worker, `iot:${action}`)).toEqual(
          expect.arrayContaining([thing, cert]),
        );
      }
      for (const action of [
        'DescribeCertificate',
        'UpdateCertificate',
        'DeleteCertificate',
        'ListPrincipalThings',
      ]) {
        expect(resourcesFor(worker, `iot:${action}`)).toEqual([cert]);
      }
      for (const action of ['AttachPolicy', 'DetachPolicy']) {
        expect(resourcesFor(worker, `iot:${action}`)).toEqual([cert]);
      }
      expect(resourcesFor(worker, 'iot:ListTargetsForPolicy')).toEqual([
        { 'Fn::GetAtt': [policy.id, 'Arn'] },
      ]);
    });

    it('grants the worker every IoT operation the IoT registry adapter calls', () => {
      const adapter = readFileSync(
        path.join(__dirname, '..', '..', 'src', 'shared', 'iot-registry.ts'),
        'utf8',
      );
      const called = [...adapter.matchAll(/new (\w+)Command\(/g)].map((m) => `iot:${m[1]}`);
      expect(called.length).toBeGreaterThan(5);
      const granted = worker.flatMap(actionsOf);
      expect(called.filter((action) => !granted.includes(action))).toEqual([]);
    });

    it('grants "*" only to the IoT actions without resource-level permissions', () => {
      const star = iotStatements(worker).filter((st) => JSON.stringify(st.Resource) === '"*"');
      expect(star.flatMap(actionsOf).sort()).toEqual([
        'iot:CreateCertificateFromCsr',
        'iot:ListCertificates',
      ]);
      expect(worker.flatMap(actionsOf).filter((a) => a.includes('*'))).toEqual([]);
    });

    it('gives the API no IoT permissions', () => {
      expect(iotStatements(api)).toEqual([]);
    });

    it('lets the API read and write jobs, send messages and read both secrets', () => {
      const actions = api.flatMap(actionsOf);
      expect(actions).toEqual(
        expect.arrayContaining([
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:Query',
          'sqs:SendMessage',
          'secretsmanager:GetSecretValue',
        ]),
      );
      expect(actions).not.toContain('sqs:ReceiveMessage');
      expect(resourcesFor(api, 'secretsmanager:GetSecretValue')).toHaveLength(2);
    });

    it('lets the worker consume, change visibility and re-enqueue, read only the balena key', () => {
      const queue = resource(s.json, 'AWS::SQS::Queue', 'WorkQueue');
      const balena = resource(s.json, 'AWS::SecretsManager::Secret', 'SecretsBalenaApiKey');
      for (const action of [
        'ReceiveMessage',
        'DeleteMessage',
        'ChangeMessageVisibility',
        'SendMessage',
      ]) {
        expect(resourcesFor(worker, `sqs:${action}`)).toEqual([
          { 'Fn::GetAtt': [queue.id, 'Arn'] },
        ]);
      }
      expect(resourcesFor(worker, 'secretsmanager:GetSecretValue')).toEqual([{ Ref: balena.id }]);
    });

    it('gives neither Lambda access to the dead-letter queue', () => {
      const dlq = resource(s.json, 'AWS::SQS::Queue', 'WorkDeadLetterQueue');
      expect(JSON.stringify([...api, ...worker])).not.toContain(dlq.id);
    });

    it('uses no AWS managed policy: each role writes only to its own log group', () => {
      s.template.allResourcesProperties('AWS::IAM::Role', {
        ManagedPolicyArns: Match.absent(),
      });
      for (const [role, logGroup] of [
        ['WorkerRole', 'WorkerLogGroup'],
        ['ApiRole', 'ApiLogGroup'],
      ] as const) {
        const group = resource(s.json, 'AWS::Logs::LogGroup', logGroup);
        expect(resourcesFor(roleStatements(s.json, role), 'logs:PutLogEvents')).toEqual([
          { 'Fn::GetAtt': [group.id, 'Arn'] },
        ]);
      }
    });
  });

  describe('Lambdas', () => {
    it.each(['ApiFunction', 'WorkerFunction'])('runs %s on Node.js 22, arm64', (fn) => {
      expect(resource(s.json, 'AWS::Lambda::Function', fn).props).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        Handler: 'index.handler',
        Environment: {
          Variables: expect.objectContaining({ NODE_OPTIONS: '--enable-source-maps' }),
        },
      });
    });

    it('gives the API 29 s to answer, inside the 30 s API Gateway limit', () => {
      expect(resource(s.json, 'AWS::Lambda::Function', 'ApiFunction').props.Timeout).toBe(29);
    });

    it('keeps Lambda and access logs for a month', () => {
      s.template.resourceCountIs('AWS::Logs::LogGroup', 3);
      s.template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    });

    // The application parses its environment with these schemas at cold start.
    it.each([
      ['ApiFunction', apiConfigSchema],
      ['WorkerFunction', workerConfigSchema],
    ] as const)('sets an environment that %s accepts', (fn, schema) => {
      const vars = (
        resource(s.json, 'AWS::Lambda::Function', fn).props.Environment as {
          Variables: Record<string, unknown>;
        }
      ).Variables;
      const resolved = Object.fromEntries(
        Object.entries(vars).map(([k, v]) => [k, typeof v === 'string' ? v : `deploy-time-${k}`]),
      );
      const parsed = schema.safeParse({ ...resolved, AWS_REGION: 'eu-west-1' });
      expect(parsed.error?.issues ?? []).toEqual([]);
    });

    it('configures the API Lambda as the contract says', () => {
      s.template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: {
          Variables: Match.objectLike({
            BALENA_API_URL: 'https://api.balena-cloud.com',
            JOB_TTL_DAYS: '30',
            POWERTOOLS_SERVICE_NAME: 'provisioner-api',
            POWERTOOLS_METRICS_NAMESPACE: 'BalenaIotProvisioner',
            LEGACY_ROUTE_ENABLED: 'true',
            LEGACY_WAIT_SECONDS: '25',
          }),
        },
      });
    });

    it('configures the worker Lambda as the contract says', () => {
      s.template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: {
          Variables: Match.objectLike({
            POWERTOOLS_SERVICE_NAME: 'provisioner-worker',
            MAX_RECEIVE_COUNT: '5',
            DEVICE_KEY_ALGORITHM: 'ec-p256',
            WORKER_MAX_CONCURRENCY: '5',
            IOT_DATA_ENDPOINT: Match.absent(),
          }),
        },
      });
    });
  });

  describe('HTTP API', () => {
    it('routes the v1 API, the legacy route and $default to the API Lambda', () => {
      const routeKeys = Object.values(s.json.Resources)
        .filter((r) => r.Type === 'AWS::ApiGatewayV2::Route')
        .map((r) => r.Properties?.RouteKey)
        .sort();
      expect(routeKeys).toEqual(
        [
          '$default',
          'DELETE /provision',
          'DELETE /v1/devices/{uuid}',
          'GET /v1/devices/{uuid}',
          'GET /v1/jobs/{jobId}',
          'POST /provision',
          'POST /v1/provision',
        ].sort(),
      );
      const fn = resource(s.json, 'AWS::Lambda::Function', 'ApiFunction');
      s.template.resourceCountIs('AWS::ApiGatewayV2::Integration', 1);
      s.template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
        IntegrationType: 'AWS_PROXY',
        IntegrationUri: { 'Fn::GetAtt': [fn.id, 'Arn'] },
        PayloadFormatVersion: '2.0',
      });
    });

    it('has no API Gateway authorizer: the Lambda authenticates', () => {
      s.template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 0);
    });

    it('throttles the stage and writes JSON access logs', () => {
      s.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
        StageName: '$default',
        AutoDeploy: true,
        DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
        AccessLogSettings: {
          DestinationArn: Match.anyValue(),
          Format: Match.stringLikeRegexp('\\$context\\.requestId'),
        },
      });
    });
  });

  describe('alarms', () => {
    it('creates the three alarms and, without an email, no topic', () => {
      s.template.resourceCountIs('AWS::CloudWatch::Alarm', 3);
      s.template.resourceCountIs('AWS::SNS::Topic', 0);
    });

    it('alarms as soon as one message is in the dead-letter queue', () => {
      const dlq = resource(s.json, 'AWS::SQS::Queue', 'WorkDeadLetterQueue');
      s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlq.id, 'QueueName'] } }],
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
    });

    it('alarms when the oldest work message is older than 15 minutes', () => {
      const queue = resource(s.json, 'AWS::SQS::Queue', 'WorkQueue');
      s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'ApproximateAgeOfOldestMessage',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue.id, 'QueueName'] } }],
        Threshold: 900,
      });
    });

    it('alarms on worker invocation errors', () => {
      const worker = resource(s.json, 'AWS::Lambda::Function', 'WorkerFunction');
      s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: worker.id } }],
        Statistic: 'Sum',
        Threshold: 1,
      });
    });
  });

  it('outputs what the CLI and the operator read', () => {
    for (const name of ['ApiUrl', 'QueueUrl', 'DlqUrl', 'TableName']) {
      s.template.hasOutput(name, { Value: Match.anyValue() });
    }
    s.template.hasOutput('LegacyProvisionUrl', {
      Value: { 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('/provision$')])] },
    });
    s.template.hasOutput('IotPolicyName', Match.anyValue());
  });

  it('is environment agnostic: no account id or region in the template', () => {
    expect(JSON.stringify(s.json)).not.toMatch(/\d{12}|(eu|us|ap|sa|ca|me|af)-[a-z]+-\d/);
  });

  describe('cdk-nag AwsSolutions', () => {
    it('reports no unacknowledged finding and no error annotation', () => {
      const report = JSON.parse(
        readFileSync(path.join(s.assembly.directory, 'validation-report.json'), 'utf8'),
      ) as { pluginReports: Array<{ pluginName: string; conclusion: string }> };
      expect(report.pluginReports.filter((r) => r.conclusion !== 'success')).toEqual([]);
      const errors = s.assembly
        .getStackByName(s.stack.stackName)
        .messages.filter((m) => m.level === 'error');
      expect(errors).toEqual([]);
    });

    it('fails synthesis when a resource breaks an AwsSolutions rule', () => {
      const { app, stack } = createProvisionerApp({
        context: { ...cdkJsonContext(), ...SKIP_BUNDLING },
      });
      new sqs.Queue(stack, 'PlainTextQueue', {
        deadLetterQueue: stack.queue.queue.deadLetterQueue,
      });
      expect(() => app.synth()).toThrow(/AwsSolutions-SQS4/);
    });

    it('acknowledges only the reviewed findings, each with a reason', () => {
      const acknowledged = s.stack.node.findAll().flatMap((c) =>
        c.node.metadata
          .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
          .flatMap((m) => Object.entries(m.data as Record<string, string>))
          .map(([id, reason]) => ({ path: c.node.path, id, reason })),
      );
      for (const { reason } of acknowledged) expect(reason.length).toBeGreaterThan(60);
      expect([...new Set(acknowledged.map((a) => a.id.replace(/^\w+::/, '')))].sort()).toEqual(
        [
          'AwsSolutions-APIG4',
          'AwsSolutions-IAM5[Resource::*]',
          'AwsSolutions-IAM5[Resource::<JobsTable10C8EDF6.Arn>/index/*]',
          'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:cert/*]',
          'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:thing/*]',
          'AwsSolutions-L1',
          'AwsSolutions-SMG4',
          'AwsSolutions-SQS3',
        ].sort(),
      );
    });
  });
});
