import { Match } from 'aws-cdk-lib/assertions';
import { THING_NAME_VARIABLE } from '../../infra/constructs/device-iot-policy';
import { iotArn, resource, roleStatements, type Synthesized, synthesize } from './support';

const BALENA_SECRET = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:balena-key-AbC123';
const TOKEN_SECRET = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:operator-XyZ789';

describe('provisioner stack using existing resources', () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synthesize({
      existingIotPolicyName: 'fleet-device-policy',
      balenaApiKeySecretArn: BALENA_SECRET,
      operatorTokenSecretArn: TOKEN_SECRET,
    });
  });

  it('creates no IoT policy and gives the worker the existing policy name', () => {
    s.template.resourceCountIs('AWS::IoT::Policy', 0);
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ IOT_POLICY_NAME: 'fleet-device-policy' }) },
    });
    s.template.hasOutput('IotPolicyName', { Value: 'fleet-device-policy' });
  });

  it('scopes ListTargetsForPolicy to the existing policy ARN', () => {
    const statements = roleStatements(s.json, 'WorkerRole').filter(
      (st) => st.Action === 'iot:ListTargetsForPolicy',
    );
    expect(statements.map((st) => st.Resource)).toEqual([iotArn('policy/fleet-device-policy')]);
  });

  it('creates no secret and grants reading exactly the given ones', () => {
    s.template.resourceCountIs('AWS::SecretsManager::Secret', 0);
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          BALENA_API_KEY_SECRET_ARN: BALENA_SECRET,
          OPERATOR_TOKEN_SECRET_ARN: TOKEN_SECRET,
        }),
      },
    });
    const read = roleStatements(s.json, 'ApiRole').find((st) =>
      ([] as string[]).concat(st.Action).includes('secretsmanager:GetSecretValue'),
    );
    expect(read?.Resource).toEqual([BALENA_SECRET, TOKEN_SECRET]);
  });
});

describe('provisioner stack with tuned configuration', () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synthesize({
      stackName: 'ProvisionerStaging',
      workerTimeoutSeconds: '120',
      workerBatchSize: '50',
      workerMaxBatchingWindowSeconds: '5',
      workerMaxConcurrency: '20',
      maxReceiveCount: '3',
      iotDataEndpoint: 'abc123-ats.iot.eu-west-1.amazonaws.com',
      legacyRouteEnabled: 'false',
      iotTopicPrefixes: 'balena,$aws/things',
      deviceKeyAlgorithm: 'rsa-2048',
      throttleRateLimit: '10',
      throttleBurstLimit: '20',
      logRetentionDays: '90',
      alarmEmail: 'ops@example.com',
      tracing: 'true',
      retainData: 'false',
    });
  });

  it('names the stack from the configuration', () => {
    expect(s.stack.stackName).toBe('ProvisionerStaging');
  });

  it('applies the worker timeout, batching and concurrency knobs', () => {
    expect(resource(s.json, 'AWS::Lambda::Function', 'WorkerFunction').props.Timeout).toBe(120);
    s.template.hasResourceProperties('AWS::SQS::Queue', {
      VisibilityTimeout: 6 * 120 + 5,
      RedrivePolicy: Match.objectLike({ maxReceiveCount: 3 }),
    });
    s.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 50,
      MaximumBatchingWindowInSeconds: 5,
      ScalingConfig: { MaximumConcurrency: 20 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          MAX_RECEIVE_COUNT: '3',
          DEVICE_KEY_ALGORITHM: 'rsa-2048',
          WORKER_MAX_CONCURRENCY: '20',
          IOT_DATA_ENDPOINT: 'abc123-ats.iot.eu-west-1.amazonaws.com',
        }),
      },
    });
  });

  it('drops the legacy routes and tells the API Lambda', () => {
    const routeKeys = Object.values(s.json.Resources)
      .filter((r) => r.Type === 'AWS::ApiGatewayV2::Route')
      .map((r) => r.Properties?.RouteKey);
    expect(routeKeys).not.toContain('POST /provision');
    expect(routeKeys).toContain('POST /v1/provision');
    s.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ LEGACY_ROUTE_ENABLED: 'false' }) },
    });
    expect(Object.keys(s.json.Outputs ?? {})).not.toContain('LegacyProvisionUrl');
  });

  it('grants the device topics under every configured prefix', () => {
    const thing = THING_NAME_VARIABLE;
    s.template.hasResourceProperties('AWS::IoT::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['iot:Publish', 'iot:Receive'],
            Resource: [iotArn(`topic/balena/${thing}/*`), iotArn(`topic/$aws/things/${thing}/*`)],
          }),
        ]),
      },
    });
  });

  it('throttles, traces and keeps logs as configured', () => {
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      DefaultRouteSettings: { ThrottlingRateLimit: 10, ThrottlingBurstLimit: 20 },
    });
    s.template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
    s.template.allResourcesProperties('AWS::Lambda::Function', {
      TracingConfig: { Mode: 'Active' },
    });
  });

  it('sends every alarm and its recovery to the email topic', () => {
    const topic = resource(s.json, 'AWS::SNS::Topic', 'AlarmsTopic');
    s.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      TopicArn: { Ref: topic.id },
    });
    s.template.allResourcesProperties('AWS::CloudWatch::Alarm', {
      AlarmActions: [{ Ref: topic.id }],
      OKActions: [{ Ref: topic.id }],
    });
    s.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('deletes the table, its logs and the IoT policy with the stack when data is not retained', () => {
    s.template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Delete',
      Properties: Match.objectLike({ DeletionProtectionEnabled: false }),
    });
    s.template.hasResource('AWS::IoT::Policy', { DeletionPolicy: 'Delete' });
    s.template.allResources('AWS::Logs::LogGroup', { DeletionPolicy: 'Delete' });
  });
});
