import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/**
 * A secret given either as a value (local stack) or as a Secrets Manager ARN (AWS), read once
 * per cold start. Fails naming the variables when neither is set or the secret is empty.
 */
export async function resolveSecret(
  name: string,
  value: string | undefined,
  secretArn: string | undefined,
  options: { region: string; endpoint?: string },
): Promise<string> {
  if (value) return value;
  if (!secretArn) throw new Error(`set ${name} or ${name}_SECRET_ARN`);
  const client = new SecretsManagerClient({
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
  });
  const out = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
  const secret = out.SecretString?.trim();
  if (!secret) throw new Error(`the secret ${secretArn} (${name}) is empty: put the value in it`);
  return secret;
}
