import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** The routes of the HTTP API, every one proxied to the API Lambda (payload format 2.0). */
export const API_ROUTES: ReadonlyArray<{ method: apigwv2.HttpMethod; path: string }> = [
  { method: apigwv2.HttpMethod.POST, path: '/v1/provision' },
  { method: apigwv2.HttpMethod.GET, path: '/v1/jobs/{jobId}' },
  { method: apigwv2.HttpMethod.GET, path: '/v1/devices/{uuid}' },
  { method: apigwv2.HttpMethod.DELETE, path: '/v1/devices/{uuid}' },
];

/** The original service's route, kept for devices in the field. */
export const LEGACY_ROUTES: ReadonlyArray<{ method: apigwv2.HttpMethod; path: string }> = [
  { method: apigwv2.HttpMethod.POST, path: '/provision' },
  { method: apigwv2.HttpMethod.DELETE, path: '/provision' },
];

export interface ProvisionerApiProps {
  readonly handler: lambda.IFunction;
  /** Add the legacy `/provision` routes. */
  readonly legacyRoutes: boolean;
  /** Stage throttling: steady-state requests per second. */
  readonly throttleRateLimit: number;
  /** Stage throttling: burst capacity. */
  readonly throttleBurstLimit: number;
  readonly logRetention: logs.RetentionDays;
  readonly retainLogs: boolean;
}

/**
 * HTTP API with the v1 and legacy routes and a `$default` catch-all (so unknown routes get the
 * application's problem+json 404), one throttled `$default` stage with JSON access logs.
 * Callers are authenticated by the Lambda (bearer tokens), not by an API Gateway authorizer.
 */
export class ProvisionerApi extends Construct {
  readonly httpApi: apigwv2.HttpApi;
  readonly stage: apigwv2.HttpStage;
  readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ProvisionerApiProps) {
    super(scope, id);
    // One invoke permission for the whole API instead of one per route.
    const integration = new HttpLambdaIntegration('ApiLambda', props.handler, {
      payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
      scopePermissionToRoute: false,
    });
    this.httpApi = new apigwv2.HttpApi(this, 'HttpApi', {
      description: 'balena IoT provisioner',
      createDefaultStage: false,
      defaultIntegration: integration,
    });
    for (const route of [...API_ROUTES, ...(props.legacyRoutes ? LEGACY_ROUTES : [])]) {
      this.httpApi.addRoutes({ path: route.path, methods: [route.method], integration });
    }

    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      removalPolicy: props.retainLogs ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      autoDeploy: true,
      throttle: { rateLimit: props.throttleRateLimit, burstLimit: props.throttleBurstLimit },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogs),
        format: apigw.AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            time: '$context.requestTime',
            ip: '$context.identity.sourceIp',
            userAgent: '$context.identity.userAgent',
            routeKey: '$context.routeKey',
            status: '$context.status',
            latencyMs: '$context.responseLatency',
            integrationStatus: '$context.integrationStatus',
            integrationError: '$context.integrationErrorMessage',
            error: '$context.error.message',
          }),
        ),
      },
    });

    Validations.of(this.httpApi).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason:
        'Authorization happens in the API Lambda: operators present a bearer token (Secrets Manager), devices their balena device API key. The legacy POST /provision is unauthenticated by design for devices already in the field, which send no credentials; it can only lead to provisioning a device that exists in the operator balena fleets (the worker checks the uuid with balena first), and the stage is throttled.',
    });
  }

  /** Base URL of the stage, ending in `/`. */
  get url(): string {
    return this.stage.url;
  }
}
