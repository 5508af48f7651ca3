/**
 * One abort signal per client request: fires when the client goes away (the entry's signal) or when
 * the request's deadline passes. Cheaper than `AbortSignal.any` + `AbortSignal.timeout` on the hot path,
 * and `dispose` releases the timer as soon as the answer is complete.
 */
export class RequestDeadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly onParentAbort = () => this.controller.abort();

  constructor(
    private readonly parent: AbortSignal,
    timeoutMs: number,
  ) {
    this.timer = setTimeout(() => this.controller.abort(), timeoutMs);
    this.timer.unref();
    if (parent.aborted) this.controller.abort();
    else parent.addEventListener('abort', this.onParentAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.parent.removeEventListener('abort', this.onParentAbort);
  }
}
