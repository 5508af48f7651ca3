import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * Runs a TypeScript file in its own process (`node --import tsx`, so the pid is the script's own) and
 * resolves with the first stdout line `ready` accepts; stdout is drained from then on.
 */
export async function startChild(
  script: string,
  env: Record<string, string>,
  ready: (line: string) => boolean,
  args: string[] = [],
): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    if (ready(line)) {
      // Keep draining stdout (the proxy logs a line per request) without holding it.
      child.stdout!.resume();
      return { child, line };
    }
  }
  throw new Error(`${script} exited before it was ready`);
}

/** The real local proxy (`lambda/local/server.ts`, as `npm start` runs it) in its own process. */
export async function startProxyProcess(options: {
  readonly keys: readonly string[];
  readonly token: string;
  readonly openAiBase: string;
  readonly nativeBaseUrl: string;
}): Promise<{ child: ChildProcess; port: number; close(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'gp-bench-'));
  const configPath = join(dir, 'config.yaml');
  writeFileSync(
    configPath,
    JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      client_tokens: [options.token],
      groups: [{ name: 'bench', api_keys: options.keys, target_url: options.openAiBase }],
      upstream: { native_base_url: options.nativeBaseUrl },
    }),
  );
  try {
    const { child, line } = await startChild(
      'lambda/local/server.ts',
      { CONFIG_PATH: configPath, LOG_LEVEL: 'info' },
      (l) => l.includes('"message":"listening"'),
    );
    const port = Number(new URL((JSON.parse(line) as { url: string }).url).port);
    return {
      child,
      port,
      close() {
        child.kill('SIGTERM');
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
