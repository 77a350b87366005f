import { Authenticator, type KeyIdentity, type KeyVerifier } from '../../src/api/auth';
import { ForbiddenError, UnauthorizedError } from '../../src/shared/errors';

class CountingVerifier implements KeyVerifier {
  calls: string[] = [];
  constructor(private readonly identities: Record<string, KeyIdentity>) {}
  async whoami(apiKey: string) {
    this.calls.push(apiKey);
    return this.identities[apiKey];
  }
}

const UUID = 'ab'.repeat(16);

describe('Authenticator', () => {
  const identities = {
    'device-key': { actorType: 'device', uuid: UUID },
    'user-key': { actorType: 'user' },
  };

  it('accepts the operator token without asking balena', async () => {
    const verifier = new CountingVerifier(identities);
    const auth = new Authenticator({
      operatorToken: 'operator-token-123456',
      verifier,
      cacheSeconds: 60,
    });

    await expect(auth.authenticate('Bearer operator-token-123456')).resolves.toEqual({
      kind: 'operator',
    });
    expect(verifier.calls).toEqual([]);
  });

  it('verifies a device key once and serves it from the cache until it expires', async () => {
    let now = 1_000_000;
    const verifier = new CountingVerifier(identities);
    const auth = new Authenticator({ verifier, cacheSeconds: 60, now: () => now });

    await auth.authenticate('Bearer device-key');
    await auth.authenticate('Bearer device-key');
    expect(verifier.calls).toHaveLength(1);
    now += 61_000;
    await expect(auth.authenticate('Bearer device-key')).resolves.toEqual({
      kind: 'device',
      uuid: UUID,
    });
    expect(verifier.calls).toHaveLength(2);
  });

  it('keys its cache by a hash, never by the key itself', async () => {
    const auth = new Authenticator({
      verifier: new CountingVerifier(identities),
      cacheSeconds: 60,
    });
    await auth.authenticate('Bearer device-key');
    const cache = (auth as unknown as { cache: Map<string, unknown> }).cache;
    expect([...cache.keys()]).toHaveLength(1);
    expect([...cache.keys()][0]).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify([...cache.entries()])).not.toContain('device-key');
  });

  it('refuses missing and unknown keys with 401 and user keys with 403', async () => {
    const auth = new Authenticator({
      verifier: new CountingVerifier(identities),
      cacheSeconds: 60,
    });
    await expect(auth.authenticate(undefined)).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(auth.authenticate('Basic abc')).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(auth.authenticate('Bearer nope')).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(auth.authenticate('Bearer user-key')).rejects.toBeInstanceOf(ForbiddenError);
  });
});
