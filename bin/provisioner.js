#!/usr/bin/env node
// The `provisioner` ops CLI: runs the TypeScript sources through tsx (a dev dependency).

// The shared Powertools logger writes JSON to stdout; keep it quiet unless asked for.
process.env.POWERTOOLS_LOG_LEVEL = process.env.POWERTOOLS_LOG_LEVEL || 'SILENT';
process.env.POWERTOOLS_METRICS_DISABLED = process.env.POWERTOOLS_METRICS_DISABLED || 'true';
// The AWS SDK warns on every run under Node 20 (supported here: package.json engines).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED =
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED || 'true';
require('tsx/cjs');
const { runCli } = require('../src/cli/main.ts');

runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  isTTY: Boolean(process.stderr.isTTY),
  env: process.env,
}).then(
  (code) => {
    // Idle HTTP keep-alive sockets and stdin would keep the process alive: exit once the
    // output is flushed.
    process.stdout.write('', () => process.exit(code));
  },
  (error) => {
    process.stderr.write(`provisioner: ${error instanceof Error ? error.message : error}\n`);
    process.exit(1);
  },
);
