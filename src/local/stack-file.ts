import type { BalenaSimSeed } from './balena-sim';
import type { LocalStack } from './stack';

/** The `.local/stack.json` document: everything a script or the CLI needs to reach the stack. */
export function stackFile(stack: LocalStack, seed: BalenaSimSeed | undefined) {
  const fleet = seed?.fleets?.[0];
  return {
    apiUrl: stack.apiUrl,
    operatorToken: stack.operatorToken,
    aws: {
      endpoint: stack.awsEndpoint,
      region: stack.region,
      tableName: stack.tableName,
      queueUrl: stack.queueUrl,
      dlqUrl: stack.dlqUrl,
      policyName: stack.policyName,
    },
    balena: {
      apiUrl: stack.balenaApiUrl,
      userApiKey: stack.balenaApiKey,
      ...(fleet
        ? {
            fleet: fleet.slug,
            devices: (fleet.devices ?? []).map((d) => ({
              uuid: d.uuid,
              apiKey: d.deviceKey,
              service: fleet.services?.[0],
            })),
          }
        : {}),
    },
  };
}
