import { createHash, timingSafeEqual } from 'node:crypto';
import { getSdk } from 'balena-sdk';
import { ForbiddenError, HttpError, UnauthorizedError } from '../shared/errors';

/** Who is calling: the operator (any device) or one device (only itself). */
export type Caller =
  | { readonly kind: 'operator' }
  | { readonly kind: 'device'; readonly uuid: string };

/** What balena says a key is. */
export interface KeyIdentity {
  readonly actorType: string;
  readonly uuid?: string;
}

/** Port: asks balena who a key belongs to; undefined when balena rejects the key. */
export interface KeyVerifier {
  whoami(apiKey: string): Promise<KeyIdentity | undefined>;
}

/** KeyVerifier through balena-sdk: `GET /actor/v1/whoami` with the caller's own key. */
export class BalenaKeyVerifier implements KeyVerifier {
  constructor(private readonly apiUrl: string) {}

  async whoami(apiKey: string): Promise<KeyIdentity | undefined> {
    const sdk = getSdk({ apiUrl: this.apiUrl, dataDirectory: false });
    await sdk.auth.loginWithToken(apiKey);
    try {
      const actor = await sdk.auth.whoami();
      if (!actor) return undefined;
      return { actorType: actor.actorType, uuid: 'uuid' in actor ? actor.uuid : undefined };
    } catch (error: unknown) {
      const status = (error as { statusCode?: number }).statusCode;
      if (status === 401 || status === 403) return undefined;
      throw new HttpError(
        503,
        'balena_unavailable',
        'balena could not verify the key; try again',
        undefined,
        {
          headers: { 'Retry-After': '5' },
        },
      );
    }
  }
}

export interface AuthenticatorOptions {
  readonly operatorToken?: string;
  readonly verifier: KeyVerifier;
  /** How long a verified device key is trusted without asking balena again. */
  readonly cacheSeconds: number;
  readonly now?: () => number;
  readonly maxCacheEntries?: number;
}

/**
 * Authenticates `Authorization: Bearer <token>`: the deployment's operator token (compared in
 * constant time) or a balena device API key (verified with balena, positive answers cached under
 * a hash of the key, never the key itself).
 */
export class Authenticator {
  private readonly cache = new Map<string, { uuid: string; expiresAt: number }>();
  private readonly operatorDigest?: Buffer;

  constructor(private readonly options: AuthenticatorOptions) {
    this.operatorDigest = options.operatorToken ? sha256(options.operatorToken) : undefined;
  }

  async authenticate(authorization: string | undefined): Promise<Caller> {
    const token = parseBearer(authorization);
    if (!token) throw new UnauthorizedError();
    const digest = sha256(token);
    if (this.operatorDigest && timingSafeEqual(digest, this.operatorDigest)) {
      return { kind: 'operator' };
    }
    const now = this.options.now?.() ?? Date.now();
    const cacheKey = digest.toString('hex');
    const cached = this.cache.get(cacheKey);
    if (cached && cached.expiresAt > now) return { kind: 'device', uuid: cached.uuid };
    const identity = await this.options.verifier.whoami(token);
    if (!identity)
      throw new UnauthorizedError('the token is not a valid operator token or balena key');
    if (identity.actorType !== 'device' || !identity.uuid) {
      throw new ForbiddenError('only a device API key or the operator token may call this API');
    }
    this.remember(cacheKey, identity.uuid, now);
    return { kind: 'device', uuid: identity.uuid };
  }

  private remember(cacheKey: string, uuid: string, now: number): void {
    if (this.options.cacheSeconds <= 0) return;
    const max = this.options.maxCacheEntries ?? 10_000;
    if (this.cache.size >= max) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(cacheKey, { uuid, expiresAt: now + this.options.cacheSeconds * 1000 });
  }
}

/** Throws 403 unless the caller is the operator or the device itself. */
export function assertMayActOn(caller: Caller, uuid: string): void {
  if (caller.kind === 'device' && caller.uuid !== uuid) throw new ForbiddenError();
}

function parseBearer(header: string | undefined): string | undefined {
  const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return match?.[1];
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
