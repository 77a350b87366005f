import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { createProvisionerApp, type ProvisionerApp } from '../../infra/provisioner-app';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** The feature flags and context of cdk.json, so tests synthesize what `cdk synth` does. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')) as {
    context?: Record<string, unknown>;
  };
  return cdkJson.context ?? {};
}

/** CDK's own switch: no stack is bundled, Lambda code points at its source directory. */
export const SKIP_BUNDLING = { 'aws:cdk:bundling-stacks': [] };

export interface Synthesized extends ProvisionerApp {
  readonly assembly: CloudAssembly;
  readonly template: Template;
  /** The raw template, for reading values out of it. */
  readonly json: TemplateJson;
}

export interface TemplateJson {
  readonly Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
  readonly Outputs?: Record<string, unknown>;
}

/**
 * Synthesizes the provisioner app once, with cdk-nag's AwsSolutions pack as a policy validation
 * plugin: synthesis throws if any finding is not acknowledged.
 */
export function synthesize(
  context: Record<string, unknown> = {},
  options: { bundle?: boolean } = {},
): Synthesized {
  const provisioner = createProvisionerApp({
    context: { ...cdkJsonContext(), ...(options.bundle ? {} : SKIP_BUNDLING), ...context },
  });
  const assembly = provisioner.app.synth();
  const json = assembly.getStackByName(provisioner.stack.stackName).template as TemplateJson;
  return { ...provisioner, assembly, json, template: Template.fromJSON(json) };
}

/** Logical id and properties of the one resource of `type` whose logical id starts with `prefix`. */
export function resource(
  json: TemplateJson,
  type: string,
  prefix: string,
): { id: string; props: Record<string, unknown> } {
  const found = Object.entries(json.Resources).filter(
    ([id, r]) => r.Type === type && id.startsWith(prefix),
  );
  if (found.length !== 1) {
    throw new Error(`expected one ${type} starting with ${prefix}, found ${found.length}`);
  }
  const [id, r] = found[0]!;
  return { id, props: r.Properties ?? {} };
}

/** Every statement of the IAM policies attached to the role whose logical id starts with `prefix`. */
export function roleStatements(json: TemplateJson, prefix: string): PolicyStatementJson[] {
  const role = resource(json, 'AWS::IAM::Role', prefix);
  return Object.values(json.Resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy')
    .filter((r) =>
      ((r.Properties?.Roles as unknown[]) ?? []).some(
        (ref) => JSON.stringify(ref) === JSON.stringify({ Ref: role.id }),
      ),
    )
    .flatMap(
      (r) =>
        (r.Properties?.PolicyDocument as { Statement?: PolicyStatementJson[] } | undefined)
          ?.Statement ?? [],
    );
}

export interface PolicyStatementJson {
  readonly Sid?: string;
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
}

export const actionsOf = (s: PolicyStatementJson): string[] =>
  Array.isArray(s.Action) ? s.Action : [s.Action];

/** An IoT ARN in this account and region as CloudFormation renders `Stack.formatArn`. */
export const iotArn = (suffix: string) => ({
  'Fn::Join': [
    '',
    [
      'arn:',
      { Ref: 'AWS::Partition' },
      ':iot:',
      { Ref: 'AWS::Region' },
      ':',
      { Ref: 'AWS::AccountId' },
      `:${suffix}`,
    ],
  ],
});
