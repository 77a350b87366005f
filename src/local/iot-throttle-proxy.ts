import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

export { DEFAULT_IOT_RATES } from '../shared/rate-limiter';

/** AWS IoT control-plane operations by REST method and path (what the SDK sends). */
const OPERATIONS: ReadonlyArray<readonly [string, RegExp, string]> = [
  ['GET', /^\/things\/[^/]+$/, 'DescribeThing'],
  ['POST', /^\/things\/[^/]+$/, 'CreateThing'],
  ['DELETE', /^\/things\/[^/]+$/, 'DeleteThing'],
  ['GET', /^\/things$/, 'ListThings'],
  ['GET', /^\/things\/[^/]+\/principals$/, 'ListThingPrincipals'],
  ['PUT', /^\/things\/[^/]+\/principals$/, 'AttachThingPrincipal'],
  ['DELETE', /^\/things\/[^/]+\/principals$/, 'DetachThingPrincipal'],
  ['POST', /^\/keys-and-certificate$/, 'CreateKeysAndCertificate'],
  ['POST', /^\/certificates$/, 'CreateCertificateFromCsr'],
  ['GET', /^\/certificates$/, 'ListCertificates'],
  ['GET', /^\/certificates\/[^/]+$/, 'DescribeCertificate'],
  ['PUT', /^\/certificates\/[^/]+$/, 'UpdateCertificate'],
  ['DELETE', /^\/certificates\/[^/]+$/, 'DeleteCertificate'],
  ['PUT', /^\/target-policies\/[^/]+$/, 'AttachPolicy'],
  ['POST', /^\/target-policies\/[^/]+$/, 'DetachPolicy'],
  ['GET', /^\/principals\/things$/, 'ListPrincipalThings'],
  ['POST', /^\/attached-policies\/[^/]+$/, 'ListAttachedPolicies'],
  ['POST', /^\/policy-targets\/[^/]+$/, 'ListTargetsForPolicy'],
];

/**
 * The operation a request names: an IoT REST route, or `DynamoDB.X` / `SQS.X` from the JSON
 * protocol's X-Amz-Target header.
 */
export function operationOf(
  method: string,
  path: string,
  target: string | string[] | undefined,
): string {
  const header = Array.isArray(target) ? target[0] : target;
  if (header) {
    const [service, action] = header.split('.');
    if (service?.startsWith('DynamoDB')) return `DynamoDB.${action}`;
    if (service === 'AmazonSQS') return `SQS.${action}`;
    return header;
  }
  return iotOperation(method, path) ?? 'Other';
}

export function iotOperation(method: string, path: string): string | undefined {
  const pathname = path.split('?')[0] ?? path;
  return OPERATIONS.find(([m, pattern]) => m === method && pattern.test(pathname))?.[2];
}

export interface ThrottleProxyOptions {
  /** Where requests go: the moto endpoint. */
  readonly target: string;
  /** Requests per second per operation; operations not listed are not limited. */
  readonly rates?: Readonly<Record<string, number>>;
  readonly port?: number;
  /** Sees each forwarded request's operation and body (benchmarks count DynamoDB items with it). */
  readonly inspect?: (operation: string, body: Buffer) => void;
}

export interface ThrottleProxy {
  readonly url: string;
  /** Requests forwarded, per operation. */
  readonly calls: Record<string, number>;
  /** ThrottlingException answers, per operation. */
  readonly throttled: Record<string, number>;
  /** Total upstream time (ms), per operation: where the emulator spends its time. */
  readonly upstreamMs: Record<string, number>;
  /** Answers ThrottlingException to the next `count` calls of `operation` ('*' for any). */
  throttleNext(operation: string, count: number): void;
  setRates(rates: Readonly<Record<string, number>>): void;
  resetCounters(): void;
  close(): Promise<void>;
}

/**
 * A throttling layer between the worker and moto: a token bucket per IoT operation that answers
 * HTTP 429 `ThrottlingException` past its rate, as IoT Core does past its quotas.
 */
export async function startThrottleProxy(options: ThrottleProxyOptions): Promise<ThrottleProxy> {
  const target = new URL(options.target);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  let rates: Readonly<Record<string, number>> = options.rates ?? {};
  const buckets = new Map<string, { tokens: number; refilledAt: number }>();
  const forced = new Map<string, number>();
  const calls: Record<string, number> = {};
  const throttled: Record<string, number> = {};
  const upstreamMs: Record<string, number> = {};

  const takeToken = (operation: string): boolean => {
    const forcedLeft = forced.get(operation) ?? forced.get('*') ?? 0;
    if (forcedLeft > 0) {
      forced.set(forced.has(operation) ? operation : '*', forcedLeft - 1);
      return false;
    }
    const rate = rates[operation];
    if (!rate) return true;
    const now = Date.now();
    const bucket = buckets.get(operation) ?? { tokens: rate, refilledAt: now };
    bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.refilledAt) / 1000) * rate);
    bucket.refilledAt = now;
    buckets.set(operation, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  };

  const server = createServer((req, res) => {
    const operation = operationOf(req.method ?? 'GET', req.url ?? '/', req.headers['x-amz-target']);
    if (!takeToken(operation)) {
      throttled[operation] = (throttled[operation] ?? 0) + 1;
      req.resume();
      res.writeHead(429, {
        'Content-Type': 'application/json',
        'x-amzn-ErrorType': 'ThrottlingException',
      });
      res.end(JSON.stringify({ message: 'Rate exceeded' }));
      return;
    }
    calls[operation] = (calls[operation] ?? 0) + 1;
    const sentAt = performance.now();
    res.on('finish', () => {
      upstreamMs[operation] = (upstreamMs[operation] ?? 0) + performance.now() - sentAt;
    });
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
        agent,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    if (!options.inspect) {
      req.pipe(upstream);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      options.inspect?.(operation, body);
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    throttled,
    upstreamMs,
    throttleNext(operation, count) {
      forced.set(operation, count);
    },
    setRates(next) {
      rates = next;
      buckets.clear();
    },
    resetCounters() {
      for (const key of Object.keys(calls)) delete calls[key];
      for (const key of Object.keys(throttled)) delete throttled[key];
      for (const key of Object.keys(upstreamMs)) delete upstreamMs[key];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          agent.destroy();
          resolve();
        });
      }),
  };
}
