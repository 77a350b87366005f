import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { type BuildOptions, build, type Metafile, type Plugin } from 'esbuild';

/** One Lambda bundle to build: the entry exports `handler`; the output is `<outdir>/index.js`. */
export interface BundleRequest {
  /** Label in the size report (`api`, `worker`). */
  readonly name: string;
  /** Absolute path of the TypeScript entry. */
  readonly entry: string;
  readonly outdir: string;
  /** Size the minified `index.js` should stay under; exceeding it prints a warning. */
  readonly budgetBytes: number;
  /**
   * Bundle `@aws-sdk/*` too. Default (false): leave it to the SDK v3 that the Lambda Node.js
   * runtime ships, see `buildOptions`.
   */
  readonly bundleAwsSdk?: boolean;
}

export interface BundleReport {
  readonly name: string;
  readonly file: string;
  readonly bytes: number;
  readonly sourceMapBytes: number;
  readonly budgetBytes: number;
  /** Bytes each package contributes to `index.js`, largest first. */
  readonly packages: ReadonlyArray<{ readonly name: string; readonly bytes: number }>;
}

/**
 * Packages reached through balena-sdk that the provisioner never executes, each replaced by a
 * stub that throws if it ever is (~500 KB of minified code together):
 * - node-fetch (with whatwg-url and tr46), progress-stream: balena-request's streaming
 *   downloads (OS images); API calls use Node's global fetch.
 * - handlebars (with source-map): device-type install instructions.
 * - mime: release asset uploads.
 * - js-yaml: balena-settings-client parsing a `.balenarc.yml`, read only when the SDK is created
 *   without `dataDirectory: false` and such a file exists (never in a Lambda bundle).
 */
export const STUBBED_PACKAGES: Readonly<
  Record<string, { readonly usedFor: string; readonly exports: readonly string[] }>
> = {
  'node-fetch': { usedFor: 'streaming downloads', exports: ['default'] },
  'progress-stream': { usedFor: 'streaming downloads', exports: [] },
  handlebars: { usedFor: 'device-type instructions', exports: ['compile'] },
  mime: { usedFor: 'release asset uploads', exports: ['getType', 'getExtension'] },
  'js-yaml': { usedFor: '.balenarc.yml files', exports: ['load', 'safeLoad'] },
};

const NODE_MODULES_ZOD = /[\\/]node_modules[\\/]zod[\\/]/;

/**
 * - `balena-sdk` resolves to its `es2018` build: the package index picks a build with a dynamic
 *   `require('./' + version)` that esbuild cannot follow.
 * - zod's `locales` namespace (~260 KB of translated error messages) keeps only English, which
 *   zod installs as its default; `z.locales.en` still works, other locales are absent.
 * - `STUBBED_PACKAGES` become stubs.
 */
export const lambdaTrimPlugin: Plugin = {
  name: 'provisioner-lambda-trim',
  setup(b) {
    b.onResolve({ filter: /^balena-sdk$/ }, async (args) => {
      const resolved = await b.resolve('balena-sdk/es2018/index.js', {
        resolveDir: args.resolveDir,
        kind: args.kind,
      });
      return resolved.errors.length > 0 ? { errors: resolved.errors } : { path: resolved.path };
    });

    b.onResolve({ filter: /^\.\.\/locales\/index\.c?js$/ }, (args) =>
      NODE_MODULES_ZOD.test(args.importer)
        ? { path: path.join(args.resolveDir, '..', 'locales', 'en.js'), namespace: 'zod-en-only' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-en-only' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};`,
      loader: 'js',
      resolveDir: path.dirname(args.path),
    }));

    const stubbed = new RegExp(`^(${Object.keys(STUBBED_PACKAGES).join('|')})$`);
    b.onResolve({ filter: stubbed }, (args) => ({ path: args.path, namespace: 'unbundled' }));
    b.onLoad({ filter: /.*/, namespace: 'unbundled' }, (args) => {
      const stub = STUBBED_PACKAGES[args.path];
      const message = `${args.path} is not bundled into this Lambda (balena-sdk uses it only for ${stub?.usedFor}); see infra/bundling`;
      return {
        contents: [
          `const fail = () => { throw new Error(${JSON.stringify(message)}); };`,
          'module.exports = fail;',
          ...(stub?.exports ?? []).map((name) => `module.exports.${name} = fail;`),
        ].join('\n'),
        loader: 'js',
      };
    });
  },
};

/** The esbuild options of every provisioner Lambda. */
export function buildOptions(request: BundleRequest): BuildOptions {
  return {
    entryPoints: [request.entry],
    outfile: path.join(request.outdir, 'index.js'),
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    minify: true,
    sourcemap: true,
    // Stack traces only need the mappings; leaving the sources out keeps the zip small.
    sourcesContent: false,
    charset: 'utf8',
    legalComments: 'none',
    // ESM first, so tree shaking works on packages that ship both (Powertools, zod, x509).
    mainFields: ['module', 'main'],
    // The Node.js 22 Lambda runtime ships the whole AWS SDK v3. Bundling it too adds ~0.5 MB to
    // each bundle (measured: API 0.94 -> 1.46 MB, past its 1 MB budget; worker 0.95 -> 1.48 MB,
    // at the edge of its 1.5 MB). The price is an SDK version chosen by AWS, so the code sticks to
    // long-standing SDK APIs; `bundleAwsSdk` pins our own copy instead.
    external: request.bundleAwsSdk ? [] : ['@aws-sdk/*'],
    plugins: [lambdaTrimPlugin],
    metafile: true,
    logLevel: 'warning',
  };
}

function packageOf(input: string): string {
  const match = /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(input);
  return match?.[1] ?? '(project)';
}

function packageSizes(metafile: Metafile, outfile: string): BundleReport['packages'] {
  const output = Object.entries(metafile.outputs).find(([file]) =>
    path.resolve(file).endsWith(outfile),
  )?.[1];
  const sizes = new Map<string, number>();
  for (const [input, { bytesInOutput }] of Object.entries(output?.inputs ?? {})) {
    const name = packageOf(input);
    sizes.set(name, (sizes.get(name) ?? 0) + bytesInOutput);
  }
  return [...sizes.entries()]
    .map(([name, bytes]) => ({ name, bytes }))
    .sort((a, b) => b.bytes - a.bytes);
}

/** Builds one Lambda bundle with the local esbuild and reports its size. */
export async function bundleLambda(request: BundleRequest): Promise<BundleReport> {
  mkdirSync(request.outdir, { recursive: true });
  const options = buildOptions(request);
  const outfile = options.outfile as string;
  const result = await build(options);
  return {
    name: request.name,
    file: outfile,
    bytes: statSync(outfile).size,
    sourceMapBytes: statSync(`${outfile}.map`).size,
    budgetBytes: request.budgetBytes,
    packages: result.metafile
      ? packageSizes(result.metafile, path.join(request.outdir, 'index.js'))
      : [],
  };
}

const kb = (bytes: number): string => `${(bytes / 1000).toFixed(1)} kB`;

/** One line per bundle, e.g. `[bundle] api: index.js 937.0 kB of 1000.0 kB budget ...`. */
export function formatReport(report: BundleReport): string {
  const top = report.packages
    .slice(0, 5)
    .map((p) => `${p.name} ${kb(p.bytes)}`)
    .join(', ');
  const over = report.bytes > report.budgetBytes ? ' OVER BUDGET' : '';
  return `[bundle] ${report.name}: index.js ${kb(report.bytes)} of ${kb(report.budgetBytes)} budget${over} (source map ${kb(report.sourceMapBytes)}); largest: ${top}`;
}

// CDK's local bundling hook is synchronous and esbuild plugins need the async API, so the
// construct side runs this file as a child process: `node --import tsx esbuild-bundle.ts '<json>'`.
if (require.main === module) {
  const request = JSON.parse(process.argv[2] ?? '') as BundleRequest;
  bundleLambda(request).then(
    (report) => {
      console.error(formatReport(report));
    },
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exitCode = 1;
    },
  );
}
