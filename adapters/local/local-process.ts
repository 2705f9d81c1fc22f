/**
 * One command in a local sandbox: a host process (`nsenter` into the sandbox's namespaces,
 * joined to its own cgroup leaf) running the kit's exec wrapper, which reports on fd 3 so that
 * stdout stays the command's alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import {
  ProcessOutcome,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  fromNodeReadable,
  newExecId,
  readBytes,
  readStartMarker,
  signalMarkedProcesses,
  toWebWritable,
  wrapArgv,
  type Command,
  type ExitStatus,
  type KillSignal,
  type SandboxEmitter,
  type SandboxLifecycle,
  type SandboxProcess,
} from '../../src/kit/index.js';
import { execArgv } from './local-bwrap.js';
import type { SandboxCgroups } from './local-cgroups.js';
import type { LocalSystem } from './local-system.js';

const provider = 'local';
/** Queue of each output stream on the host, in bytes: big enough for pipe throughput, bounded. */
const outputHighWaterMark = 1024 * 1024;

/** What an exec needs of its sandbox. */
export interface ExecContext {
  readonly sandboxId: string;
  readonly events: SandboxEmitter;
  readonly lifecycle: SandboxLifecycle;
  readonly cgroups: SandboxCgroups | undefined;
  readonly system: LocalSystem;
  /** Host pid of the sandbox's pid 1. */
  readonly childPid: number;
  readonly env: Readonly<Record<string, string>>;
  readonly workdir: string;
  /** Whether an out-of-memory kill happened in the sandbox since the last call. */
  oomKilledSinceLast(): Promise<boolean>;
}

export interface ExecCall {
  argv: readonly string[];
  command: Command;
  options: {
    cwd?: string | undefined;
    env?: Record<string, string> | undefined;
    timeoutMs?: number | undefined;
    signal?: AbortSignal | undefined;
  };
}

/**
 * Starts a command and resolves once the wrapper reported that it runs. Rejects with
 * `SandboxInvalidArgumentError` (argument `cwd` or `command`) when the wrapper refused,
 * `SandboxNotFoundError` when the sandbox is gone, and `signal.reason` when the exec's signal
 * fires first (the command is killed then).
 */
export async function startLocalExec(context: ExecContext, call: ExecCall): Promise<SandboxProcess> {
  const { cgroups, lifecycle } = context;
  lifecycle.assertRunning();
  const execId = newExecId();
  let child: ChildProcess | undefined;
  const killTree = async (signal: KillSignal) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    if (cgroups) {
      // nsenter stays outside the kill for gentle signals: it relays the command's fate on exit.
      await cgroups.kill(execId, signal, signal === 'SIGKILL' ? [] : [child.pid!]);
      return;
    }
    signalProcess(-child.pid!, signal);
    // Children that called setsid left the process group; they still carry the exec's marker.
    await signalMarkedProcesses(execId, signal, { rounds: signal === 'SIGKILL' ? 3 : 1 });
  };
  const outcome = new ProcessOutcome({
    provider,
    sandboxId: context.sandboxId,
    events: context.events,
    command: call.command,
    execId,
    lifecycle,
    timeoutMs: call.options.timeoutMs,
    signal: call.options.signal,
    kill: killTree,
  });
  const starting = (async () => {
    if (cgroups) await cgroups.createLeaf(execId);
    // Given up meanwhile (abort, timeout, the sandbox ending): start nothing.
    if (outcome.failed !== undefined) {
      if (cgroups) void cgroups.releaseLeaf(execId);
      throw outcome.failed;
    }
    const spawned = spawnExec(context, execId, call);
    child = spawned;
    const process = new LocalSandboxProcess(spawned, outcome, context);
    spawned.once('exit', (code, signalName) => void reportExit(context, outcome, execId, code, signalName));
    await awaitStart(spawned, call.argv, context);
    return process;
  })();
  const process = await outcome.startup(starting);
  outcome.started();
  return process;
}

function spawnExec(context: ExecContext, execId: string, call: ExecCall): ChildProcess {
  const { cgroups, system } = context;
  const argv = execArgv({
    nsenter: system.binaries.nsenter,
    setpriv: system.binaries.setpriv,
    isRoot: system.isRoot,
    childPid: context.childPid,
    procsFiles: cgroups?.procsFiles(execId) ?? [],
    inner: wrapArgv(execId, call.argv, { cwd: call.options.cwd ?? context.workdir, reportFd: 3 }),
  });
  return spawn(argv[0]!, argv.slice(1), {
    env: { ...context.env, ...call.options.env },
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    // Without cgroups the process group (and the marker) are the handles on the tree.
    detached: cgroups === undefined,
  });
}

/** Reads the wrapper's report on fd 3; a missing report means nsenter could not enter. */
async function awaitStart(child: ChildProcess, argv: readonly string[], context: ExecContext): Promise<void> {
  const { report, stdout: rest } = await readStartMarker(fromNodeReadable(child.stdio[3] as Readable));
  void rest.cancel().catch(() => undefined);
  const { sandboxId, lifecycle } = context;
  if (report === 'ok') return;
  if (report === 'cwd') {
    throw new SandboxInvalidArgumentError({
      message: `The working directory does not exist in sandbox ${sandboxId}`,
      argument: 'cwd',
      provider,
    });
  }
  if (report === 'command') {
    throw new SandboxInvalidArgumentError({
      message: `Command not found in sandbox ${sandboxId}: ${argv[0]}`,
      argument: 'command',
      provider,
    });
  }
  if (!lifecycle.isRunning()) throw lifecycle.notFound();
  const stderr = new TextDecoder()
    .decode(await readBytes(fromNodeReadable(child.stderr!), { maxBytes: 4000 }).catch(() => new Uint8Array()))
    .trim();
  if (!lifecycle.isRunning()) throw lifecycle.notFound();
  throw new SandboxProviderError({ message: `Could not start a command in sandbox ${sandboxId}: ${stderr || 'no diagnostics'}`, provider });
}

async function reportExit(
  context: ExecContext,
  outcome: ProcessOutcome,
  execId: string,
  code: number | null,
  signalName: NodeJS.Signals | null,
): Promise<void> {
  const exitCode = code ?? 128 + (signalName ? osConstants.signals[signalName] : 0);
  const status: ExitStatus = { exitCode, signal: signalName ?? undefined };
  const oomKilled = signalName !== null && context.cgroups ? await context.oomKilledSinceLast().catch(() => false) : false;
  void context.cgroups?.releaseLeaf(execId).catch(() => undefined);
  outcome.exited(oomKilled ? { ...status, oomKilled } : status);
}

class LocalSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly #outcome: ProcessOutcome;

  constructor(child: ChildProcess, outcome: ProcessOutcome, context: ExecContext) {
    this.#outcome = outcome;
    const { lifecycle, sandboxId } = context;
    this.stdin = toWebWritable(child.stdin!, {
      discardWhen: () => outcome.done,
      mapError: (error) =>
        lifecycle.isRunning()
          ? new SandboxProviderError({
              message: `stdin of a command in sandbox ${sandboxId} is closed: the command exited or closed its input`,
              provider,
              cause: error,
            })
          : lifecycle.notFound(),
    });
    this.stdout = fromNodeReadable(child.stdout!, { highWaterMarkBytes: outputHighWaterMark });
    this.stderr = fromNodeReadable(child.stderr!, { highWaterMarkBytes: outputHighWaterMark });
  }

  wait(): Promise<ExitStatus> {
    return this.#outcome.wait();
  }

  kill(signal?: KillSignal): Promise<void> {
    return this.#outcome.kill(signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#outcome.kill('SIGKILL').catch(() => undefined);
  }
}

/** `process.kill` (a negative pid is a process group) that ignores processes already gone. */
function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
