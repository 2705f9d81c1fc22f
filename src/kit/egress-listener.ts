/**
 * A listening TCP socket made inside a sandbox's network namespace and handed to this process,
 * so that the egress proxy accepts the sandbox's connections itself: no bridge process between
 * them (a socat forking per connection, relaying every byte once more, cost about 8 ms per
 * connection and a third of the throughput).
 *
 * A socket's network namespace is fixed when it is made, so a listener made by a process that
 * entered the namespace stays in it when another process accepts on it. That process is a tiny
 * `node -e` started through the caller's `enter` prefix (`nsenter … --`, possibly `setpriv …
 * --`): it listens, sends the server over the IPC channel (the channel's fd and
 * `NODE_CHANNEL_FD` pass through exec) and exits. The listener then lives exactly as long as
 * this process holds it: closed with the proxy, and gone with this process when it dies, so the
 * sandbox's egress fails closed. A socket keeps its namespace alive, so the holder must close it
 * when the sandbox ends.
 */
import { spawn } from 'node:child_process';
import { Server } from 'node:net';
import { SandboxProviderError } from '../errors/index.js';

export interface NamespaceListenerOptions {
  /** The provider, for errors. */
  readonly provider: string;
  /**
   * The argv prefix that enters the namespace and runs what follows, e.g. `['nsenter', '-t',
   * '1234', '-n', '--']`. Node itself comes after it (`process.execPath`).
   */
  readonly enter: readonly string[];
  /** The loopback port to listen on inside the namespace. */
  readonly port: number;
  /**
   * The namespace the listener must be in (`readlink /proc/<pid>/ns/net`, e.g.
   * `net:[4026532830]`): a listener made anywhere else is refused. Unchecked when undefined.
   */
  readonly namespace?: string;
  /** Milliseconds until the helper must have handed the listener over. @default 10 000 */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** Made by the helper: listens on 127.0.0.1:port, sends the server with its namespace, exits when the channel closes. */
const helperScript = `
const net = require('node:net');
const fs = require('node:fs');
const port = Number(process.argv[1]);
const server = net.createServer();
server.once('error', (error) => { process.stderr.write(String(error && error.message) + '\\n'); process.exit(1); });
server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
  process.send({ namespace: fs.readlinkSync('/proc/self/ns/net') }, server);
});
process.on('disconnect', () => process.exit(0));
`;

/**
 * Starts the helper and resolves with the listening server once it is in this process (the
 * helper is exiting then). Rejects with `SandboxProviderError` when the helper fails
 * (cannot enter, port taken, wrong namespace, timeout) and with `signal.reason` on an abort; the
 * helper is killed then. The caller owns the server: it must `close()` it.
 */
export async function listenInNamespace(options: NamespaceListenerOptions): Promise<Server> {
  options.signal?.throwIfAborted();
  const [command, ...prefix] = options.enter;
  if (command === undefined)
    throw new SandboxProviderError({ provider: options.provider, message: 'listenInNamespace: an empty enter prefix' });
  // An empty environment: no NODE_OPTIONS (a loader of the provider's process) reaches the helper;
  // spawn adds the IPC channel's variables itself.
  const child = spawn(command, [...prefix, process.execPath, '-e', helperScript, String(options.port)], {
    env: {},
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 4096) stderr += chunk.toString('utf8');
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const failure = (what: string) =>
    new SandboxProviderError({
      provider: options.provider,
      message: `the egress listener in the sandbox's network namespace ${what}: ${stderr.trim() || 'no diagnostics'}`,
    });
  let server: Server | undefined;
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(failure(`was not handed over within ${options.timeoutMs ?? 10_000} ms`)),
        options.timeoutMs ?? 10_000,
      );
      const onAbort = () => reject(options.signal?.reason);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      };
      child.once('message', (message: { namespace?: unknown }, handle: unknown) => {
        settle();
        if (!(handle instanceof Server)) return reject(failure('sent no listener'));
        if (options.namespace !== undefined && message?.namespace !== options.namespace) {
          handle.close();
          return reject(failure(`was made in ${String(message?.namespace)}, not ${options.namespace}`));
        }
        resolve(handle);
      });
      child.once('error', (error) => {
        settle();
        reject(failure(`could not start (${error.message})`));
      });
      // 'close', not 'exit': by then stderr has been read to its end, for the diagnostics.
      child.once('close', (code, signal) => {
        settle();
        reject(failure(`helper exited (${signal ?? code}) before handing it over`));
      });
    });
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  // The helper exits once its channel closes. Not waited for (its exit took up to 50 ms on a
  // loaded machine, added to every create); one that lingers is killed.
  if (child.connected) child.disconnect();
  const backstop = setTimeout(() => child.kill('SIGKILL'), 5_000);
  backstop.unref();
  void exited.then(() => clearTimeout(backstop));
  return server;
}
