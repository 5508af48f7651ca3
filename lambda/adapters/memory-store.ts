import {
  type AcquireRequest,
  type Acquisition,
  type Cooldown,
  type KeyStateStore,
  type KeyStateUpdate,
  type KeyView,
  pickKey,
} from '../core/key-state.js';

interface MutableKey {
  keyId: string;
  status: KeyView['status'];
  reason?: string | undefined;
  cooldowns: Record<string, Cooldown>;
}

/**
 * Key state held in this process: the default for local use, and the fallback a shared store can
 * lean on. Follows the same rules as the shared store: cooldowns only extend, invalid keys are not
 * revived by a success, and disabled keys stay disabled.
 */
export class MemoryKeyStateStore implements KeyStateStore {
  private readonly keys = new Map<string, MutableKey>();
  private readonly cursors = new Map<string, number>();

  async acquire(request: AcquireRequest): Promise<Acquisition> {
    const views = request.keyIds.map((id) => this.key(id));
    const start = this.cursors.get(request.group) ?? 0;
    const picked = pickKey(views, start, request.model, request.now, request.exclude);
    if ('retryAt' in picked) return { kind: 'unavailable', retryAt: picked.retryAt };
    this.cursors.set(request.group, (picked.index + 1) % views.length);
    return { kind: 'key', keyId: picked.keyId };
  }

  async record(update: KeyStateUpdate): Promise<void> {
    const key = this.key(update.keyId);
    switch (update.kind) {
      case 'success':
        return;
      case 'cooldown': {
        const current = key.cooldowns[update.model];
        if (current === undefined || current.until < update.cooldown.until)
          key.cooldowns[update.model] = update.cooldown;
        return;
      }
      case 'invalid':
        if (key.status === 'active') {
          key.status = 'invalid';
          key.reason = update.reason;
        }
        return;
    }
  }

  async describe(keyIds: readonly string[]): Promise<KeyView[]> {
    return keyIds.map((id) => {
      const k = this.key(id);
      return { keyId: k.keyId, status: k.status, reason: k.reason, cooldowns: { ...k.cooldowns } };
    });
  }

  private key(keyId: string): MutableKey {
    let key = this.keys.get(keyId);
    if (key === undefined) {
      key = { keyId, status: 'active', cooldowns: {} };
      this.keys.set(keyId, key);
    }
    return key;
  }
}
