import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { SandboxInvalidArgumentError, SandboxTimeoutError } from '../../errors/index.js';
import type { CreateSandboxOptions } from '../../spec/options.js';
import type { Sandbox, SandboxProcess } from '../../spec/sandbox.js';
import { AgentSessionError } from '../agent-errors.js';
import { agentHostScript } from './agent-host-script.js';
import { sessionExecOf, type SessionExecCapabilities } from './exec-carriage.js';

/** Where `startAgentHost` writes the host program and its copy of `ws` by default. */
export const defaultAgentHostDirectory = '/tmp/sandport-agent-host';

export interface StartAgentHostOptions {
  /** Sandbox port to listen on; declare it in the create options' `ports` so it has a tunnel. */
  port: number;
  /** Token every connection must carry. @default 32 random bytes, base64url */
  token?: string;
  /** The Node (≥ 18) to run the host with, a name on `PATH` or an absolute path. @default 'node' */
  node?: string;
  /** Directory in the sandbox for the host's files. @default defaultAgentHostDirectory */
  directory?: string;
  /** Transcript lines kept per agent for re-attaching clients. @default 100_000 */
  maxTranscriptLines?: number;
  /**
   * The sandbox provider's `capabilities.exec` (its `stdin` and `streaming`): without stdin the
   * token goes in a 0600 file the host deletes before it listens; without streaming the app
   * polls a file the host writes once it listens. @default known by provider id (Fly, Cloudflare,
   * Vercel), else both true
   */
  exec?: SessionExecCapabilities;
  /** Limit for the host to start listening, in milliseconds. @default 30_000 */
  startTimeoutMs?: number;
  signal?: AbortSignal;
}

/** A running agent host (see `startAgentHost`). */
export interface AgentHost {
  /** Sandbox port it listens on. */
  readonly port: number;
  /** The token connections carry; give it to `AgentSession.connect` (and to browsers, over TLS only). */
  readonly token: string;
  /** The host's process (its stdout carried the `listening` line). */
  readonly process: SandboxProcess;
  /**
   * Stops the host: SIGTERM, which ends its agents (SIGTERM, SIGKILL after 2 s) and closes the
   * port; resolves with its exit. Idempotent.
   */
  stop(options?: { signal?: AbortSignal }): Promise<{ exitCode: number; signal: string | undefined }>;
}

/**
 * Starts the agent host in `sandbox`: writes the host program (`agent-host.cjs`) and a copy of
 * `ws` from the app's `node_modules` under `directory`, runs it with `node`, and resolves once it
 * listens on `port`. The sandbox needs Node ≥ 18 (`claudeCodeImage()`'s base has it; on local and
 * Docker, `nodeHostMount()` mounts the host's) and the `claude` CLI (`ensureClaudeCode`). The
 * host outlives the app: the app can stop, start again and `AgentSession.connect` to its agents.
 * The token goes to the host over its stdin (where exec has none, in a 0600 file the host reads
 * and deletes before it listens), never in an environment (the agents run as the same user and
 * could read the host's); the sandbox, not the token, separates agents in it. Where exec output
 * arrives only at the exit (Fly), the host reports that it listens in a file, polled here.
 * Throws `SandboxInvalidArgumentError` for a bad port or token, `AgentSessionError` (reason
 * `process-exited`, with its stderr) when the host ended before listening (no Node, port in use),
 * and `SandboxTimeoutError` after `startTimeoutMs`. Not idempotent: a second host on the same
 * port fails to listen.
 */
export async function startAgentHost(sandbox: Sandbox, options: StartAgentHostOptions): Promise<AgentHost> {
  const { port, signal } = options;
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new SandboxInvalidArgumentError({ message: `port must be an integer 1-65535, got ${String(port)}`, argument: 'port' });
  const token = options.token ?? randomBytes(32).toString('base64url');
  if (token.length < 16) throw new SandboxInvalidArgumentError({ message: 'token must be at least 16 characters', argument: 'token' });
  signal?.throwIfAborted();
  const directory = (options.directory ?? defaultAgentHostDirectory).replace(/\/$/, '');
  await sandbox.files.mkdir(`${directory}/node_modules/ws/lib`, { signal });
  for (const file of wsFiles()) await sandbox.files.write(`${directory}/node_modules/ws/${file.path}`, file.data, { signal });
  await sandbox.files.write(`${directory}/agent-host.cjs`, agentHostScript, { signal });
  const delivery = hostDelivery(sessionExecOf(sandbox, options.exec), directory);
  if (delivery.tokenFile) await sandbox.files.write(delivery.tokenFile, `${token}\n`, { mode: 0o600, signal });
  // A former host's ready file in the same directory would pass for this one's.
  if (delivery.readyFile && (await sandbox.files.exists(delivery.readyFile, { signal })))
    await sandbox.files.remove(delivery.readyFile, { signal });
  const process = await sandbox.exec([options.node ?? 'node', `${directory}/agent-host.cjs`], {
    cwd: directory,
    env: {
      SANDPORT_AGENT_HOST_PORT: String(port),
      SANDPORT_AGENT_HOST_MAX_LINES: String(options.maxTranscriptLines ?? 100_000),
      ...(delivery.tokenFile ? { SANDPORT_AGENT_HOST_TOKEN_FILE: delivery.tokenFile } : {}),
      ...(delivery.readyFile ? { SANDPORT_AGENT_HOST_READY_FILE: delivery.readyFile } : {}),
    },
    signal,
  });
  if (!delivery.tokenFile) {
    const stdin = process.stdin.getWriter();
    await stdin.write(new TextEncoder().encode(`${token}\n`));
    stdin.releaseLock();
  }
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  try {
    if (delivery.readyFile) await readyFileWritten(sandbox, process, delivery.readyFile, startTimeoutMs, signal);
    else await listening(process, startTimeoutMs, sandbox.provider, signal);
  } catch (error) {
    // A host that never listened may not have read (and deleted) its token file.
    if (delivery.tokenFile) await sandbox.files.remove(delivery.tokenFile).catch(() => undefined);
    throw error;
  }
  let stopping: Promise<{ exitCode: number; signal: string | undefined }> | undefined;
  return {
    port,
    token,
    process,
    stop: () =>
      (stopping ??= (async () => {
        await process.kill('SIGTERM').catch(() => undefined);
        const { exitCode, signal: ended } = await process.wait();
        return { exitCode, signal: ended };
      })()),
  };
}

/**
 * Create options that mount the host's own Node binary read-only at `/sandport/node` (its whole
 * directory, as `claudeCodeHostMount` does), for providers whose volumes are host directories
 * (local, Docker) and whose image can run it (same OS, CPU and libc). Returns the options and
 * the path to pass as `node` to `startAgentHost`. Never throws.
 */
export function nodeHostMount(mountPath = '/sandport/node'): { createOptions: Pick<CreateSandboxOptions, 'volumes'>; node: string } {
  const binary = globalThis.process.execPath;
  const target = mountPath.replace(/\/$/, '');
  return {
    createOptions: { volumes: { [target]: { source: dirname(binary), readOnly: true } } },
    node: `${target}/${binary.slice(dirname(binary).length + 1)}`,
  };
}

/**
 * How the token reaches the host and how the app learns it listens, by the sandbox's exec:
 * stdin and the host's first stdout line where exec has them; where exec has no stdin
 * (`exec.stdin` false: the Cloudflare bridge) a 0600 file the host deletes before it listens;
 * where output arrives only at the exit (`exec.streaming` false: Fly) a file the host writes
 * once it listens, polled through the files API.
 */
function hostDelivery(exec: SessionExecCapabilities, directory: string): { tokenFile?: string; readyFile?: string } {
  return {
    ...(!exec.stdin ? { tokenFile: `${directory}/token` } : {}),
    ...(!exec.streaming ? { readyFile: `${directory}/listening.json` } : {}),
  };
}

/** Polls for the host's ready file; the host ending first is `process-exited` with its stderr. */
async function readyFileWritten(
  sandbox: Sandbox,
  process: SandboxProcess,
  readyFile: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let ended: { exitCode: number } | undefined;
  const exited = process.wait().then(
    (outcome) => (ended = outcome),
    () => (ended = { exitCode: -1 }),
  );
  try {
    for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
      signal?.throwIfAborted();
      if (await sandbox.files.exists(readyFile, { signal })) break;
      if (ended) {
        const stderr = await readAll(process.stderr);
        throw new AgentSessionError({
          reason: 'process-exited',
          message: `The agent host ended before listening (exit ${ended.exitCode}): ${stderr.trim().slice(-500) || 'no stderr'}`,
          exitCode: ended.exitCode,
          stderrTail: stderr.slice(-4096),
          provider: sandbox.provider,
        });
      }
      if (Date.now() > deadline)
        throw new SandboxTimeoutError({
          message: `The agent host did not listen within ${timeoutMs} ms`,
          timeoutMs,
          operation: 'agent-start',
          provider: sandbox.provider,
        });
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, wait))]);
    }
  } catch (error) {
    await process.kill('SIGKILL').catch(() => undefined);
    throw error;
  }
  // Nobody reads the host's output: drain it so a chatty host never blocks on a full pipe.
  void process.stdout.pipeTo(new WritableStream()).catch(() => undefined);
  void process.stderr.pipeTo(new WritableStream()).catch(() => undefined);
}

/** `ws`'s runtime files (package.json, index.js, lib/*.js) from the app's installation. */
function wsFiles(): Array<{ path: string; data: Uint8Array }> {
  const require = createRequire(join(globalThis.process.cwd(), 'noop.js'));
  const root = dirname(require.resolve('ws/package.json'));
  const paths = [
    'package.json',
    'index.js',
    ...readdirSync(join(root, 'lib'))
      .filter((name) => name.endsWith('.js'))
      .map((name) => `lib/${name}`),
  ];
  return paths.map((path) => ({ path, data: readFileSync(join(root, path)) }));
}

async function listening(process: SandboxProcess, timeoutMs: number, provider: string, signal: AbortSignal | undefined): Promise<void> {
  const reader = process.stdout.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new SandboxTimeoutError({
            message: `The agent host did not listen within ${timeoutMs} ms`,
            timeoutMs,
            operation: 'agent-start',
            provider,
          }),
        ),
      timeoutMs,
    );
  });
  try {
    while (!text.includes('\n')) {
      signal?.throwIfAborted();
      const { value, done } = await Promise.race([reader.read(), timeout]);
      if (done) {
        const { exitCode } = await process.wait();
        const stderr = await readAll(process.stderr);
        throw new AgentSessionError({
          reason: 'process-exited',
          message: `The agent host ended before listening (exit ${exitCode}): ${stderr.trim().slice(-500) || 'no stderr'}`,
          exitCode,
          stderrTail: stderr.slice(-4096),
          provider,
        });
      }
      text += decoder.decode(value, { stream: true });
    }
  } catch (error) {
    await process.kill('SIGKILL').catch(() => undefined);
    throw error;
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  // Nobody reads the host's output after this: drain it so a chatty host never blocks on a full pipe.
  void process.stdout.pipeTo(new WritableStream()).catch(() => undefined);
  void process.stderr.pipeTo(new WritableStream()).catch(() => undefined);
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true });
  } catch {
    // the process is gone; what arrived is what there is
  }
  return text;
}
