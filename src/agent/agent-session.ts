import { randomBytes } from 'node:crypto';
import type { Query, SDKUserMessage, SpawnOptions as SdkSpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import { EventEmitter } from 'eventemitter3';
import { SandboxError, SandboxInvalidArgumentError, SandboxTimeoutError } from '../errors/index.js';
import { loadOptionalPeer } from '../kit/optional-peer.js';
import { parseOptions } from '../kit/validate.js';
import type { SignalOptions } from '../spec/options.js';
import type { Sandbox } from '../spec/sandbox.js';
import { AgentSessionError, type AgentErrorReason } from './agent-errors.js';
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
import { AsyncQueue } from './async-queue.js';
import { CredentialProxy } from './credential-proxy.js';
import { SandboxSpawnedProcess } from './sandbox-spawn.js';
import { readSessionFiles, writeSessionFiles } from './session-files.js';
import type { SessionSnapshot, SessionStore } from './session-store.js';

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

interface TurnState {
  index: number;
  prompt: AgentPrompt;
  options: SendOptions;
  queue: AsyncQueue<AgentMessage>;
  resolve: (result: AgentTurnResult) => void;
  reject: (error: unknown) => void;
  savedResolve: () => void;
  savedReject: (error: unknown) => void;
  /** Set when the turn must fail even if the CLI ends it normally (timeout, abort). */
  failure?: unknown;
  timer?: NodeJS.Timeout;
  escalation?: NodeJS.Timeout;
  onAbort?: () => void;
  /** The CLI is done with the turn (result, or the process died). */
  settled: boolean;
  /** The caller was told (result, or an early rejection). */
  notified: boolean;
}

const defaultMaxTurns = 50;
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
  private query!: Query;
  private process: SandboxSpawnedProcess | undefined;
  private pump!: Promise<void>;
  private readonly waiting: TurnState[] = [];
  private active: TurnState | undefined;
  private turnCount = 0;
  private lastReportedCost = 0;
  private totalCost: number;
  private readonly cumulative: AgentUsage = { inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, cacheCreationInputTokens: 0 };
  private dead: AgentSessionError | undefined;
  private closing: Promise<void> | undefined;
  private saving: Promise<void> = Promise.resolve();
  private cliVersion: string | undefined;
  private readonly forkedFrom: string | undefined;

  private constructor(
    sandbox: Sandbox,
    private readonly options: AgentSessionOptions,
    setup: { cwd: string; configDir: string; sessionId?: string; totalCostUsd: number; turns: number; forkedFrom?: string },
  ) {
    this.sandbox = sandbox;
    this.cwd = setup.cwd;
    this.configDir = setup.configDir;
    this.currentSessionId = setup.sessionId;
    this.totalCost = setup.totalCostUsd;
    this.turnCount = setup.turns;
    this.forkedFrom = setup.forkedFrom;
  }

  /**
   * Starts the CLI in `sandbox` and resolves once it answered its initialize request.
   * Throws `SandboxInvalidArgumentError` for a bad option, `AgentSessionError` when the CLI
   * could not start (reason `process-exited`, with its exit code and stderr),
   * `SandboxTimeoutError` after `startTimeoutMs`, and `SandboxCapabilityUnsupportedError`
   * (capability `peer:@anthropic-ai/claude-agent-sdk`) when the Agent SDK is not installed.
   */
  static async start(sandbox: Sandbox, options: AgentSessionOptions = {}): Promise<AgentSession> {
    parseOptions(agentSessionOptionsSchema, options, { what: 'agent session options' });
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
    if (typeof sessionId !== 'string' || sessionId.length === 0) {
      throw new SandboxInvalidArgumentError({ message: 'resume needs the sessionId to continue', argument: 'sessionId' });
    }
    const snapshot = await store.load(sessionId, { signal: rest.signal });
    if (!snapshot) {
      throw new AgentSessionError({ reason: 'session-not-found', message: `No session ${sessionId} in the store`, sessionId });
    }
    return AgentSession.launch(sandbox, { ...rest, store }, { snapshot, fork: fork ?? false });
  }

  private static async launch(
    sandbox: Sandbox,
    options: AgentSessionOptions,
    restore: { snapshot: SessionSnapshot; fork: boolean } | undefined,
  ): Promise<AgentSession> {
    const { signal } = options;
    signal?.throwIfAborted();
    checkCredentials(options);
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
    });
    session.open(sdk, restore ? { sessionId: metadata!.sessionId, fork: restore.fork } : undefined);
    try {
      await session.initialized(options.startTimeoutMs ?? 60_000, signal);
    } catch (error) {
      await session.close().catch(() => undefined);
      throw error;
    }
    return session;
  }

  /** Session id (known once the CLI reported it: after start for resumed sessions, after the first turn's init otherwise). */
  get sessionId(): string | undefined {
    return this.currentSessionId;
  }

  /** Cumulative usage and estimated cost of this session (since this process started, plus stored history's cost). */
  get usage(): AgentUsage & { totalCostUsd: number; turns: number } {
    return { ...this.cumulative, totalCostUsd: this.totalCost, turns: this.turnCount };
  }

  /** True until the CLI exited or `close` was called. */
  get isOpen(): boolean {
    return !this.dead && !this.closing;
  }

  /**
   * Sends a prompt and returns the turn. Turns run one after another in the same CLI process;
   * a `send` during a turn queues. Does not throw: failures reject `turn.result`.
   */
  send(prompt: AgentPrompt, options: SendOptions = {}): AgentTurn {
    const queue = new AsyncQueue<AgentMessage>();
    let resolve!: (result: AgentTurnResult) => void;
    let reject!: (error: unknown) => void;
    const result = new Promise<AgentTurnResult>((res, rej) => ((resolve = res), (reject = rej)));
    let savedResolve!: () => void;
    let savedReject!: (error: unknown) => void;
    const saved = new Promise<void>((res, rej) => ((savedResolve = res), (savedReject = rej)));
    // Callers may read only the messages, or only the result: neither must surface as unhandled.
    result.catch(() => undefined);
    saved.catch(() => undefined);
    const state: TurnState = { index: 0, prompt, options, queue, resolve, reject, savedResolve, savedReject, settled: false, notified: false };
    const turn: AgentTurn = { result, saved, [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator]() };
    const refusal =
      typeof prompt !== 'string' && !Array.isArray(prompt)
        ? new SandboxInvalidArgumentError({ message: 'prompt must be a string or an array of content blocks', argument: 'prompt' })
        : this.dead ?? (this.closing ? this.closedError() : undefined);
    if (refusal) {
      this.settle(state, { error: refusal });
      return turn;
    }
    if (options.signal?.aborted) {
      this.settle(state, { error: options.signal.reason });
      return turn;
    }
    this.waiting.push(state);
    this.next();
    return turn;
  }

  /** Interrupts the running turn; it ends with an error result (reason `interrupted`). Resolves when the CLI accepted. */
  async interrupt(options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (!this.active || this.dead) return;
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
      for (const state of this.waiting.splice(0)) this.settle(state, { error: this.closedError() });
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
      if (this.active) this.settle(this.active, { error: this.closedError() });
      // A last save catches what the CLI wrote after the last result (best effort).
      if (this.options.store && this.currentSessionId && this.dead?.reason !== 'sandbox-ended' && this.turnCount > 0) this.save(undefined);
      await this.saving.catch(() => undefined);
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private closedError(): AgentSessionError {
    return new AgentSessionError({ reason: 'closed', message: 'The agent session was closed', sessionId: this.currentSessionId, provider: this.sandbox.provider });
  }

  private open(sdk: typeof import('@anthropic-ai/claude-agent-sdk'), resume: { sessionId: string; fork: boolean } | undefined): void {
    const options = this.options;
    const permissionMode = options.permissionMode ?? (options.canUseTool ? 'default' : 'bypassPermissions');
    const canUseTool = options.canUseTool;
    this.query = sdk.query({
      prompt: this.input,
      options: {
        pathToClaudeCodeExecutable: options.executable ?? 'claude',
        cwd: this.cwd,
        env: this.cliEnv(),
        model: options.model,
        permissionMode,
        ...(permissionMode === 'bypassPermissions' ? { allowDangerouslySkipPermissions: true } : {}),
        ...(canUseTool
          ? {
              canUseTool: async (toolName, input, context) => {
                const decision = await canUseTool({
                  toolName,
                  input,
                  toolUseId: context.toolUseID,
                  signal: context.signal,
                  decisionReason: context.decisionReason,
                  blockedPath: context.blockedPath,
                  suggestions: context.suggestions,
                });
                return decision.behavior === 'allow'
                  ? { behavior: 'allow', updatedInput: decision.updatedInput ?? input, updatedPermissions: decision.updatedPermissions, toolUseID: context.toolUseID }
                  : { behavior: 'deny', message: decision.message, interrupt: decision.interrupt, toolUseID: context.toolUseID };
              },
            }
          : {}),
        allowedTools: options.allowedTools,
        disallowedTools: options.disallowedTools,
        systemPrompt: options.systemPrompt ?? { type: 'preset', preset: 'claude_code', append: options.appendSystemPrompt },
        mcpServers: options.mcpServers,
        hooks: options.hooks,
        maxTurns: options.maxTurns ?? defaultMaxTurns,
        maxBudgetUsd: options.maxBudgetUsd,
        includePartialMessages: options.includePartialMessages,
        settingSources: [],
        ...(resume ? { resume: resume.sessionId, forkSession: resume.fork } : options.sessionId ? { sessionId: options.sessionId } : {}),
        ...options.sdkOptions,
        spawnClaudeCodeProcess: (spawn: SdkSpawnOptions) => this.spawn(spawn),
      },
    });
    this.pump = this.run();
  }

  private cliEnv(): Record<string, string> {
    const { credentials } = this.options;
    const env: Record<string, string> = {
      CLAUDE_CONFIG_DIR: this.configDir,
      CLAUDE_CODE_TMPDIR: `${this.configDir}/tmp`,
      IS_SANDBOX: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      DISABLE_AUTOUPDATER: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_ERROR_REPORTING: '1',
    };
    if (credentials instanceof CredentialProxy) Object.assign(env, credentials.sandboxEnv(this.sandbox.provider));
    else if (credentials) {
      if (credentials.apiKey) env.ANTHROPIC_API_KEY = credentials.apiKey;
      if (credentials.oauthToken) env.CLAUDE_CODE_OAUTH_TOKEN = credentials.oauthToken;
      if (credentials.authToken) env.ANTHROPIC_AUTH_TOKEN = credentials.authToken;
      if (credentials.baseUrl) env.ANTHROPIC_BASE_URL = credentials.baseUrl;
    }
    return { ...env, ...this.options.env };
  }

  private spawn(spawn: SdkSpawnOptions): SandboxSpawnedProcess {
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(spawn.env)) if (value !== undefined) env[name] = value;
    const process = new SandboxSpawnedProcess(this.sandbox, [spawn.command, ...spawn.args], {
      env,
      cwd: spawn.cwd,
      onStderr: (text) => this.events.emit('stderr', text),
    });
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
          throw this.dead ?? new AgentSessionError({ reason: 'process-exited', message: 'The CLI ended during start', provider: this.sandbox.provider });
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new SandboxTimeoutError({ message: `The CLI did not start within ${timeoutMs} ms`, timeoutMs, operation: 'agent-start', provider: this.sandbox.provider })),
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

  /** Starts the next queued turn when none runs. */
  private next(): void {
    if (this.active || this.dead) return;
    const state = this.waiting.shift();
    if (!state) return;
    if (state.options.signal?.aborted) {
      this.notify(state, { error: state.options.signal.reason });
      return this.next();
    }
    this.active = state;
    state.index = ++this.turnCount;
    const timeoutMs = state.options.timeoutMs ?? this.options.turnTimeoutMs ?? defaultTurnTimeoutMs;
    state.timer = setTimeout(() => {
      state.failure ??= new SandboxTimeoutError({ message: `The agent turn timed out after ${timeoutMs} ms`, timeoutMs, operation: 'agent-turn', provider: this.sandbox.provider });
      this.stopTurn(state);
    }, timeoutMs);
    if (state.options.signal) {
      const signal = state.options.signal;
      state.onAbort = () => {
        state.failure ??= signal.reason;
        this.stopTurn(state);
      };
      signal.addEventListener('abort', state.onAbort, { once: true });
    }
    this.events.emit('turn-start', { turn: state.index, prompt: state.prompt });
    this.input.push({ type: 'user', message: { role: 'user', content: state.prompt }, parent_tool_use_id: null, session_id: this.currentSessionId ?? '' } as SDKUserMessage);
  }

  /**
   * Ends a turn the caller gave up on (abort, timeout): the caller is told at once; the CLI is
   * interrupted and keeps the turn slot until it stops, or is killed if it does not in time.
   */
  private stopTurn(state: TurnState): void {
    if (state.settled || this.active !== state) return;
    this.notify(state, { error: state.failure });
    void this.query.interrupt().catch(() => undefined);
    state.escalation ??= setTimeout(() => this.process?.kill('SIGKILL'), interruptGraceMs);
  }

  /** Reads every message of the CLI and routes it to the active turn. */
  private async run(): Promise<void> {
    let failure: unknown;
    try {
      for await (const message of this.query) {
        if ('session_id' in message && typeof message.session_id === 'string' && message.session_id) this.currentSessionId = message.session_id;
        this.events.emit('message', message);
        const state = this.active;
        if (!state) continue;
        state.queue.push(message);
        if (message.type === 'result') this.finishTurn(state, message);
      }
    } catch (error) {
      failure = error;
    }
    const outcome = this.process ? await Promise.race([this.process.done, delay(1_000).then(() => undefined)]) : undefined;
    this.dead = this.exitError(outcome, failure);
    for (const state of [...(this.active ? [this.active] : []), ...this.waiting.splice(0)]) this.settle(state, { error: state.failure ?? this.dead });
    this.active = undefined;
    if (!this.closing && this.dead.reason !== 'closed') this.events.emit('error', this.dead);
  }

  private exitError(outcome: Awaited<SandboxSpawnedProcess['done']> | undefined, failure: unknown): AgentSessionError {
    const stderrTail = this.process?.stderrTail.trim() || undefined;
    if (outcome?.error !== undefined && SandboxSpawnedProcess.isSandboxGone(outcome.error)) {
      return new AgentSessionError({ reason: 'sandbox-ended', message: `The sandbox ended under the CLI: ${(outcome.error as Error).message}`, cause: outcome.error, stderrTail, sessionId: this.currentSessionId, provider: this.sandbox.provider });
    }
    if (this.closing && (outcome === undefined || outcome.error === undefined)) return this.closedError();
    const exitCode = outcome?.exitCode;
    const signal = outcome?.signal;
    const how = exitCode !== undefined ? `with exit code ${exitCode}` : signal ? `by ${signal}` : 'unexpectedly';
    return new AgentSessionError({
      reason: 'process-exited',
      message: `The claude process ended ${how}${stderrTail ? `: ${lastLines(stderrTail, 5)}` : ''}`,
      cause: outcome?.error ?? failure,
      exitCode,
      stderrTail,
      sessionId: this.currentSessionId,
      provider: this.sandbox.provider,
    });
  }

  private finishTurn(state: TurnState, message: AgentResultMessage): void {
    const reported = message.total_cost_usd ?? 0;
    // Cumulative within one CLI process; a resumed process may restart from zero.
    const costUsd = reported >= this.lastReportedCost ? reported - this.lastReportedCost : reported;
    this.lastReportedCost = reported;
    this.totalCost += costUsd;
    const usage: AgentUsage = {
      inputTokens: message.usage?.input_tokens ?? 0,
      outputTokens: message.usage?.output_tokens ?? 0,
      cacheReadInputTokens: message.usage?.cache_read_input_tokens ?? 0,
      cacheCreationInputTokens: message.usage?.cache_creation_input_tokens ?? 0,
    };
    for (const key of Object.keys(usage) as Array<keyof AgentUsage>) this.cumulative[key] += usage[key];
    const result: AgentTurnResult = {
      sessionId: message.session_id,
      text: 'result' in message ? message.result : (message.errors ?? []).join('\n'),
      isError: message.is_error,
      error: resultError(message, this.sandbox.provider),
      numTurns: message.num_turns,
      durationMs: message.duration_ms,
      costUsd,
      totalCostUsd: this.totalCost,
      usage,
      permissionDenials: (message.permission_denials ?? []).map((denial) => ({ toolName: denial.tool_name, toolUseId: denial.tool_use_id, toolInput: denial.tool_input })),
      message,
    };
    this.save(state);
    this.settle(state, state.failure !== undefined ? { error: state.failure } : { result });
    this.events.emit('turn-end', { turn: state.index, result });
  }

  private settle(state: TurnState, outcome: { result: AgentTurnResult } | { error: unknown }): void {
    this.notify(state, outcome);
    if (state.settled) return;
    state.settled = true;
    clearTimeout(state.timer);
    clearTimeout(state.escalation);
    if (state.onAbort) state.options.signal?.removeEventListener('abort', state.onAbort);
    if (this.active === state) {
      this.active = undefined;
      this.next();
    }
  }

  /** Tells the caller how the turn ended. A turn can be told early (abort, timeout) and still hold the CLI until it stops. */
  private notify(state: TurnState, outcome: { result: AgentTurnResult } | { error: unknown }): void {
    if (state.notified) return;
    state.notified = true;
    if ('result' in outcome) {
      state.queue.end();
      state.resolve(outcome.result);
    } else {
      state.queue.end(outcome.error);
      state.reject(outcome.error);
      state.savedResolve();
    }
  }

  /** Queues a save of the transcript; saves run one at a time, in order. */
  private save(state: TurnState | undefined): void {
    const store = this.options.store;
    const sessionId = this.currentSessionId;
    if (!store || !sessionId) {
      state?.savedResolve();
      return;
    }
    const turns = this.turnCount;
    const totalCostUsd = this.totalCost;
    const attempt = this.saving.catch(() => undefined).then(async () => {
      const found = await readSessionFiles(this.sandbox, this.configDir, sessionId);
      if (!found) return;
      await store.save({
        metadata: { sessionId, cwd: this.cwd, updatedAt: Date.now(), totalCostUsd, turns, ...(this.forkedFrom ? { forkedFrom: this.forkedFrom } : {}), ...(this.cliVersion ? { cliVersion: this.cliVersion } : {}) },
        files: found.files,
      });
      this.events.emit('session-saved', { sessionId, files: found.files.length, bytes: found.files.reduce((sum, file) => sum + file.data.byteLength, 0) });
    });
    this.saving = attempt;
    attempt.then(
      () => state?.savedResolve(),
      (error: unknown) => {
        state?.savedReject(error);
        this.events.emit('error', error);
      },
    );
  }
}

/** The typed error of an error result, or `undefined` for a successful turn. */
function resultError(message: AgentResultMessage, provider: string): AgentSessionError | undefined {
  if (!message.is_error) return undefined;
  const record = message as AgentResultMessage & { api_error_status?: number | null; terminal_reason?: string; errors?: string[]; result?: string };
  let reason: AgentErrorReason;
  if (message.subtype === 'error_max_turns') reason = 'max-turns';
  else if (message.subtype === 'error_max_budget_usd') reason = 'max-budget';
  else if (record.terminal_reason === 'aborted_streaming' || record.terminal_reason === 'aborted_tools' || (record.errors ?? []).some((text) => /interrupt/i.test(text))) reason = 'interrupted';
  else if (message.subtype === 'success') reason = 'api-error';
  else reason = 'execution-error';
  const detail = record.result ?? (record.errors ?? []).join('; ');
  return new AgentSessionError({
    reason,
    message: detail ? `The turn ended with ${reason}: ${detail}` : `The turn ended with ${reason}`,
    apiErrorStatus: record.api_error_status ?? undefined,
    retryable: reason === 'api-error' && (record.api_error_status === 429 || (record.api_error_status ?? 0) >= 500),
    sessionId: message.session_id,
    provider,
  });
}

function checkCredentials(options: AgentSessionOptions): void {
  const { credentials } = options;
  if (!credentials || credentials instanceof CredentialProxy) return;
  if (credentials.exposeToSandbox !== true) {
    throw new SandboxInvalidArgumentError({
      message: 'Credentials passed into the sandbox can be read by the agent: say exposeToSandbox: true, or use a CredentialProxy',
      argument: 'credentials.exposeToSandbox',
    });
  }
  if (![credentials.apiKey, credentials.oauthToken, credentials.authToken].some(Boolean)) {
    throw new SandboxInvalidArgumentError({ message: 'credentials need one of apiKey, oauthToken, authToken', argument: 'credentials' });
  }
}

/** A missing SDK is `SandboxCapabilityUnsupportedError` (`peer:@anthropic-ai/claude-agent-sdk`), not a protocol failure. */
function loadSdk(): Promise<typeof import('@anthropic-ai/claude-agent-sdk')> {
  return loadOptionalPeer('@anthropic-ai/claude-agent-sdk', { neededBy: 'AgentSession', load: () => import('@anthropic-ai/claude-agent-sdk') });
}

/** Creates the config and working directories in one exec and resolves the absolute cwd. */
async function prepareDirectories(sandbox: Sandbox, configDir: string, cwd: string | undefined, signal: AbortSignal | undefined): Promise<string> {
  const script = 'set -e; mkdir -p "$1/tmp"; if [ -n "$2" ]; then mkdir -p "$2"; cd "$2"; fi; pwd -P';
  const result = await sandbox.run(['/bin/sh', '-c', script, 'sandport-agent', configDir, cwd ?? ''], { signal, timeoutMs: 60_000 });
  if (result.exitCode !== 0) {
    throw new SandboxInvalidArgumentError({ message: `Could not prepare ${configDir} and ${cwd ?? 'the working directory'} in sandbox ${sandbox.id}: ${result.stderr.trim()}`, argument: cwd ? 'cwd' : 'configDir', provider: sandbox.provider });
  }
  return cwd ?? result.stdout.trim();
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

function lastLines(text: string, count: number): string {
  return text.split('\n').slice(-count).join(' | ');
}
