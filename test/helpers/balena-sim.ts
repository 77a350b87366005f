import { randomBytes } from 'node:crypto';
import { type BalenaSDK, getSdk } from 'balena-sdk';

/** A fresh full device uuid (32 hex), so tests sharing one simulator never collide. */
export function newDeviceUuid(): string {
  return randomBytes(16).toString('hex');
}

/** A real balena-sdk pointed at `apiUrl`, logged in with `key`, keeping nothing on disk. */
export async function balenaSdkFor(apiUrl: string, key: string): Promise<BalenaSDK> {
  const sdk = getSdk({ apiUrl, dataDirectory: false });
  await sdk.auth.loginWithToken(key);
  return sdk;
}
