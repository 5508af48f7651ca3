/** Which target the global options name: a local config file, or a deployed stack. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { AwsTarget } from './aws-target.js';
import { CliError, type CliIo, UsageError } from './io.js';
import { LocalTarget } from './local-target.js';

export type Target = AwsTarget | LocalTarget;

/** The global options that choose a target. */
export interface TargetOptions {
  readonly stack?: string | undefined;
  readonly region?: string | undefined;
  readonly config?: string | undefined;
}

export const DEFAULT_STACK = 'GeminiProxy';

/**
 * `--config` given, or no `--stack` and a config file (`CONFIG_PATH`, else `./config.yaml`) exists: that
 * file. Otherwise the stack (`--stack`, default `GeminiProxy`). Both options at once are a usage error.
 */
export function resolveTarget(options: TargetOptions, io: CliIo): Target {
  if (options.config !== undefined && options.stack !== undefined)
    throw new UsageError('--config and --stack name different targets: give one');
  const envPath = io.env.CONFIG_PATH?.trim();
  const path = resolve(io.cwd, options.config ?? (envPath || 'config.yaml'));
  if (options.config !== undefined || (options.stack === undefined && existsSync(path))) {
    if (!existsSync(path)) throw new CliError(`no config file at ${path}`);
    return new LocalTarget(path, io.env, io.cwd);
  }
  return new AwsTarget(options.stack ?? DEFAULT_STACK, options.region);
}
