import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { AssetHashType, type ILocalBundling } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { BundleRequest } from './esbuild-bundle';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const BUNDLER = path.join(__dirname, 'esbuild-bundle.ts');

/** Runs `esbuild-bundle.ts` in a child Node process: the hook is sync, esbuild plugins are async. */
class LocalEsbuild implements ILocalBundling {
  constructor(private readonly request: Omit<BundleRequest, 'outdir'>) {}

  tryBundle(outputDir: string): boolean {
    const request: BundleRequest = { ...this.request, outdir: outputDir };
    const child = spawnSync(
      process.execPath,
      ['--import', 'tsx', BUNDLER, JSON.stringify(request)],
      { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] },
    );
    if (child.error) throw child.error;
    if (child.status !== 0) {
      throw new Error(`esbuild bundling of ${request.name} failed (exit ${child.status})`);
    }
    // Never return false: that would make CDK fall back to Docker, which these machines lack.
    return true;
  }
}

/**
 * Lambda code built from a TypeScript entry by the local esbuild (no Docker). The asset hash is
 * the bundle's, so unchanged code deploys nothing.
 */
export function bundledLambdaCode(request: Omit<BundleRequest, 'outdir'>): lambda.Code {
  return lambda.Code.fromAsset(path.dirname(request.entry), {
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      // Required by the type, never pulled: LocalEsbuild either bundles or throws.
      image: lambda.Runtime.NODEJS_22_X.bundlingImage,
      local: new LocalEsbuild(request),
    },
  });
}
