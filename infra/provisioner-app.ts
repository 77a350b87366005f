import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadProvisionerConfig, type ProvisionerConfig } from './config';
import { ProvisionerStack, type ProvisionerStackProps } from './provisioner-stack';

export interface ProvisionerAppOptions {
  /** CDK context (tests); the CLI passes `-c` and cdk.json context through the environment. */
  readonly context?: Record<string, unknown>;
  /** Cloud assembly directory. @default the CLI's, or a temporary directory */
  readonly outdir?: string;
  /** Lambda entries (tests). */
  readonly entries?: Pick<ProvisionerStackProps, 'apiEntry' | 'workerEntry'>;
}

export interface ProvisionerApp {
  readonly app: App;
  readonly stack: ProvisionerStack;
  readonly config: ProvisionerConfig;
}

/**
 * The CDK app: configuration from context, one environment-agnostic stack (synth needs no AWS
 * credentials; the account and region come from the deploying profile), cdk-nag's AwsSolutions
 * pack as a synth-time policy validation.
 */
export function createProvisionerApp(options: ProvisionerAppOptions = {}): ProvisionerApp {
  const app = new App({ context: options.context, outdir: options.outdir });
  const config = loadProvisionerConfig(app.node);
  const stack = new ProvisionerStack(app, config.stackName, {
    config,
    stackName: config.stackName,
    ...options.entries,
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack, config };
}
