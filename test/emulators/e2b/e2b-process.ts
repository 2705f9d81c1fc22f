/**
 * envd's process service (`process.Process` over Connect, JSON codec), the calls behind the
 * SDK's `commands.*` and `pty.*`: Start and Connect stream a process's events (start with the
 * pid inside the sandbox, data as base64 bytes, end with Go's exit status, keepalives at the
 * `Keepalive-Ping-Interval` the client asks for); List, SendInput, CloseStdin, SendSignal
 * (SIGTERM or SIGKILL to that pid) and Update (a PTY's size) are unary. StreamInput is a client
 * stream, which the SDK's web transport cannot send: it is refused as unimplemented.
 *
 * Users come from `Authorization: Basic base64(<user>:)` (no header: the default user); see
 * e2b-process-launch.ts for what running as `user` means in the local sandbox.
 */
import type { E2bRoute, E2bRequest } from './e2b-http.js';
import { ConnectError, connectRoutes, envelope } from './e2b-connect.js';
import type { E2bState } from './e2b-state.js';
import { EnvdProcess, processTable, type Subscription } from './e2b-process-table.js';
import { events, parseSelected, parseSendInput, parseSendSignal, parseStart, parseUpdate, processInfo } from './e2b-process-wire.js';

export function processRoutes(state: E2bState): E2bRoute[] {
  return [
    ...connectRoutes('process.Process', {
      Start: {
        kind: 'serverStream',
        async *handle(message, request, signal) {
          const sandbox = state.envdSandbox(request);
          const start = parseStart(message);
          const { process, subscription } = await EnvdProcess.launch(sandbox, {
            config: start.process,
            tag: start.tag,
            user: userOf(request),
            // envd gives a command its stdin unless the request turns it off.
            stdin: start.stdin ?? true,
            pty: start.pty ? { cols: start.pty.size?.cols ?? 0, rows: start.pty.size?.rows ?? 0 } : undefined,
            timeoutMs: timeoutOf(request),
          });
          yield* streamEvents(process.pid, subscription, keepaliveOf(request), signal);
        },
      },
      Connect: {
        kind: 'serverStream',
        async *handle(message, request, signal) {
          const sandbox = state.envdSandbox(request);
          const process = processTable(sandbox).find(parseSelected(message, 'ConnectRequest'));
          yield* streamEvents(process.pid, process.subscribe(), keepaliveOf(request), signal);
        },
      },
      List: {
        kind: 'unary',
        async handle(_message, request) {
          const sandbox = state.envdSandbox(request);
          return {
            processes: processTable(sandbox)
              .list()
              .map((process) => processInfo(process.pid, process.tag, process.config)),
          };
        },
      },
      SendInput: {
        kind: 'unary',
        async handle(message, request) {
          const sandbox = state.envdSandbox(request);
          const { selector, input } = parseSendInput(message);
          const process = processTable(sandbox).find(selector);
          if ('stdin' in input) await process.writeStdin(input.stdin);
          else await process.writePty(input.pty);
          return {};
        },
      },
      CloseStdin: {
        kind: 'unary',
        async handle(message, request) {
          const sandbox = state.envdSandbox(request);
          await processTable(sandbox).find(parseSelected(message, 'CloseStdinRequest')).closeStdin();
          return {};
        },
      },
      SendSignal: {
        kind: 'unary',
        async handle(message, request) {
          const sandbox = state.envdSandbox(request);
          const { selector, signal } = parseSendSignal(message);
          await processTable(sandbox).find(selector).signal(signal);
          return {};
        },
      },
      Update: {
        kind: 'unary',
        async handle(message, request) {
          const sandbox = state.envdSandbox(request);
          const { selector, size } = parseUpdate(message);
          const process = processTable(sandbox).find(selector);
          if (size) await process.resize(size);
          return {};
        },
      },
    }),
    {
      method: 'POST',
      pattern: '/process.Process/StreamInput',
      async handle(request, response) {
        request.raw.resume();
        // A client stream needs a streaming request body, which connect-web over fetch never sends.
        response.writeHead(200, { 'content-type': 'application/connect+json' });
        response.end(
          envelope(2, {
            error: {
              code: 'unimplemented',
              message: 'The E2B emulator does not implement process.Process/StreamInput (a client stream): send input with SendInput',
            },
          }),
        );
      },
    },
  ];
}

/**
 * The events of one stream: the start, then the process's output and its end, with a keepalive
 * whenever nothing was sent for `keepaliveMs`. The client leaving ends the stream, not the process.
 */
async function* streamEvents(
  pid: number,
  subscription: Subscription,
  keepaliveMs: number | undefined,
  signal: AbortSignal,
): AsyncGenerator<unknown> {
  const left = new Promise<'left'>((resolve) => {
    if (signal.aborted) resolve('left');
    else signal.addEventListener('abort', () => resolve('left'), { once: true });
  });
  try {
    yield events.start(pid);
    let pending = subscription.next();
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const quiet =
        keepaliveMs === undefined
          ? undefined
          : new Promise<'keepalive'>((resolve) => (timer = setTimeout(() => resolve('keepalive'), keepaliveMs)));
      const next = await Promise.race([pending, left, ...(quiet ? [quiet] : [])]);
      clearTimeout(timer);
      if (next === 'left' || next === undefined) return;
      if (next === 'keepalive') {
        yield events.keepalive();
        continue;
      }
      pending = subscription.next();
      if (next.type === 'data') yield events[next.kind](next.data);
      else if (next.type === 'end') return yield events.end(next.end);
      else throw next.error;
    }
  } finally {
    subscription.cancel();
  }
}

/** The user of `Authorization: Basic base64(<user>:)`; anything else means the default user. */
function userOf(request: E2bRequest): string | undefined {
  const header = request.headers.authorization;
  const match = typeof header === 'string' ? /^Basic\s+(\S+)$/i.exec(header) : null;
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const user = colon < 0 ? decoded : decoded.slice(0, colon);
  return user === '' ? undefined : user;
}

/** `Connect-Timeout-Ms`: envd kills a started command when it runs out; 0 or none is no limit. */
function timeoutOf(request: E2bRequest): number | undefined {
  const header = request.headers['connect-timeout-ms'];
  if (header === undefined) return undefined;
  const value = Number(header);
  if (typeof header !== 'string' || !/^\d{1,10}$/.test(header) || !Number.isSafeInteger(value)) {
    throw new ConnectError('invalid_argument', `invalid Connect-Timeout-Ms: ${String(header)}`);
  }
  return value === 0 ? undefined : value;
}

/** `Keepalive-Ping-Interval`, in seconds (the SDK asks for 50); none or a bad value: no keepalives. */
function keepaliveOf(request: E2bRequest): number | undefined {
  const header = request.headers['keepalive-ping-interval'];
  if (typeof header !== 'string' || !/^\d+$/.test(header) || Number(header) === 0) return undefined;
  return Number(header) * 1000;
}
