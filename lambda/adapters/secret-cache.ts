import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Logger } from '../core/logger.js';

export interface SecretCacheOptions {
  readonly client: SecretsManagerClient;
  readonly secretId: string;
  /** How long a fetched value is used before it is fetched again (edits apply within this time). */
  readonly maxAgeMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
  /** How long a request waits on a refresh when it could serve the last good value instead. @default 1000 */
  readonly staleWaitMs?: number;
}

/**
 * One Secrets Manager secret, cached per instance. Fetched when older than `maxAgeMs` (one fetch at a
 * time); when a fetch fails the last good value is kept and the failure logged (never the value). The
 * value's meaning is the caller's: it parses and, if malformed, keeps its own last good result.
 */
export class SecretCache {
  private value: string | undefined;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private inflight: Promise<string | undefined> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: SecretCacheOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * The secret string: fresh within `maxAgeMs`; past it, a new fetch, but a caller that already has a
   * value waits for that fetch at most `staleWaitMs` before going on with the last good one. Undefined
   * only before the first successful fetch.
   */
  get(): Promise<string | undefined> {
    if (this.now() - this.fetchedAt < this.options.maxAgeMs) return Promise.resolve(this.value);
    this.inflight ??= this.fetch().finally(() => {
      this.inflight = undefined;
    });
    if (this.value === undefined) return this.inflight;
    const stale = this.value;
    let timer: NodeJS.Timeout | undefined;
    const fallback = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(stale), this.options.staleWaitMs ?? 1000);
    });
    return Promise.race([this.inflight, fallback]).finally(() => clearTimeout(timer));
  }

  private async fetch(): Promise<string | undefined> {
    try {
      const out = await this.options.client.send(
        new GetSecretValueCommand({ SecretId: this.options.secretId }),
      );
      if (typeof out.SecretString !== 'string') throw new Error('secret has no string value');
      this.value = out.SecretString;
      this.fetchedAt = this.now();
    } catch (err) {
      // Keep serving with what we had; try again after a short pause rather than on every request.
      this.fetchedAt = this.now() - this.options.maxAgeMs + Math.min(5000, this.options.maxAgeMs);
      this.options.logger.error('secret fetch failed; keeping the last good value', {
        secret: this.options.secretId,
        error: err instanceof Error ? err.name : 'unknown',
        haveValue: this.value !== undefined,
      });
    }
    return this.value;
  }
}
