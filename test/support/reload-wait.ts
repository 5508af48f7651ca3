import { RELOAD_BOUND_MS } from '../../lambda/local/config-watch.js';

/** A chat completion with `token` against a running proxy at `url`; its status. */
export async function chatStatus(url: string, token: string): Promise<number> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'x' }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Waits until `done` holds: within the config reload bound, with 3 s of room for a loaded machine. */
export async function withinReload(done: () => boolean | Promise<boolean>): Promise<void> {
  const started = Date.now();
  while (!(await done())) {
    if (Date.now() - started > RELOAD_BOUND_MS + 3000) throw new Error('not reloaded in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
