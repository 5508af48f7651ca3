/**
 * `npm run bench:bundle`: the proxy function's deployable bundle — its size, and how long a fresh Node
 * process takes to import it (what a cold start pays for our code), next to importing a bare AWS SDK
 * DynamoDB client from node_modules. Prints one JSON line. Medians of fresh processes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { GeminiProxyStack } from '../../lib/gemini-proxy-stack.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const STUB = 'globalThis.awslambda={streamifyResponse:(f)=>f,HttpResponseStream:{from:(s)=>s}};';

function importMs(specifier: string): number {
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const script = `${STUB}const t=performance.now();await import(${JSON.stringify(specifier)});process.stdout.write(String(performance.now()-t));`;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    if (out.status !== 0) throw new Error(`import failed: ${out.stderr}`);
    samples.push(Number(out.stdout));
  }
  samples.sort((a, b) => a - b);
  return Math.round(samples[Math.floor(samples.length / 2)]! * 10) / 10;
}

const outdir = mkdtempSync(join(tmpdir(), 'gp-bench-bundle-'));
try {
  const app = new App({ outdir });
  const stack = new GeminiProxyStack(app, 'BenchBundle');
  app.synth();
  const fn = Object.values(Template.fromStack(stack).findResources('AWS::Lambda::Function'))[0]!;
  const bundle = join(outdir, `asset.${String(fn.Properties.Code.S3Key).replace(/\.zip$/, '')}`, 'index.mjs');

  process.stdout.write(
    `${JSON.stringify({
      bench: 'bundle',
      node: process.version,
      bundle_bytes: statSync(bundle).size,
      bundle_kib: Math.round(statSync(bundle).size / 102.4) / 10,
      bundle_import_ms_p50: importMs(pathToFileURL(bundle).href),
      bare_sdk_dynamodb_client_import_ms_p50: importMs(
        pathToFileURL(join(process.cwd(), 'node_modules/@aws-sdk/client-dynamodb/dist-cjs/index.js')).href,
      ),
      runs: RUNS,
    })}\n`,
  );
} finally {
  rmSync(outdir, { recursive: true, force: true });
}
