/**
 * One command in a sandbox pod, on our exec client, the kit's wrapper and `ProcessOutcome`.
 * The exit code comes from the Status frame; a stream that closed without one (a proxy or idle
 * timeout) fails the command instead of passing for exit 0. Kubernetes has no kill for an exec
 * (closing the socket kills nothing): `kill` is a second exec running the kit's marker killer.
 */
import {
  ProcessOutcome,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  checkPtySize,
  execMarkerVariable,
  killMarkedTreeArgv,
  newExecId,
  ptyEnvironment,
  ptyToolsExit,
  readBytes,
  readStartMarker,
  resizeArgv,
  wrapPtyArgv,
  type Command,
  type ExitStatus,
  type KillSignal,
  type PtySize,
  type SandboxEmitter,
  type SandboxLifecycle,
  type SandboxProcess,
  type SignalOptions,
} from '../../src/kit/index.js';
import { openKubernetesExec, type ExecSession, type KubernetesConnection } from './kubernetes-exec-client.js';
import { kubernetesContainerName, parseKubernetesExitStatus } from './kubernetes-options.js';
import { kubernetesExecArgv, preludeAround } from './kubernetes-scripts.js';

const provider = 'kubernetes';

/** What a command needs of its sandbox. */
export interface KubernetesExecContext {
  connection: KubernetesConnection;
  namespace: string;
  pod: string;
  lifecycle: SandboxLifecycle;
  events: SandboxEmitter;
  /** The sandbox's working directory (the default `cwd`). */
  workdir: string | undefined;
  /**
   * Called when an exec fails without an exit status while the sandbox still looks running:
   * resolves once the pod has been seen ended (the lifecycle then ends) or a short grace has
   * passed. An exec that fails because its pod is ending (an entrypoint that just exited) is
   * then reported as the sandbox's end, not as a provider failure.
   */
  settleEnd?: () => Promise<void>;
}

export interface KubernetesExecRequest {
  command: Command;
  argv: string[];
  env?: Record<string, string> | undefined;
  cwd?: string | undefined;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  pty?: PtySize | undefined;
  /** The create `command`: run under the notifier, so the pod ends with it. */
  entrypoint?: boolean;
  /** No input at all (`run` without `stdin`): the exec opens no stdin channel. */
  stdinNull?: boolean;
}

/**
 * Runs an argv in the pod without the wrapper (sandport's own helpers: the killer, the probe,
 * the deadline), and resolves with its exit code and output. A pod that is gone is
 * `SandboxNotFoundError`.
 */
export async function runPlain(
  context: Pick<KubernetesExecContext, 'connection' | 'namespace' | 'pod'>,
  argv: string[],
  signal?: AbortSignal,
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const session = await openKubernetesExec(context.connection, {
    namespace: context.namespace,
    pod: context.pod,
    container: kubernetesContainerName,
    argv,
    stdin: false,
    signal,
  });
  const [stdout, stderr, status] = await Promise.all([readBytes(session.stdout), readBytes(session.stderr), session.status]);
  const exit = status && parseKubernetesExitStatus(status);
  if (!exit)
    throw new SandboxProviderError({
      message: `A helper exec in pod ${context.pod} failed: ${status?.message ?? 'the stream closed without a status'}`,
      provider,
    });
  const decoder = new TextDecoder();
  return { exitCode: exit.exitCode, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

async function killTree(context: KubernetesExecContext, execId: string, signal: KillSignal): Promise<void> {
  if (!context.lifecycle.isRunning()) return;
  try {
    await runPlain(context, killMarkedTreeArgv(execId, signal));
  } catch (error) {
    // A pod that is gone has killed the command already.
    if (SandboxNotFoundError.isInstance(error) || !context.lifecycle.isRunning()) return;
    throw error;
  }
}

/** Starts a command; resolves once it runs. Rejects with typed start errors (cwd, command, gone). */
export async function startKubernetesExec(context: KubernetesExecContext, request: KubernetesExecRequest): Promise<SandboxProcess> {
  const { lifecycle, pod } = context;
  const execId = newExecId();
  let session: ExecSession | undefined;
  const outcome: ProcessOutcome = new ProcessOutcome({
    provider,
    sandboxId: pod,
    events: context.events,
    command: request.command,
    execId,
    lifecycle,
    timeoutMs: request.timeoutMs,
    signal: request.signal,
    kill: async (signal) => {
      await killTree(context, execId, signal);
      // A command blocked on a full output has its Status behind that output: let it through.
      session?.drain();
    },
  });
  const cwd = request.cwd ?? context.workdir;
  const { pty } = request;
  // On a terminal the outer shell waits for `script` instead of exec'ing the command: it must
  // carry the marker from its start (its /proc environ), so a kill of the tree ends it by the
  // signal itself. Kubernetes' exec has no env field, so `env` puts it there.
  const argv = pty
    ? [
        '/usr/bin/env',
        `${execMarkerVariable}=${execId}`,
        ...preludeAround(wrapPtyArgv(execId, request.argv, { size: checkPtySize(pty, provider), cwd, reportFd: 1 }), {
          env: ptyEnvironment(request.env),
        }),
      ]
    : kubernetesExecArgv(execId, request.argv, { cwd, env: request.env, entrypoint: request.entrypoint });
  const starting = (async () => {
    const opened = await openKubernetesExec(context.connection, {
      namespace: context.namespace,
      pod,
      container: kubernetesContainerName,
      argv,
      stdin: !(request.stdinNull && !pty),
      signal: request.signal,
      onKeepsWriting: () => void outcome.kill('SIGPIPE').catch(() => undefined),
    });
    session = opened;
    const marker = await readStartMarker(opened.stdout);
    return { session: opened, ...marker };
  })();
  let started: Awaited<typeof starting>;
  try {
    started = await outcome.startup(starting);
  } catch (error) {
    if (outcome.failed !== undefined) throw outcome.failed;
    if (!lifecycle.isRunning()) throw lifecycle.notFound();
    throw error;
  }
  const { report, ptyPath, stdout } = started;
  const opened = started.session;
  if (report !== 'ok') {
    void stdout.cancel().catch(() => undefined);
    const stderr = new TextDecoder().decode(await readBytes(opened.stderr).catch(() => new Uint8Array()));
    const status = await opened.status;
    opened.close();
    outcome.abandon();
    if (report === 'cwd')
      throw new SandboxInvalidArgumentError({
        message: `The working directory does not exist in sandbox ${pod}`,
        argument: 'cwd',
        provider,
      });
    if (report === 'command')
      throw new SandboxInvalidArgumentError({
        message: `Command not found in sandbox ${pod}: ${request.argv[0]}`,
        argument: 'command',
        provider,
      });
    if (!lifecycle.isRunning()) throw lifecycle.notFound();
    const code = status && parseKubernetesExitStatus(status)?.exitCode;
    throw new SandboxProviderError({
      message:
        pty !== undefined && code === ptyToolsExit
          ? `The command did not start on a terminal in sandbox ${pod}: ${stderr.trim()}`
          : `The command did not start in sandbox ${pod} (does the image have /bin/sh?)${status?.message ? `: ${status.message}` : ''}`,
      provider,
    });
  }
  const process = new KubernetesSandboxProcess(context, outcome, opened, stdout);
  if (pty !== undefined && ptyPath !== undefined) process.resize = (size, options) => resize(context, outcome, ptyPath, size, options);
  outcome.started();
  return process;
}

async function resize(
  context: KubernetesExecContext,
  outcome: ProcessOutcome,
  ptyPath: string,
  size: unknown,
  options: SignalOptions = {},
): Promise<void> {
  const checked = checkPtySize(size, provider);
  options.signal?.throwIfAborted();
  if (outcome.done || !context.lifecycle.isRunning()) return;
  const result = await runPlain(context, resizeArgv(ptyPath, checked), options.signal);
  // A terminal that closed meanwhile went with its command: nothing left to resize.
  if (result.exitCode !== 0 && !outcome.done)
    throw new SandboxProviderError({ message: `Resizing the terminal ${ptyPath} failed: ${result.stderr.trim()}`, provider });
}

/** A command running in a sandbox pod. */
export class KubernetesSandboxProcess implements SandboxProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** Present on a `pty` process only. */
  resize?: (size: PtySize, options?: SignalOptions) => Promise<void>;
  readonly #outcome: ProcessOutcome;

  constructor(context: KubernetesExecContext, outcome: ProcessOutcome, session: ExecSession, stdout: ReadableStream<Uint8Array>) {
    this.#outcome = outcome;
    this.stdout = stdout;
    this.stderr = session.stderr;
    const input = session.stdin.getWriter();
    input.closed.catch(() => undefined);
    // After the exit nothing reads the input: writes and close resolve (an errored stream would
    // make a later close() a raw TypeError).
    this.stdin = new WritableStream<Uint8Array>({
      write: async (chunk) => {
        if (outcome.done) return;
        await input.write(chunk);
      },
      close: async () => {
        if (outcome.done) return;
        await input.close().catch(() => undefined);
      },
      abort: () => input.close().catch(() => undefined),
    });
    void session.status.then(async (status) => {
      const exit = status && parseKubernetesExitStatus(status);
      if (exit) return outcome.exited(exit);
      if (context.lifecycle.isRunning()) await context.settleEnd?.().catch(() => undefined);
      if (!context.lifecycle.isRunning()) outcome.fail(context.lifecycle.notFound());
      else
        outcome.fail(
          new SandboxProviderError({
            message: status
              ? `The exec in sandbox ${context.pod} failed: ${status.message ?? status.reason ?? 'unknown status'}`
              : `The exec stream of sandbox ${context.pod} closed without an exit status (a proxy or idle timeout?)`,
            provider,
            retryable: false,
          }),
        );
      outcome.exited({ exitCode: 137, signal: 'SIGKILL' });
    });
  }

  wait(): Promise<ExitStatus> {
    return this.#outcome.wait();
  }

  kill(signal?: KillSignal): Promise<void> {
    return this.#outcome.kill(signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}
