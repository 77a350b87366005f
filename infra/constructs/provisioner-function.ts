import { type Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { bundledLambdaCode } from '../bundling/lambda-code';

export interface ProvisionerFunctionProps {
  /** Short name used in the size report and the description (`api`, `worker`). */
  readonly name: string;
  /** Absolute path of the TypeScript entry exporting `handler`. */
  readonly entry: string;
  readonly timeout: Duration;
  readonly memorySize: number;
  readonly environment: Readonly<Record<string, string>>;
  /** Size the minified bundle should stay under (reported at synth). */
  readonly bundleBudgetBytes: number;
  /** Bundle `@aws-sdk/*` instead of using the runtime's SDK v3. */
  readonly bundleAwsSdk: boolean;
  readonly logRetention: logs.RetentionDays;
  /** Keep the log group when the stack is deleted. */
  readonly retainLogs: boolean;
  /** Active X-Ray tracing. */
  readonly tracing: boolean;
}

/**
 * A Node.js 22 arm64 Lambda bundled by the local esbuild, with its own log group (retention set)
 * and a role that may write only to that log group: no AWS managed policy.
 */
export class ProvisionerFunction extends Construct {
  readonly function: lambda.Function;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ProvisionerFunctionProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention,
      removalPolicy: props.retainLogs ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of the provisioner ${props.name} Lambda`,
    });
    this.logGroup.grantWrite(this.role);

    this.function = new lambda.Function(this, 'Function', {
      description: `balena IoT provisioner ${props.name}`,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: bundledLambdaCode({
        name: props.name,
        entry: props.entry,
        budgetBytes: props.bundleBudgetBytes,
        bundleAwsSdk: props.bundleAwsSdk,
      }),
      timeout: props.timeout,
      memorySize: props.memorySize,
      role: this.role,
      logGroup: this.logGroup,
      tracing: props.tracing ? lambda.Tracing.ACTIVE : lambda.Tracing.DISABLED,
      environment: {
        ...props.environment,
        // The bundles ship external source maps (index.js.map).
        NODE_OPTIONS: '--enable-source-maps',
      },
    });
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Pinned to nodejs22.x, the runtime this project targets and tests: the bundles use the AWS SDK v3 that this runtime line ships. Moving to a newer Node.js runtime is a deliberate, tested upgrade (Lambda supports nodejs22.x until 2027).',
    });
    if (props.tracing) {
      Validations.of(this.role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions, so Lambda grants them on *.',
      });
    }
  }
}
