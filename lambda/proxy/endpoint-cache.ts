/**
 * The DynamoDB client's endpoint-discovery cache, without its LRU library: the CDK bundling aliases
 * `@aws-sdk/endpoint-cache` to this module (7 KB less in the bundle). The proxy never turns endpoint
 * discovery on, so the client only constructs it; it still behaves like the original if it were used: entries
 * expire, and past `capacity` the least recently set or read key is dropped.
 */
interface Expiring {
  readonly Address: string;
  readonly Expires: number;
}

export class EndpointCache {
  private readonly cache = new Map<string, Expiring[]>();

  constructor(private readonly capacity: number) {}

  getEndpoint(key: string): string | undefined {
    const endpoints = this.get(key);
    return endpoints?.[Math.floor(Math.random() * endpoints.length)]?.Address;
  }

  get(key: string): Expiring[] | undefined {
    const held = this.cache.get(key);
    if (held === undefined || held.length === 0) return undefined;
    const now = Date.now();
    const live = held.filter((e) => now < e.Expires);
    this.put(key, live);
    return live.length === 0 ? undefined : live;
  }

  set(key: string, endpoints: ReadonlyArray<{ Address: string; CachePeriodInMinutes: number }>): void {
    const now = Date.now();
    this.put(
      key,
      endpoints.map(({ Address, CachePeriodInMinutes }) => ({
        Address,
        Expires: now + CachePeriodInMinutes * 60_000,
      })),
    );
  }

  delete(key: string): void {
    this.put(key, []);
  }

  has(key: string): boolean {
    return (this.cache.get(key)?.length ?? 0) > 0;
  }

  clear(): void {
    this.cache.clear();
  }

  private put(key: string, endpoints: Expiring[]): void {
    this.cache.delete(key);
    this.cache.set(key, endpoints);
    if (this.cache.size > this.capacity) this.cache.delete(this.cache.keys().next().value as string);
  }
}
