import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, statSync, symlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type BundleReport, bundleLambda } from '../../infra/bundling/esbuild-bundle';
import { BUNDLE_BUDGETS } from '../../infra/provisioner-stack';
import { REPO_ROOT, resource, type Synthesized, synthesize } from './support';

const execFileAsync = promisify(execFile);

describe('Lambda bundles built by the local esbuild during synth', () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synthesize({}, { bundle: true });
  });

  const bundleOf = (fn: string): string => {
    const code = resource(s.json, 'AWS::Lambda::Function', fn).props.Code as { S3Key: string };
    return path.join(s.assembly.directory, `asset.${code.S3Key.replace(/\.zip$/, '')}`);
  };

  /**
   * Runs a staged bundle's handler in a plain Node.js process, as Lambda would: only `@aws-sdk/*`
   * is resolvable besides the bundle (the runtime's SDK), the rest must be inside index.js.
   */
  const invokeBundle = async (fn: string, env: Record<string, string>, event: unknown) => {
    const runtime = mkdtempSync(path.join(tmpdir(), 'lambda-runtime-'));
    mkdirSync(path.join(runtime, 'node_modules'));
    symlinkSync(
      path.join(REPO_ROOT, 'node_modules', '@aws-sdk'),
      path.join(runtime, 'node_modules', '@aws-sdk'),
    );
    const file = path.join(bundleOf(fn), 'index.js');
    const script = `require(${JSON.stringify(file)}).handler(JSON.parse(process.argv[1]), {}).then((r) => console.log('RESULT ' + JSON.stringify(r)))`;
    const { stdout } = await execFileAsync(
      process.execPath,
      ['-e', script, JSON.stringify(event)],
      {
        cwd: runtime,
        env: {
          PATH: process.env.PATH ?? '',
          NODE_PATH: path.join(runtime, 'node_modules'),
          NODE_OPTIONS: '--enable-source-maps',
          AWS_REGION: 'eu-west-1',
          AWS_ACCESS_KEY_ID: 'testing',
          AWS_SECRET_ACCESS_KEY: 'testing',
          TABLE_NAME: 'jobs',
          QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/111122223333/work',
          BALENA_API_URL: 'https://api.balena-cloud.com',
          ...env,
        },
      },
    );
    const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
    return JSON.parse(line?.slice('RESULT '.length) ?? 'null') as unknown;
  };

  it('starts the API bundle and answers an unknown route with the application 404', async () => {
    const response = await invokeBundle(
      'ApiFunction',
      { OPERATOR_TOKEN: 'operator-token-for-tests' },
      {
        version: '2.0',
        routeKey: '$default',
        rawPath: '/no/such/route',
        rawQueryString: '',
        headers: {},
        isBase64Encoded: false,
        requestContext: { http: { method: 'GET', path: '/no/such/route' }, requestId: 'r-1' },
      },
    );
    const { statusCode, headers } = response as {
      statusCode: number;
      headers: Record<string, string>;
    };
    expect(statusCode).toBe(404);
    const contentType = Object.entries(headers).find(([k]) => k.toLowerCase() === 'content-type');
    expect(contentType?.[1]).toBe('application/problem+json');
  });

  it('starts the worker bundle and answers an empty batch', async () => {
    const response = await invokeBundle(
      'WorkerFunction',
      { BALENA_API_KEY: 'balena-key-for-tests', IOT_POLICY_NAME: 'device-policy' },
      { Records: [] },
    );
    expect(response).toEqual({ batchItemFailures: [] });
  });

  it.each([
    ['ApiFunction', BUNDLE_BUDGETS.api],
    ['WorkerFunction', BUNDLE_BUDGETS.worker],
  ])('stages %s as a minified index.js within its budget, with a source map', (fn, budget) => {
    const dir = bundleOf(fn);
    const size = statSync(path.join(dir, 'index.js')).size;
    expect(size).toBeGreaterThan(1000);
    expect(size).toBeLessThanOrEqual(budget);
    expect(existsSync(path.join(dir, 'index.js.map'))).toBe(true);
  });
});

describe('esbuild bundling of the provisioner dependencies', () => {
  let report: BundleReport;
  let server: Server;
  let apiUrl: string;
  const requests: Array<{ method?: string; url?: string; authorization?: string }> = [];
  const uuid = 'a'.repeat(32);

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res) => {
      requests.push({ method: req.method, url: req.url, authorization: req.headers.authorization });
      req.resume();
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const url = decodeURIComponent(req.url ?? '');
      if (url.startsWith('/actor/v1/whoami')) {
        return json(200, { id: 1, actorType: 'user', actorTypeId: 7, username: 'operator' });
      }
      if (req.method === 'GET' && url.startsWith('/v7/device')) {
        return json(200, { d: [{ id: 42, uuid }] });
      }
      if (req.method === 'POST' && url.startsWith('/v7/device_environment_variable')) {
        return json(201, { id: 5 });
      }
      return json(404, {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    report = await bundleLambda({
      name: 'probe',
      entry: path.join(__dirname, 'fixtures', 'balena-probe.ts'),
      outdir: mkdtempSync(path.join(tmpdir(), 'probe-bundle-')),
      budgetBytes: BUNDLE_BUDGETS.api,
    });
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('resolves balena-sdk to its es2018 build and leaves out the unused packages', () => {
    const names = report.packages.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['balena-sdk', 'zod', '@peculiar/x509']));
    for (const unused of [
      'node-fetch',
      'tr46',
      'handlebars',
      'mime',
      'js-yaml',
      'progress-stream',
    ]) {
      expect(names).not.toContain(unused);
    }
    expect(report.bytes).toBeLessThanOrEqual(BUNDLE_BUDGETS.api);
  });

  it('runs balena-sdk, zod and x509 from the bundle in plain Node.js', async () => {
    // A separate Node process, like the Lambda runtime: no jest module registry or transforms.
    const invoke = `require(${JSON.stringify(report.file)}).handler(JSON.parse(process.argv[1])).then((r) => process.stdout.write(JSON.stringify(r)))`;
    const { stdout } = await execFileAsync(process.execPath, [
      '-e',
      invoke,
      JSON.stringify({ apiUrl, apiKey: 'operator-key', uuid }),
    ]);
    const result: unknown = JSON.parse(stdout);
    expect(result).toEqual({
      actorType: 'user',
      deviceId: 42,
      csrSubject: `CN=${uuid}`,
      csrVerified: true,
      zodMessage: 'Invalid input: expected string, received number',
      zodLocales: ['en'],
    });
    expect(requests.map((r) => r.method)).toEqual(expect.arrayContaining(['GET', 'POST']));
    expect(requests.every((r) => r.authorization === 'Bearer operator-key')).toBe(true);
  });
});
