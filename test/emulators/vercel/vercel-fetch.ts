/**
 * The URL-rewriting `fetch` handed to the SDK (`{ fetch }` of `Sandbox.create/get/list/fork`,
 * `Snapshot.get/list`): the SDK's base URL is fixed at `https://vercel.com/api`, so every call to it
 * goes to the emulator's `baseUrl` instead, with the same path and query. A URL of the edge
 * (`https://<subdomain>.vercel.run/…`, what `sandbox.domain(port)` gives) goes to the emulator's
 * edge (`http://<subdomain>.vercel.localhost:<edgePort>/…`). Any other URL is refused, naming it,
 * so that nothing leaves the machine by mistake. Built on the client's side (it cannot cross to a
 * spawned emulator's process): it needs the two URLs only.
 */

/** Vercel's API base, as the SDK has it. */
export const vercelApiBase = 'https://vercel.com/api';

export interface VercelFetchTargets {
  /** The emulator's API base, e.g. `http://127.0.0.1:PORT/api`. */
  readonly baseUrl: string;
  /** `http://vercel.localhost:<edgePort>`. */
  readonly tunnelBaseUrl: string;
}

/**
 * Maps a tunnel URL of Vercel's (`https://S.vercel.run/p?q`, `wss://…`) to the emulator's edge
 * (`http://S.vercel.localhost:<edgePort>/p?q`, `ws://…`); other URLs come back unchanged.
 */
export function toEdgeUrl(url: string, tunnelBaseUrl: string): string {
  const parsed = new URL(url);
  if (!parsed.hostname.endsWith('.vercel.run')) return url;
  const base = new URL(tunnelBaseUrl);
  const subdomain = parsed.hostname.slice(0, -'.vercel.run'.length);
  const secure = parsed.protocol === 'wss:' || parsed.protocol === 'ws:';
  const scheme = secure ? (base.protocol === 'https:' ? 'wss:' : 'ws:') : base.protocol;
  return `${scheme}//${subdomain}.${base.host}${parsed.pathname}${parsed.search}`;
}

/** The rewriting fetch (see the file comment). */
export function createVercelFetch(targets: VercelFetchTargets, inner: typeof fetch = globalThis.fetch): typeof fetch {
  const baseUrl = targets.baseUrl.replace(/\/+$/, '');
  return (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    let target: string;
    if (url === vercelApiBase || url.startsWith(`${vercelApiBase}/`) || url.startsWith(`${vercelApiBase}?`)) {
      target = baseUrl + url.slice(vercelApiBase.length);
    } else if (new URL(url).hostname.endsWith('.vercel.run')) {
      target = toEdgeUrl(url, targets.tunnelBaseUrl);
    } else {
      return Promise.reject(
        new Error(`The Vercel emulator's fetch has no route for ${url}: only ${vercelApiBase} and *.vercel.run are emulated`),
      );
    }
    if (typeof input === 'string' || input instanceof URL) return inner(target, init);
    return inner(new Request(target, input), init);
  };
}
