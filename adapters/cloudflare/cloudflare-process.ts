/**
 * One command through the bridge, on either version: 0.12's `/exec` event stream or 0.13's
 * `/processes` with its log stream. Both come out of the client as {@link BridgeOutputEvent}s,
 * which are pumped into the process's stdout and stderr one at a time: the pump waits while a
 * stream's reader is behind (a bounded queue), so the bridge's response is read no faster than
 * the caller reads, and memory stays bounded whatever the command writes.
 *
 * No bridge version carries stdin: the command runs with `/dev/null` as its input (the kit's
 * wrapper in `null` mode), a write to `stdin` is `SandboxCapabilityUnsupportedError`
 * (`exec.stdin`), and closing it resolves (the command has had its end of input from the start).
 */
import { constants } from 'node:os';
import {
  type ProcessOutcome,
  SandboxCapabilityUnsupportedError,
  SandboxProviderError,
  type PumpedOutput,
  signalFromExitCode,
  type ExitStatus,
  type SandboxError,
  type SandboxProcess,
} from '../../src/kit/index.js';
import type { BridgeClient, BridgeOutputEvent } from './cloudflare-client.js';
import { type CloudflareBridgeVersion, planCloudflareExec } from './cloudflare-options.js';

const provider = 'cloudflare';

/** A started command's events, and how to stop reading them. */
export interface BridgeRun {
  events: AsyncIterable<BridgeOutputEvent>;
  /** The 0.13 process id (`undefined` on 0.12, which names no process). */
  processId: string | undefined;
}

/**
 * Starts `argv` (already wrapped, or a plain helper command) on the bridge. `signal` aborts the
 * requests, including the event stream being read.
 */
export async function startBridgeRun(
  client: BridgeClient,
  version: CloudflareBridgeVersion,
  sandboxId: string,
  argv: readonly string[],
  options: { env?: Record<string, string> | undefined; backstopMs?: number | undefined; signal?: AbortSignal | undefined },
): Promise<BridgeRun> {
  const request = planCloudflareExec(version, argv, { env: options.env, backstopMs: options.backstopMs });
  if (request.version === '0.12') {
    return { events: await client.exec(sandboxId, request.body, options.signal), processId: undefined };
  }
  const status = await client.startProcess(sandboxId, request.body, options.signal);
  return { events: client.processLogs(sandboxId, status.id, options.signal), processId: status.id };
}

/** What a helper command printed and how it ended. */
export interface BridgeRunResult {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
}

/**
 * Runs a short helper command (the marker, the tree killer, file staging) to its end and buffers
 * its output. An `error` event of the bridge is a `SandboxProviderError`.
 */
export async function runOnBridge(
  client: BridgeClient,
  version: CloudflareBridgeVersion,
  sandboxId: string,
  argv: readonly string[],
  signal?: AbortSignal,
): Promise<BridgeRunResult> {
  const run = await startBridgeRun(client, version, sandboxId, argv, { signal });
  const stdout: Uint8Array[] = [];
  const stderr: Uint8Array[] = [];
  for await (const event of run.events) {
    if (event.type === 'stdout') stdout.push(event.data);
    else if (event.type === 'stderr') stderr.push(event.data);
    else if (event.type === 'exit')
      return { exitCode: exitOf(event).exitCode, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) };
    else if (event.type === 'error') throw bridgeRunError(event.message, event.code);
  }
  throw new SandboxProviderError({ message: 'The bridge ended the command stream before the command exited', provider, retryable: true });
}

/** A bridge `error` event as a sandport error. */
export function bridgeRunError(message: string, code: string | undefined): SandboxError {
  return new SandboxProviderError({ message: `The bridge failed the command: ${message}${code ? ` (${code})` : ''}`, provider });
}

const signalNames = new Map<number, string>(Object.entries(constants.signals).map(([name, number]) => [number, name]));

/** An exit event as the contract's status: 0.13 names the signal by number; 0.12 only has the shell's 128+n. */
export function exitOf(event: Extract<BridgeOutputEvent, { type: 'exit' }>): ExitStatus {
  if (event.signal !== undefined && event.signal > 0) {
    return { exitCode: 128 + event.signal, signal: signalNames.get(event.signal) };
  }
  return { exitCode: event.exitCode, signal: signalFromExitCode(event.exitCode) };
}

/** What `CloudflareSandboxProcess` needs. */
export interface CloudflareProcessInit {
  /** Output after the wrapper's start report. */
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  outcome: ProcessOutcome;
}

/** One command in a Cloudflare sandbox; its outcome is the kit's. */
export class CloudflareSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly #outcome: ProcessOutcome;

  constructor(init: CloudflareProcessInit) {
    this.#outcome = init.outcome;
    this.stdout = init.stdout;
    this.stderr = init.stderr;
    this.stdin = noStdin();
  }

  wait(): Promise<ExitStatus> {
    return this.#outcome.wait();
  }

  kill(signal?: Parameters<SandboxProcess['kill']>[0]): Promise<void> {
    return this.#outcome.kill(signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill().catch(() => undefined);
  }
}

/** The stdin of a command on the bridge: see the module doc. */
export function noStdin(): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write: () => {
      throw new SandboxCapabilityUnsupportedError({
        message: 'The Cloudflare bridge carries no stdin (neither 0.12 nor 0.13 has an input route): pass input as a file or an argument',
        capability: 'exec.stdin',
        provider,
      });
    },
  });
}

/**
 * Feeds a run's events into the outputs until the command ends; settles `outcome`. A stream that
 * ends without an exit (the connection dropped) fails the command with a retryable
 * `SandboxProviderError`, unless the sandbox ended meanwhile (the outcome already knows).
 */
export async function pumpBridgeRun(
  events: AsyncIterable<BridgeOutputEvent>,
  outputs: { stdout: PumpedOutput; stderr: PumpedOutput },
  outcome: ProcessOutcome,
  mapError: (error: unknown) => SandboxError,
): Promise<void> {
  const end = () => {
    outputs.stdout.end();
    outputs.stderr.end();
  };
  try {
    for await (const event of events) {
      if (event.type === 'stdout' || event.type === 'stderr') {
        await outputs[event.type].push(event.data);
      } else if (event.type === 'exit') {
        end();
        outcome.exited(exitOf(event));
        return;
      } else if (event.type === 'error') {
        const error = bridgeRunError(event.message, event.code);
        end();
        outcome.fail(error);
        outcome.exited({ exitCode: 137, signal: 'SIGKILL' });
        return;
      }
    }
    throw new SandboxProviderError({ message: 'The bridge ended the command stream before the command exited', provider, retryable: true });
  } catch (error) {
    const mapped = mapError(error);
    // The sandbox's end (or the caller's abort) is the outcome's to report; the outputs just end.
    if (outcome.failed !== undefined) end();
    else {
      outputs.stdout.error(mapped);
      outputs.stderr.error(mapped);
    }
    outcome.fail(mapped);
    outcome.exited({ exitCode: 137, signal: 'SIGKILL' });
  }
}
