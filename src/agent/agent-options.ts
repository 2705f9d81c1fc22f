import type {
  HookCallbackMatcher,
  HookEvent,
  McpServerConfig,
  Options as SdkOptions,
  PermissionMode,
  PermissionResult,
  PermissionUpdate,
  SDKMessage,
  SDKResultMessage,
} from '@anthropic-ai/claude-agent-sdk';
import { z } from 'zod';
import { sandboxPathSchema } from '../spec/options.js';
import type { CredentialProxy } from './credential-proxy.js';
import type { SessionStore } from './session-store.js';

/** A message of the CLI's stream-json output, typed by the Agent SDK. */
export type AgentMessage = SDKMessage;
export type AgentResultMessage = SDKResultMessage;
export type { McpServerConfig, PermissionMode, PermissionResult };

/** What the permission callback is told about a tool use. */
export interface ToolUseRequest {
  /** Tool name: `Bash`, `Write`, `mcp__<server>__<tool>`, … */
  readonly toolName: string;
  /** The tool's input as the model wrote it. */
  readonly input: Record<string, unknown>;
  readonly toolUseId: string;
  /** Aborted when the CLI withdraws the request (interrupt, close). */
  readonly signal: AbortSignal;
  /** The CLI's reason for asking, when it gave one (`'Path is outside allowed working directories'`). */
  readonly decisionReason?: string;
  /** Path that triggered the request, when one did. */
  readonly blockedPath?: string;
  /** Permission updates that would stop the CLI asking again; return them as `updatedPermissions` to apply them. */
  readonly suggestions?: readonly PermissionUpdate[];
}

/**
 * The app's answer for one tool use: `{ behavior: 'allow' }` (optionally with `updatedInput`),
 * or `{ behavior: 'deny', message }`, which the model receives as the tool's error result
 * (`interrupt: true` also ends the turn).
 */
export type ToolUseDecision =
  | { behavior: 'allow'; updatedInput?: Record<string, unknown>; updatedPermissions?: PermissionUpdate[] }
  | { behavior: 'deny'; message: string; interrupt?: boolean };

export type ToolPermissionCallback = (request: ToolUseRequest) => ToolUseDecision | Promise<ToolUseDecision>;

/**
 * Credentials passed straight into the CLI's environment inside the sandbox. The agent's own
 * tools (Bash) can read them: prefer a `CredentialProxy`. `exposeToSandbox: true` is required
 * to say so.
 */
export interface SandboxEnvCredentials {
  apiKey?: string;
  oauthToken?: string;
  authToken?: string;
  baseUrl?: string;
  exposeToSandbox: true;
}

export type AgentCredentials = CredentialProxy | SandboxEnvCredentials;

export interface AgentSessionOptions {
  /**
   * Working directory of the agent inside the sandbox; created when missing.
   * @default the sandbox's default working directory
   */
  cwd?: string;
  /**
   * The CLI's config directory inside the sandbox (`CLAUDE_CONFIG_DIR`): settings, transcripts.
   * Each session gets its own so that agents sharing a sandbox never touch each other's files.
   * @default `/tmp/sandport-agents/<random id>`
   */
  configDir?: string;
  /** The `claude` program inside the sandbox (see `ensureClaudeCode`, `claudeCodeHostMount`). @default 'claude' */
  executable?: string;
  /**
   * How the CLI authenticates. A `CredentialProxy` keeps the real credential on the host (the
   * sandbox must have been created with `proxy.createOptions(provider)`). Omitted: the
   * sandbox's own environment or files must provide credentials.
   */
  credentials?: AgentCredentials;
  /** Extra environment of the CLI (and of the tools it runs). Applied last. */
  env?: Record<string, string>;
  /** Model id or alias (`'sonnet'`, `'claude-sonnet-4-5'`). @default the CLI's default */
  model?: string;
  /**
   * How tool uses are approved. @default `'default'` when `canUseTool` is set (every tool use
   * that needs approval goes to the callback), else `'bypassPermissions'` (the sandbox is the
   * boundary; `IS_SANDBOX=1` is set so that this works as root).
   */
  permissionMode?: PermissionMode;
  /** Decides each tool use that needs approval. Its denial message reaches the model. */
  canUseTool?: ToolPermissionCallback;
  /** Tools allowed without asking, in CLI rule syntax (`'Read'`, `'Bash(git:*)'`). */
  allowedTools?: string[];
  /** Tools the model may not use at all. */
  disallowedTools?: string[];
  /** Replaces Claude Code's system prompt. */
  systemPrompt?: string;
  /** Appended to Claude Code's system prompt (ignored with `systemPrompt`). */
  appendSystemPrompt?: string;
  /**
   * MCP servers. `stdio`/`http`/`sse` servers are started or reached by the CLI inside the
   * sandbox; `createSdkMcpServer(...)` servers run in this host process (host-side tools).
   */
  mcpServers?: Record<string, McpServerConfig>;
  /** Hook callbacks, run in this host process. */
  hooks?: Partial<Record<HookEvent, HookCallbackMatcher[]>>;
  /** Model round trips per turn before it ends with `max-turns`. @default 50 */
  maxTurns?: number;
  /** Spend limit in US dollars for this process's turns; the turn ends with `max-budget`. */
  maxBudgetUsd?: number;
  /** Limit of one turn; the turn is interrupted and `result` rejects with `SandboxTimeoutError`. @default 1_800_000 (30 minutes) */
  turnTimeoutMs?: number;
  /** Limit for the CLI to start and answer its initialize request. @default 60_000 */
  startTimeoutMs?: number;
  /** After stdin EOF (and again after SIGTERM), how long `close` waits before the next escalation. @default 2_000 */
  closeGraceMs?: number;
  /** Emit partial assistant messages (`stream_event`) as the model streams. @default false */
  includePartialMessages?: boolean;
  /** Saves the transcript after every turn, so that `AgentSession.resume` can continue it anywhere. */
  store?: SessionStore;
  /** Session id for a new session (a UUID). @default chosen by the CLI */
  sessionId?: string;
  /**
   * Further Agent SDK options, applied last (escape hatch). `spawnClaudeCodeProcess`, `env`,
   * `cwd`, `pathToClaudeCodeExecutable`, `resume` and `abortController` are AgentSession's.
   */
  sdkOptions?: Omit<SdkOptions, 'spawnClaudeCodeProcess' | 'env' | 'cwd' | 'pathToClaudeCodeExecutable' | 'resume' | 'abortController'>;
  /** The `@anthropic-ai/claude-agent-sdk` module, when the app loads it itself (bundlers). @default `import('@anthropic-ai/claude-agent-sdk')` */
  sdk?: typeof import('@anthropic-ai/claude-agent-sdk');
  signal?: AbortSignal;
}

const envSchema = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'environment variable names are letters, digits and _' }),
  z.string(),
);
const toolList = z.array(z.string().min(1));

/** Validates the plain-data part of the options; callbacks and objects are checked by shape only. */
export const agentSessionOptionsSchema = z
  .object({
    cwd: sandboxPathSchema.optional(),
    configDir: sandboxPathSchema.optional(),
    executable: z.string().min(1).optional(),
    credentials: z.custom<AgentCredentials>((value) => typeof value === 'object' && value !== null).optional(),
    env: envSchema.optional(),
    model: z.string().min(1).optional(),
    permissionMode: z.enum(['default', 'acceptEdits', 'bypassPermissions', 'plan', 'dontAsk', 'auto']).optional(),
    canUseTool: z.custom<ToolPermissionCallback>((value) => typeof value === 'function', { message: 'must be a function' }).optional(),
    allowedTools: toolList.optional(),
    disallowedTools: toolList.optional(),
    systemPrompt: z.string().optional(),
    appendSystemPrompt: z.string().optional(),
    mcpServers: z
      .record(
        z.string().min(1),
        z.custom<McpServerConfig>((value) => typeof value === 'object' && value !== null),
      )
      .optional(),
    hooks: z.record(z.string(), z.array(z.custom<HookCallbackMatcher>())).optional(),
    maxTurns: z.number().int().positive().optional(),
    maxBudgetUsd: z.number().positive().optional(),
    turnTimeoutMs: z.number().int().positive().optional(),
    startTimeoutMs: z.number().int().positive().optional(),
    closeGraceMs: z.number().int().nonnegative().optional(),
    includePartialMessages: z.boolean().optional(),
    store: z
      .custom<SessionStore>(
        (value) =>
          typeof value === 'object' &&
          value !== null &&
          typeof (value as SessionStore).save === 'function' &&
          typeof (value as SessionStore).load === 'function',
        { message: 'must implement save and load' },
      )
      .optional(),
    sessionId: z.string().uuid().optional(),
    sdkOptions: z.record(z.string(), z.unknown()).optional(),
    sdk: z.custom<typeof import('@anthropic-ai/claude-agent-sdk')>((value) => typeof value === 'object' && value !== null).optional(),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();

export interface ResumeAgentSessionOptions extends Omit<AgentSessionOptions, 'sessionId' | 'store'> {
  /** Session to continue. */
  sessionId: string;
  /** Where it was saved; the resumed session keeps saving there. */
  store: SessionStore;
  /** Continue under a new session id, leaving the stored one unchanged. @default false */
  fork?: boolean;
}

/** Options of one `send`. */
export interface SendOptions {
  /** Aborting interrupts the turn; `result` rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Overrides `turnTimeoutMs` for this turn. */
  timeoutMs?: number;
}

/** Token counts, as the API reports them. */
export interface AgentUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheCreationInputTokens: number;
}

/** How one turn ended. */
export interface AgentTurnResult {
  readonly sessionId: string;
  /** The final text of the turn (`result` of the CLI's result message). */
  readonly text: string;
  /** True when the turn ended in an error (API error, max turns, budget, interrupt). */
  readonly isError: boolean;
  /** The error, typed, when `isError`: reason `api-error` (with `apiErrorStatus`), `max-turns`, `max-budget`, `interrupted`, `execution-error`. */
  readonly error: import('./agent-errors.js').AgentSessionError | undefined;
  /** Model round trips in this turn. */
  readonly numTurns: number;
  /** Milliseconds the CLI spent on the turn. */
  readonly durationMs: number;
  /** Estimated cost of this turn in US dollars. */
  readonly costUsd: number;
  /** Estimated cost of the whole session so far in US dollars (including resumed history's, when the store knew it). */
  readonly totalCostUsd: number;
  /** Tokens of this turn's main loop. */
  readonly usage: AgentUsage;
  /** Tool uses denied during the turn (by the callback or by rules). */
  readonly permissionDenials: ReadonlyArray<{ toolName: string; toolUseId: string; toolInput: Record<string, unknown> }>;
  /** The CLI's result message, unchanged. */
  readonly message: SDKResultMessage;
}
