import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { bundleLambda } from '../../infra/bundling/esbuild-bundle';
import { type BenchContext, percentile, round } from './support';

const ROOT = path.join(__dirname, '..', '..');

/** Environment a cold start parses (no network is touched while the module loads). */
const ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  TABLE_NAME: 'bench',
  QUEUE_URL: 'http://127.0.0.1:9/queue/bench',
  BALENA_API_URL: 'http://127.0.0.1:9',
  BALENA_API_KEY: 'bench',
  OPERATOR_TOKEN: 'bench-operator-token',
  IOT_POLICY_NAME: 'bench',
};

/**
 * coldStart: the Lambda bundles exactly as the CDK app builds them (local esbuild, AWS SDK left
 * to the runtime), and the time a fresh Node process takes to load each one (median of `runs`).
 */
export async function runColdStart(ctx: BenchContext, runs: number) {
  const outdir = path.join(ROOT, 'bench', '.tmp');
  try {
    const api = await bundleLambda({
      name: 'api',
      entry: path.join(ROOT, 'src/api/index.ts'),
      outdir: path.join(outdir, 'api'),
      budgetBytes: 1_000_000,
    });
    const worker = await bundleLambda({
      name: 'worker',
      entry: path.join(ROOT, 'src/worker/index.ts'),
      outdir: path.join(outdir, 'worker'),
      budgetBytes: 1_500_000,
    });
    ctx.log(`coldStart: bundles ${api.bytes} and ${worker.bytes} bytes`);
    return {
      apiBundleBytes: api.bytes,
      workerBundleBytes: worker.bytes,
      apiInitMs: measureLoad(api.file, runs),
      workerInitMs: measureLoad(worker.file, runs),
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

function measureLoad(file: string, runs: number): number {
  const script = `const t=process.hrtime.bigint();const m=require(${JSON.stringify(file)});if(typeof m.handler!=='function')process.exit(3);process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6));`;
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const out = spawnSync(process.execPath, ['-e', script], {
      env: { ...process.env, ...ENV },
      encoding: 'utf8',
      cwd: ROOT,
    });
    if (out.status !== 0) throw new Error(`loading ${file} failed: ${out.stderr}`);
    samples.push(Number(out.stdout));
  }
  return round(percentile(samples, 50));
}
