import { Validations } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

export interface ProvisionerSecretsProps {
  /** Complete ARN of an existing secret with the balena API key; unset: created here. */
  readonly balenaApiKeySecretArn?: string;
  /** Complete ARN of an existing secret with the operator bearer token; unset: generated here. */
  readonly operatorTokenSecretArn?: string;
}

const NO_ROTATION_REASON =
  'Rotation needs a rotation Lambda per secret. The balena API key is issued in the balena dashboard, which has no API a rotation function could use to mint a replacement; the operator token is rotated by putting a new value (the Lambdas read it on their next cold start).';

/**
 * The two secrets the Lambdas read once per cold start: the balena API key (a random placeholder
 * the operator replaces after the first deploy) and the operator bearer token (generated).
 */
export class ProvisionerSecrets extends Construct {
  readonly balenaApiKey: secretsmanager.ISecret;
  readonly operatorToken: secretsmanager.ISecret;

  constructor(scope: Construct, id: string, props: ProvisionerSecretsProps = {}) {
    super(scope, id);
    if (props.balenaApiKeySecretArn !== undefined) {
      this.balenaApiKey = secretsmanager.Secret.fromSecretCompleteArn(
        this,
        'BalenaApiKey',
        props.balenaApiKeySecretArn,
      );
    } else {
      const secret = new secretsmanager.Secret(this, 'BalenaApiKey', {
        description:
          'balena API key of the IoT provisioner. Replace the generated placeholder with a balena API key (put-secret-value) after the first deploy.',
        generateSecretString: { passwordLength: 32, excludePunctuation: true },
      });
      Validations.of(secret).acknowledge({ id: 'AwsSolutions-SMG4', reason: NO_ROTATION_REASON });
      this.balenaApiKey = secret;
    }

    if (props.operatorTokenSecretArn !== undefined) {
      this.operatorToken = secretsmanager.Secret.fromSecretCompleteArn(
        this,
        'OperatorToken',
        props.operatorTokenSecretArn,
      );
    } else {
      const secret = new secretsmanager.Secret(this, 'OperatorToken', {
        description: 'Bearer token operators (and the ops CLI) present to the provisioner API.',
        generateSecretString: { passwordLength: 48, excludePunctuation: true },
      });
      Validations.of(secret).acknowledge({ id: 'AwsSolutions-SMG4', reason: NO_ROTATION_REASON });
      this.operatorToken = secret;
    }
  }
}
