/**
 * A Map that holds at most `capacity` entries: setting an entry makes it the newest, and setting one too
 * many drops the oldest. Map keeps insertion order, so both are O(1) and nothing is ever scanned. State
 * keyed by what clients send (model names) lives in these, so no spelling campaign can grow memory.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(readonly capacity: number) {
    super();
    if (!(capacity >= 1)) throw new RangeError('capacity must be at least 1');
  }

  override set(key: K, value: V): this {
    // Re-inserting moves the entry to the end: the oldest entry is always the first.
    super.delete(key);
    super.set(key, value);
    if (this.size > this.capacity) {
      const oldest = this.keys().next();
      if (oldest.done !== true) super.delete(oldest.value);
    }
    return this;
  }
}
