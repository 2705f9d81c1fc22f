/**
 * One command in a local sandbox: a host process (`nsenter` into the sandbox's namespaces,
 * joined to its own cgroup leaf) running the kit's exec wrapper, which reports on fd 3 so that
 * stdout stays the command's alone. With `pty`, the wrapper runs on a terminal that the kit's
 * portable pty (util-linux `script`) opens inside the sandbox, never on the host; a resize is a
 * second exec in the sandbox (`stty -F`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import {
  ProcessOutcome,
  SandboxEmitter,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  checkPtySize,
  closedReadable,
  fromNodeReadable,
  newExecId,
  parseOptions,
  ptyEnvironment,
  readBytes,
  readStartMarker,
  readText,
  resizeArgv,
  canScanHostProcesses,
  signalMarkedProcesses,
  signalOptionsSchema,
  toWebWritable,
  wrapArgv,
  wrapPtyArgv,
  type Command,
  type ExitStatus,
  type KillSignal,
  type PtySize,
  type SandboxLifecycle,
  type SandboxProcess,
  type SignalOptions,
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
    /** Run on a terminal of this size (validated). */
    pty?: PtySize | undefined;
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
      // nsenter stays outside the kill, SIGKILL included: it reaps the command and relays its
      // fate. Killed together, the command's parent would be gone and the orphan would go to the
      // host's init, which in a container may never reap it (a zombie holding a pid of the
      // sandbox's pidsLimit). A process nsenter forks after the freeze (an exec still starting)
      // goes with the whole leaf once nsenter has had its chance to exit.
      await cgroups.kill(execId, signal, [child.pid!]);
      if (signal === 'SIGKILL' && !(await exitsWithin(child, nsenterExitGraceMs))) await cgroups.kill(execId, 'SIGKILL');
      return;
    }
    if (signal === 'SIGKILL' && canScanHostProcesses()) {
      // As above: the command (it carries the exec's marker, nsenter does not) goes first, so
      // that nsenter reaps it; then the rest of the group, unmarked processes included.
      await signalMarkedProcesses(execId, signal, { rounds: 3 });
      await exitsWithin(child, nsenterExitGraceMs);
      signalProcess(-child.pid!, signal);
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
    const process = new LocalSandboxProcess(spawned, outcome, context, call.options.pty !== undefined);
    spawned.once('exit', (code, signalName) => void reportExit(context, outcome, execId, code, signalName));
    const ptyPath = await awaitStart(spawned, call, context);
    if (ptyPath !== undefined) process.resize = (size, options) => resizeTerminal(context, outcome, ptyPath, size, options);
    return process;
  })();
  const process = await outcome.startup(starting);
  outcome.started();
  return process;
}

function spawnExec(context: ExecContext, execId: string, call: ExecCall): ChildProcess {
  const { cgroups, system } = context;
  const cwd = call.options.cwd ?? context.workdir;
  const { pty } = call.options;
  const env = { ...context.env, ...call.options.env };
  const argv = execArgv({
    nsenter: system.binaries.nsenter,
    setpriv: system.binaries.setpriv,
    isRoot: system.isRoot,
    childPid: context.childPid,
    procsFiles: cgroups?.procsFiles(execId) ?? [],
    inner: pty ? wrapPtyArgv(execId, call.argv, { size: pty, cwd, reportFd: 3 }) : wrapArgv(execId, call.argv, { cwd, reportFd: 3 }),
  });
  return spawn(argv[0]!, argv.slice(1), {
    env: pty ? ptyEnvironment(env) : env,
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    // Without cgroups the process group (and the marker) are the handles on the tree.
    detached: cgroups === undefined,
  });
}

/**
 * Reads the wrapper's report on fd 3 and returns the terminal's path for a `pty` exec; a missing
 * report means nsenter could not enter (or, with `pty`, the image lacks `script`: on stderr).
 */
async function awaitStart(child: ChildProcess, call: ExecCall, context: ExecContext): Promise<string | undefined> {
  const { argv } = call;
  const { report, ptyPath, stdout: rest } = await readStartMarker(fromNodeReadable(child.stdio[3] as Readable));
  void rest.cancel().catch(() => undefined);
  const { sandboxId, lifecycle } = context;
  if (report === 'ok' && call.options.pty === undefined) return undefined;
  if (report === 'ok' && ptyPath !== undefined) return ptyPath;
  if (report === 'ok') {
    throw new SandboxProviderError({ message: `The command in sandbox ${sandboxId} did not start on a terminal`, provider });
  }
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

/**
 * Resizes a terminal through `stty -F` in a second exec, unless the command already exited (its
 * terminal may belong to another command by now). The helper exec stays out of the sandbox's
 * events: it is part of this call, not a command of the caller's.
 */
async function resizeTerminal(
  context: ExecContext,
  outcome: ProcessOutcome,
  ptyPath: string,
  size: PtySize,
  options: SignalOptions | undefined,
): Promise<void> {
  const checked = checkPtySize(size, provider);
  const { signal } = parseOptions(signalOptionsSchema, options, { provider, what: 'resize options' });
  signal?.throwIfAborted();
  if (outcome.done) return;
  const argv = resizeArgv(ptyPath, checked);
  const resizer = await startLocalExec({ ...context, events: new SandboxEmitter() }, { argv, command: argv, options: { signal } });
  void resizer.stdin.close().catch(() => undefined);
  const [, stderr, exit] = await Promise.all([readText(resizer.stdout), readText(resizer.stderr), resizer.wait()]);
  if (exit.exitCode !== 0 && !outcome.done) {
    throw new SandboxProviderError({
      message: `Could not resize the terminal in sandbox ${context.sandboxId}: ${stderr.trim()}`,
      provider,
    });
  }
}

class LocalSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** Set once a `pty` command started (see `SandboxProcess.resize`); absent on pipes. */
  declare resize?: (size: PtySize, options?: SignalOptions) => Promise<void>;
  readonly #outcome: ProcessOutcome;

  constructor(child: ChildProcess, outcome: ProcessOutcome, context: ExecContext, onTerminal: boolean) {
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
    // On a terminal stderr is merged into stdout; the host pipe carries only start diagnostics.
    this.stderr = onTerminal ? closedReadable() : fromNodeReadable(child.stderr!, { highWaterMarkBytes: outputHighWaterMark });
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

/** How long a killed exec's nsenter gets to reap its command and exit before the whole leaf goes. */
const nsenterExitGraceMs = 1000;

function exitsWithin(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', exited);
      resolve(false);
    }, ms);
    const exited = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', exited);
  });
}
