/**
 * Two memory traps below the `e2b` SDK (2.51.0), measured against the emulator and held off here
 * for each SDK sandbox the adapter uses (`boundTransport`):
 *
 * 1. Streamed output. The SDK reads envd's process stream through `@connectrpc/connect` (2.3),
 *    whose streaming call races every read against a promise that settles only when the call
 *    ends (`Promise.race([it.next(), aborted])`). Each race leaves a reaction on that promise,
 *    and the reaction keeps the read's result, the decoded message with its bytes: a command's
 *    whole output stays in memory until the command ends (256 MiB of output, 256 MiB held).
 *    The adapter wraps the process client's `start` and `connect` so that each data message
 *    handed on is a fresh object and the original, the one the race keeps, has its bytes
 *    emptied ({@link detachPayloads}).
 * 2. Streamed uploads. `files.write` of a `ReadableStream` posts it with `fetch` and the
 *    default `redirect: 'follow'`; undici then clones the request, which tees the body, and the
 *    branch nobody reads keeps every chunk (a 1 GiB upload, 1 GiB held). Uploads go with
 *    `redirect: 'error'` instead (envd never redirects), added as a middleware of the SDK's
 *    envd client.
 *
 * Both reach into the SDK's non-public members (`commands.rpc`, `pty.rpc`, `files.envdApi`);
 * the SDK is pinned, and a missing member leaves that sandbox as the SDK made it.
 */
import type { Sandbox as E2bSdkSandbox } from 'e2b';

const patched = new WeakSet<object>();
const empty = new Uint8Array(0);

interface ProcessEventLike {
  event?: { event?: { case?: string; value?: { output?: { case?: string; value?: unknown } } } };
}

/**
 * The events of a process stream with each data message detached from what the transport
 * retains (see the module doc): the message handed on is new, the transport's keeps no bytes.
 * Every `[Symbol.asyncIterator]()` shares one underlying iterator, as the SDK reads the start
 * event with one and the rest with another.
 */
export function detachPayloads<T>(events: AsyncIterable<T>): AsyncIterable<T> {
  let inner: AsyncIterator<T> | undefined;
  const iterator = (): AsyncIterator<T> => {
    inner ??= events[Symbol.asyncIterator]();
    const source = inner;
    return {
      async next() {
        const result = await source.next();
        if (result.done) return result;
        return { done: false, value: detach(result.value) };
      },
      return: source.return ? (value?: unknown) => source.return!(value) : undefined,
      throw: source.throw ? (error?: unknown) => source.throw!(error) : undefined,
    } as AsyncIterator<T>;
  };
  return { [Symbol.asyncIterator]: iterator };
}

function detach<T>(message: T): T {
  const event = (message as ProcessEventLike)?.event?.event;
  const output = event?.case === 'data' ? event.value?.output : undefined;
  if (!output || !(output.value instanceof Uint8Array)) return message;
  const bytes = output.value;
  output.value = empty;
  return { event: { event: { case: 'data', value: { output: { case: output.case, value: bytes } } } } } as T;
}

type Client = Record<string | symbol, unknown>;

function wrapProcessClient(owner: { rpc?: unknown }): void {
  const rpc = owner.rpc as Client | undefined;
  if (!rpc || typeof rpc !== 'object') return;
  owner.rpc = new Proxy(rpc, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if ((property === 'start' || property === 'connect') && typeof value === 'function')
        return (...args: unknown[]) => detachPayloads((value as (...a: unknown[]) => AsyncIterable<unknown>).apply(target, args));
      return value;
    },
  });
}

interface MiddlewareClient {
  use?: (middleware: { onRequest?: (context: { request: Request }) => Request | undefined }) => void;
}

function uploadsWithoutRedirects(files: unknown): void {
  const api = (files as { envdApi?: { api?: MiddlewareClient } } | undefined)?.envdApi?.api;
  if (typeof api?.use !== 'function') return;
  api.use({
    onRequest: ({ request }) => {
      if (request.body === null || request.redirect === 'error') return undefined;
      return new Request(request, { redirect: 'error', duplex: 'half' } as RequestInit);
    },
  });
}

/** Applies both workarounds to one SDK sandbox, once. Returns it. */
export function boundTransport(sdk: E2bSdkSandbox): E2bSdkSandbox {
  if (patched.has(sdk)) return sdk;
  patched.add(sdk);
  wrapProcessClient(sdk.commands as unknown as { rpc?: unknown });
  wrapProcessClient(sdk.pty as unknown as { rpc?: unknown });
  uploadsWithoutRedirects(sdk.files);
  return sdk;
}
