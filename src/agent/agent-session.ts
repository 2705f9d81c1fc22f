import { randomBytes } from 'node:crypto';
import type { Query, SDKUserMessage, SpawnOptions as SdkSpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import { EventEmitter } from 'eventemitter3';
import { SandboxError, SandboxInvalidArgumentError, SandboxTimeoutError } from '../errors/index.js';
import { parseOptions } from '../kit/validate.js';
import type { SignalOptions } from '../spec/options.js';
import type { Sandbox } from '../spec/sandbox.js';
import { checkCredentials, cliEnv, loadSdk, prepareDirectories } from './agent-env.js';
import { AgentSessionError } from './agent-errors.js';
import {
  agentSessionOptionsSchema,
  type AgentMessage,
  type AgentResultMessage,
  type AgentSessionOptions,
  type AgentTurnResult,
  type AgentUsage,
  type ResumeAgentSessionOptions,
  type SendOptions,
} from './agent-options.js';
import { closedError, exitError, finishTurn, startLedger, type TurnLedger } from './agent-results.js';
import { toSdkOptions } from './agent-sdk-options.js';
import { TurnQueue, type ActiveTurn } from './agent-turns.js';
import { AsyncQueue } from './async-queue.js';
import { SandboxSpawnedProcess } from './sandbox-spawn.js';
import { AgentHostConnection, type AgentHostTarget } from './host/agent-host-connection.js';
import { refuseSessionOverExec } from './host/exec-carriage.js';
import { readSessionFiles, writeSessionFiles } from './session-files.js';
import type { SessionSnapshot, SessionStore } from './session-store.js';

/**
 * Options of `AgentSession.connect`: the agent host's port and token, and either a new agent
 * (every `AgentSessionOptions` applies) or `attach` to one that is running there.
 */
export interface ConnectAgentSessionOptions extends AgentSessionOptions {
  /** Sandbox port the agent host listens on (`startAgentHost`); reached through `sandbox.tunnels()`. */
  port: number;
  /** The host's token. */
  token: string;
  /** The host's address instead of the port's tunnel (`ws://…`, `wss://…`, `http(s)://…`). @default the tunnel of `port` */
  url?: string;
  /** Id to give a new agent on the host. @default a random UUID */
  agentId?: string;
  /**
   * Re-attach to a running agent instead of starting one: its id, and the transcript position
   * after which to receive its messages (a former session's `cursor`). Without `cursor`: from
   * the start of the running turn, or from now when it is idle. Credentials, cwd and the CLI's
   * options are the running agent's; the new session reports `usage` from the attach on.
   */
  attach?: string | { agent: string; cursor?: number };
  /**
   * Start the new agent from a stored session instead of a blank one, as `AgentSession.resume`
   * does (needs `store`): the transcript is written into the sandbox and the CLI continues it,
   * under the same id unless `fork`. Not with `attach`.
   */
  resume?: { sessionId: string; fork?: boolean };
}

/** A prompt: text, or Messages API content blocks (text, image, document). */
export type AgentPrompt = string | Extract<SDKUserMessage['message']['content'], unknown[]>;

export interface AgentSessionEvents {
  /** Every message the CLI sends, in order, whether or not a turn is reading them. */
  message: [message: AgentMessage];
  'turn-start': [event: { turn: number; prompt: AgentPrompt }];
  'turn-end': [event: { turn: number; result: AgentTurnResult }];
  /** The session was saved to its store (after every turn, and on close). */
  'session-saved': [event: { sessionId: string; files: number; bytes: number }];
  /** Text the CLI wrote to stderr. */
  stderr: [text: string];
  /** The CLI process ended. */
  exit: [event: { exitCode: number | undefined; signal: string | undefined }];
  /** A failure with no caller to reject: a failed background save, a dead process between turns. */
  error: [error: unknown];
}

/**
 * One turn: iterate it for its messages as they arrive (the iteration ends after the `result`
 * message), and/or await `result`. Messages are buffered, so iterating late loses nothing.
 */
export interface AgentTurn extends AsyncIterable<AgentMessage> {
  /**
   * Resolves with the turn's result, including error results (`isError`, typed `error`).
   * Rejects with `AgentSessionError` when the CLI or the sandbox died (reason `process-exited`
   * or `sandbox-ended`, with `exitCode` and `stderrTail`) or the session was closed (`closed`),
   * with `SandboxTimeoutError` when the turn timed out, and with `signal.reason` when its
   * signal aborted.
   */
  readonly result: Promise<AgentTurnResult>;
  /** Resolves when the session was saved after this turn (at once without a store). */
  readonly saved: Promise<void>;
}

const defaultTurnTimeoutMs = 30 * 60_000;
const interruptGraceMs = 5_000;

/**
 * Runs the Claude Code CLI inside a sandbox and talks to it over stream-json on the exec's
 * stdin/stdout (no TTY, no port). The Agent SDK (`@anthropic-ai/claude-agent-sdk`, an optional
 * peer dependency) is the protocol engine; AgentSession supplies the process, credentials,
 * persistence and lifecycle.
 *
 * @example
 * await using agent = await AgentSession.start(sandbox, { credentials: proxy, store });
 * const turn = agent.send('Write a haiku to haiku.txt');
 * for await (const message of turn) console.log(message.type);
 * const { text, costUsd } = await turn.result;
 */
export class AgentSession implements AsyncDisposable {
  /** Events of this session (eventemitter3; listeners run synchronously). */
  readonly events = new EventEmitter<AgentSessionEvents>();
  /** The sandbox the CLI runs in. */
  readonly sandbox: Sandbox;
  /** The CLI's working directory inside the sandbox. */
  readonly cwd: string;
  /** The CLI's config directory inside the sandbox. */
  readonly configDir: string;
  private currentSessionId: string | undefined;
  private readonly input = new AsyncQueue<SDKUserMessage>();
  private readonly turns: TurnQueue<AgentPrompt, AgentMessage, AgentTurnResult>;
  private ledger: TurnLedger;
  private query!: Query;
  private process: SandboxSpawnedProcess | AgentHostConnection | undefined;
  private readonly host: { target: Omit<AgentHostTarget, 'hello'>; agentId?: string; connection?: AgentHostConnection } | undefined;
  private adopting = false;
  /** Holds back the messages a re-attach replays until `connect` has returned, so listeners added right after it see them. */
  private released: Promise<void> = Promise.resolve();
  private position = 0;
  /** The turn that was running in the agent host when this session attached to it. */
  private adoptedTurn: AgentTurn | undefined;
  private pump!: Promise<void>;
  private dead: AgentSessionError | undefined;
  private closing: Promise<void> | undefined;
  private saving: Promise<void> = Promise.resolve();
  private cliVersion: string | undefined;
  private readonly forkedFrom: string | undefined;

  private constructor(
    sandbox: Sandbox,
    private readonly options: AgentSessionOptions,
    setup: {
      cwd: string;
      configDir: string;
      sessionId?: string;
      totalCostUsd: number;
      turns: number;
      forkedFrom?: string;
      host?: { target: Omit<AgentHostTarget, 'hello'>; agentId?: string; connection?: AgentHostConnection };
    },
  ) {
    this.host = setup.host;
    this.sandbox = sandbox;
    this.cwd = setup.cwd;
    this.configDir = setup.configDir;
    this.currentSessionId = setup.sessionId;
    this.ledger = startLedger(setup.totalCostUsd);
    this.forkedFrom = setup.forkedFrom;
    this.turns = new TurnQueue({
      defaultTimeoutMs: options.turnTimeoutMs ?? defaultTurnTimeoutMs,
      interruptGraceMs,
      turns: setup.turns,
      provider: sandbox.provider,
      start: (turn) => this.startTurn(turn),
      interrupt: () => void this.query.interrupt().catch(() => undefined),
      kill: () => this.process?.kill('SIGKILL'),
    });
  }

  /**
   * Starts the CLI in `sandbox` and resolves once it answered its initialize request.
   * Throws `SandboxInvalidArgumentError` for a bad option, `AgentSessionError` when the CLI
   * could not start (reason `process-exited`, with its exit code and stderr),
   * `SandboxTimeoutError` after `startTimeoutMs`, and `SandboxCapabilityUnsupportedError`
   * (capability `peer:@anthropic-ai/claude-agent-sdk`) when the Agent SDK is not installed, or
   * (capability `exec.stdin` / `exec.streaming`, before any I/O) when the sandbox's exec cannot
   * carry the CLI's session (Fly, Cloudflare): the message names `startAgentHost` and
   * `AgentSession.connect`, which can.
   */
  static async start(sandbox: Sandbox, options: AgentSessionOptions = {}): Promise<AgentSession> {
    parseOptions(agentSessionOptionsSchema, options, { what: 'agent session options' });
    refuseSessionOverExec(sandbox);
    return AgentSession.launch(sandbox, options, undefined);
  }

  /**
   * Continues a stored session in a (possibly new, possibly other provider's) sandbox: the
   * transcript and its side files are written under the new session's config directory and the
   * CLI resumes them. The same session id is kept, unless `fork` gives a new one.
   * Throws `AgentSessionError` (reason `session-not-found`) when the store has no such session.
   */
  static async resume(sandbox: Sandbox, options: ResumeAgentSessionOptions): Promise<AgentSession> {
    const { sessionId, store, fork, ...rest } = options ?? ({} as ResumeAgentSessionOptions);
    parseOptions(agentSessionOptionsSchema, { ...rest, store }, { what: 'agent session options' });
    refuseSessionOverExec(sandbox);
    const snapshot = await AgentSession.stored(sessionId, store, rest.signal);
    return AgentSession.launch(sandbox, { ...rest, store }, { snapshot, fork: fork ?? false });
  }

  private static async stored(
    sessionId: unknown,
    store: SessionStore | undefined,
    signal: AbortSignal | undefined,
  ): Promise<SessionSnapshot> {
    if (typeof sessionId !== 'string' || sessionId.length === 0) {
      throw new SandboxInvalidArgumentError({ message: 'resume needs the sessionId to continue', argument: 'sessionId' });
    }
    if (!store) throw new SandboxInvalidArgumentError({ message: 'resume needs the store the session was saved to', argument: 'store' });
    const snapshot = await store.load(sessionId, { signal });
    if (!snapshot) {
      throw new AgentSessionError({ reason: 'session-not-found', message: `No session ${sessionId} in the store`, sessionId });
    }
    return snapshot;
  }

  private static async launch(
    sandbox: Sandbox,
    options: AgentSessionOptions,
    restore: { snapshot: SessionSnapshot; fork: boolean } | undefined,
    host?: { target: Omit<AgentHostTarget, 'hello'>; agentId?: string },
  ): Promise<AgentSession> {
    const { signal } = options;
    signal?.throwIfAborted();
    checkCredentials(options.credentials);
    const sdk = options.sdk ?? (await loadSdk());
    const configDir = options.configDir ?? `/tmp/sandport-agents/${randomBytes(6).toString('hex')}`;
    const cwd = await prepareDirectories(sandbox, configDir, options.cwd, signal);
    if (restore) await writeSessionFiles(sandbox, configDir, cwd, restore.snapshot.files, signal);
    const metadata = restore?.snapshot.metadata;
    const session = new AgentSession(sandbox, options, {
      cwd,
      configDir,
      sessionId: restore && !restore.fork ? metadata!.sessionId : options.sessionId,
      totalCostUsd: metadata?.totalCostUsd ?? 0,
      turns: restore && !restore.fork ? metadata!.turns : 0,
      forkedFrom: restore?.fork ? metadata!.sessionId : undefined,
      host,
    });
    session.open(sdk, restore ? { sessionId: metadata!.sessionId, fork: restore.fork } : undefined);
    try {
      await session.initialized(options.startTimeoutMs ?? 60_000, signal);
    } catch (error) {
      await session.close().catch(() => undefined);
      throw session.hostOpenError() ?? error;
    }
    return session;
  }

  /**
   * Starts an agent in the agent host that runs in `sandbox` (`startAgentHost`), or with
   * `attach` re-attaches to one that kept running there (after the app restarted, say), over
   * one WebSocket through the tunnel of `port`. The session has the same API as one from
   * `start`; `agentId` and `cursor` say where to re-attach later, `attachedTurn` is the turn
   * that was running at attach, and `detach()` leaves the agent running. `close()` ends it.
   * Messages a re-attach replays are emitted (`events` 'message') only after this resolved, so
   * listeners added right after the `await` see every one.
   * Throws what `start` throws, `SandboxAuthenticationError` when the host refused the token,
   * `SandboxInvalidArgumentError` (argument `port`) when the port has no tunnel, and
   * `AgentSessionError` (reason `session-not-found`) when the host has no agent `attach` or
   * the store no session `resume`. Works where `start` is refused (Fly, Cloudflare): only the
   * host's start goes through exec.
   */
  static async connect(sandbox: Sandbox, options: ConnectAgentSessionOptions): Promise<AgentSession> {
    const { port, token, url, agentId, attach, resume, ...rest } = options ?? ({} as ConnectAgentSessionOptions);
    parseOptions(agentSessionOptionsSchema, rest, { what: 'agent session options' });
    if (!Number.isInteger(port) || port < 1 || port > 65_535)
      throw new SandboxInvalidArgumentError({ message: `port must be an integer 1-65535, got ${String(port)}`, argument: 'port' });
    if (typeof token !== 'string' || token.length === 0)
      throw new SandboxInvalidArgumentError({ message: 'token must be the agent host token', argument: 'token' });
    if (resume !== undefined && attach !== undefined)
      throw new SandboxInvalidArgumentError({ message: 'resume starts a new agent: it cannot go with attach', argument: 'resume' });
    const target = {
      url: toWebSocketUrl(url ?? (await sandbox.tunnels({ signal: rest.signal }))[port]?.url, port),
      token,
      provider: sandbox.provider,
      timeoutMs: rest.startTimeoutMs ?? 60_000,
      signal: rest.signal,
    };
    if (resume !== undefined) {
      const snapshot = await AgentSession.stored(resume?.sessionId, rest.store, rest.signal);
      return AgentSession.launch(sandbox, rest, { snapshot, fork: resume.fork ?? false }, { target, agentId });
    }
    if (attach === undefined) return AgentSession.launch(sandbox, rest, undefined, { target, agentId });
    return AgentSession.reattach(sandbox, rest, target, typeof attach === 'string' ? { agent: attach } : attach);
  }

  private static async reattach(
    sandbox: Sandbox,
    options: AgentSessionOptions,
    target: Omit<AgentHostTarget, 'hello'>,
    attach: { agent: string; cursor?: number },
  ): Promise<AgentSession> {
    let session: AgentSession | undefined;
    const connection = new AgentHostConnection({ ...target, hello: { type: 'attach', ...attach } }, (text) =>
      session?.events.emit('stderr', text),
    );
    const hello = await connection.ready;
    if (hello.type !== 'attached')
      throw new AgentSessionError({ reason: 'protocol', message: 'The agent host did not attach', provider: sandbox.provider });
    const sdk = options.sdk ?? (await loadSdk());
    session = new AgentSession(sandbox, options, {
      cwd: hello.cwd ?? options.cwd ?? '/',
      configDir: hello.configDir ?? options.configDir ?? '',
      sessionId: hello.sessionId,
      totalCostUsd: 0,
      turns: 0,
      host: { target, agentId: hello.agent, connection },
    });
    // The running turn is adopted before the first replayed message can be routed.
    if (hello.busy) session.adoptedTurn = session.adopt(hello.prompt as AgentPrompt | undefined);
    let release!: () => void;
    session.released = new Promise((resolve) => (release = resolve));
    session.open(sdk, undefined);
    try {
      await session.initialized(options.startTimeoutMs ?? 60_000, options.signal);
    } catch (error) {
      release();
      connection.detach();
      throw error;
    }
    // After the caller's continuation (a microtask) has run, not before.
    setImmediate(release);
    return session;
  }

  /** The agent's id in the agent host (sessions from `connect`); `undefined` for `start` and `resume`. */
  get agentId(): string | undefined {
    return this.process instanceof AgentHostConnection ? this.process.agent : this.host?.agentId;
  }

  /**
   * Transcript position of the latest message this session emitted (sessions from `connect`):
   * pass it as `attach.cursor` to continue after it with nothing lost or repeated. 0 otherwise.
   */
  get cursor(): number {
    return this.position;
  }

  /** The turn that was running in the agent host when this session attached (`connect` with `attach`). */
  get attachedTurn(): AgentTurn | undefined {
    return this.adoptedTurn;
  }

  /**
   * Leaves the agent running in the agent host and drops this session's connection (sessions
   * from `connect`; a `start`ed session is closed instead). Turns in flight reject with reason
   * `closed`. Idempotent.
   */
  async detach(): Promise<void> {
    if (!(this.process instanceof AgentHostConnection)) return this.close();
    this.closing ??= (async () => {
      const process = this.process as AgentHostConnection;
      process.detach();
      await settlesWithin(process.done, 5_000);
      await settlesWithin(this.pump, 5_000);
      this.turns.cancelWaiting(this.closedError());
      this.turns.cancelActive(this.closedError());
    })();
    return this.closing;
  }

  private adopt(prompt: AgentPrompt | undefined): AgentTurn {
    this.adopting = true;
    return this.turns.enqueue(prompt ?? '', {});
  }

  private hostOpenError(): unknown {
    return this.process instanceof AgentHostConnection ? this.process.openError : undefined;
  }

  /** Session id (known once the CLI reported it: after start for resumed sessions, after the first turn's init otherwise). */
  get sessionId(): string | undefined {
    return this.currentSessionId;
  }

  /** Cumulative usage and estimated cost of this session (since this process started, plus stored history's cost). */
  get usage(): AgentUsage & { totalCostUsd: number; turns: number } {
    return { ...this.ledger.usage, totalCostUsd: this.ledger.totalCostUsd, turns: this.turns.count };
  }

  /** True until the CLI exited or `close` was called. */
  get isOpen(): boolean {
    return !this.dead && !this.closing;
  }

  /**
   * Sends a prompt and returns the turn. Turns run one after another in the same CLI process;
   * a `send` during a turn queues; a queued turn whose signal aborts is rejected at once and
   * never runs. Does not throw: failures reject `turn.result`.
   */
  send(prompt: AgentPrompt, options: SendOptions = {}): AgentTurn {
    const refusal =
      typeof prompt !== 'string' && !Array.isArray(prompt)
        ? new SandboxInvalidArgumentError({ message: 'prompt must be a string or an array of content blocks', argument: 'prompt' })
        : (this.dead ?? (this.closing ? this.closedError() : undefined));
    return this.turns.enqueue(prompt, { signal: options.signal, timeoutMs: options.timeoutMs, refusal });
  }

  /** Interrupts the running turn; it ends with an error result (reason `interrupted`). Resolves when the CLI accepted. */
  async interrupt(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (!this.turns.active || this.dead) return;
    await this.query.interrupt();
  }

  /** Waits for every save started so far. Rejects with the first failed save's error. */
  async flush(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    await this.saving;
  }

  /**
   * Ends the session: stdin EOF, then SIGTERM after `closeGraceMs`, then SIGKILL after another
   * `closeGraceMs`; a running turn rejects with reason `closed` unless it finishes first. Saves
   * a last time when there is a store. Idempotent; never rejects for a process that misbehaves.
   */
  close(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    this.closing ??= (async () => {
      const grace = this.options.closeGraceMs ?? 2_000;
      this.turns.cancelWaiting(this.closedError());
      this.input.end();
      const process = this.process;
      if (process) {
        if (!(await settlesWithin(process.done, grace))) {
          process.kill('SIGTERM');
          if (!(await settlesWithin(process.done, grace))) {
            process.kill('SIGKILL');
            await settlesWithin(process.done, 10_000);
          }
        }
      }
      await settlesWithin(this.pump, 5_000);
      this.turns.cancelActive(this.closedError());
      // A last save catches what the CLI wrote after the last result (best effort).
      if (this.options.store && this.currentSessionId && this.dead?.reason !== 'sandbox-ended' && this.turns.count > 0)
        this.save(undefined);
      await this.saving.catch(() => undefined);
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private closedError(): AgentSessionError {
    return closedError(this.currentSessionId, this.sandbox.provider);
  }

  private open(sdk: typeof import('@anthropic-ai/claude-agent-sdk'), resume: { sessionId: string; fork: boolean } | undefined): void {
    const { credentials, env } = this.options;
    this.query = sdk.query({
      prompt: this.input,
      options: toSdkOptions(this.options, {
        cwd: this.cwd,
        env: cliEnv({ configDir: this.configDir, providerId: this.sandbox.provider, sandbox: this.sandbox, credentials, env }),
        resume,
        spawn: (spawn) => this.spawn(spawn),
      }),
    });
    this.pump = this.run();
  }

  private spawn(spawn: SdkSpawnOptions): SandboxSpawnedProcess | AgentHostConnection {
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(spawn.env)) if (value !== undefined) env[name] = value;
    const onStderr = (text: string) => this.events.emit('stderr', text);
    const host = this.host;
    const process = !host
      ? new SandboxSpawnedProcess(this.sandbox, [spawn.command, ...spawn.args], { env, cwd: spawn.cwd, onStderr })
      : // A re-attached agent already runs: the SDK's argv is its own, and is not used.
        (host.connection ??
        new AgentHostConnection(
          {
            ...host.target,
            hello: {
              type: 'start',
              agent: host.agentId,
              command: spawn.command,
              args: spawn.args,
              env,
              ...(spawn.cwd ? { cwd: spawn.cwd } : {}),
            },
          },
          onStderr,
        ));
    this.process = process;
    // The SDK aborts this signal after its own stdin-EOF grace; escalate from there.
    spawn.signal.addEventListener('abort', () => process.kill('SIGTERM'), { once: true });
    void process.done.then(({ exitCode, signal }) => this.events.emit('exit', { exitCode, signal }));
    return process;
  }

  private async initialized(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      const result = await Promise.race([
        this.query.initializationResult(),
        this.pump.then(() => {
          throw (
            this.dead ??
            new AgentSessionError({ reason: 'process-exited', message: 'The CLI ended during start', provider: this.sandbox.provider })
          );
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new SandboxTimeoutError({
                  message: `The CLI did not start within ${timeoutMs} ms`,
                  timeoutMs,
                  operation: 'agent-start',
                  provider: this.sandbox.provider,
                }),
              ),
            timeoutMs,
          );
          onAbort = () => reject(signal!.reason);
          signal?.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      this.cliVersion = (result as { claude_code_version?: string }).claude_code_version;
    } catch (error) {
      // The SDK reports a dead process as a plain Error; ours carries the exit code and stderr.
      if (!SandboxError.isInstance(error) && !signal?.aborted) {
        await settlesWithin(this.pump, 2_000);
        throw this.dead ?? error;
      }
      throw error;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  private startTurn(turn: ActiveTurn<AgentPrompt, AgentMessage>): void {
    this.events.emit('turn-start', { turn: turn.index, prompt: turn.prompt });
    if (this.adopting) {
      // Its prompt reached the CLI from the session that sent it.
      this.adopting = false;
      return;
    }
    this.input.push({
      type: 'user',
      message: { role: 'user', content: turn.prompt },
      parent_tool_use_id: null,
      session_id: this.currentSessionId ?? '',
    } as SDKUserMessage);
  }

  /** Reads every message of the CLI and routes it to the active turn. */
  private async run(): Promise<void> {
    let failure: unknown;
    try {
      await this.released;
      for await (const message of this.query) {
        if ('session_id' in message && typeof message.session_id === 'string' && message.session_id)
          this.currentSessionId = message.session_id;
        if (this.process instanceof AgentHostConnection) this.position = this.process.consumed(message);
        this.events.emit('message', message);
        const turn = this.turns.active;
        if (!turn) continue;
        turn.push(message);
        if (message.type === 'result') this.endTurn(turn, message);
      }
    } catch (error) {
      failure = error;
    }
    const outcome = this.process ? await Promise.race([this.process.done, delay(1_000).then(() => undefined)]) : undefined;
    const stderrTail = this.process?.stderrTail.trim() || undefined;
    this.dead = exitError({
      outcome,
      failure,
      stderrTail,
      closing: this.closing !== undefined,
      sessionId: this.currentSessionId,
      provider: this.sandbox.provider,
    });
    this.turns.halt(this.dead);
    if (!this.closing && this.dead.reason !== 'closed') this.events.emit('error', this.dead);
  }

  private endTurn(turn: ActiveTurn<AgentPrompt, AgentMessage>, message: AgentResultMessage): void {
    const { result, ledger } = finishTurn(this.ledger, message, this.sandbox.provider);
    this.ledger = ledger;
    this.save(turn);
    this.turns.complete(turn, result);
    this.events.emit('turn-end', { turn: turn.index, result });
  }

  /** Queues a save of the transcript; saves run one at a time, in order. */
  private save(turn: ActiveTurn<AgentPrompt, AgentMessage> | undefined): void {
    const store = this.options.store;
    const sessionId = this.currentSessionId;
    if (!store || !sessionId) {
      turn?.savedResolve();
      return;
    }
    const turns = this.turns.count;
    const totalCostUsd = this.ledger.totalCostUsd;
    const attempt = this.saving
      .catch(() => undefined)
      .then(async () => {
        const found = await readSessionFiles(this.sandbox, this.configDir, sessionId);
        if (!found) return;
        await store.save({
          metadata: {
            sessionId,
            cwd: this.cwd,
            updatedAt: Date.now(),
            totalCostUsd,
            turns,
            ...(this.forkedFrom ? { forkedFrom: this.forkedFrom } : {}),
            ...(this.cliVersion ? { cliVersion: this.cliVersion } : {}),
          },
          files: found.files,
        });
        this.events.emit('session-saved', {
          sessionId,
          files: found.files.length,
          bytes: found.files.reduce((sum, file) => sum + file.data.byteLength, 0),
        });
      });
    this.saving = attempt;
    attempt.then(
      () => turn?.savedResolve(),
      (error: unknown) => {
        turn?.savedReject(error);
        this.events.emit('error', error);
      },
    );
  }
}

function toWebSocketUrl(url: string | undefined, port: number): string {
  if (!url)
    throw new SandboxInvalidArgumentError({
      message: `port ${port} has no tunnel: declare it in the create options' ports, or pass url`,
      argument: 'port',
    });
  return url.replace(/^http(s?):/, 'ws$1:');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return settled;
}
