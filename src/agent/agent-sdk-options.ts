import type { CanUseTool, Options as SdkOptions, SpawnedProcess, SpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import type { AgentSessionOptions, ToolPermissionCallback } from './agent-options.js';

/** Model round trips per turn when `maxTurns` is not given. */
export const defaultMaxTurns = 50;

/** What the session decides for the CLI, next to the caller's options. */
export interface SdkOptionsContext {
  /** The CLI's working directory, absolute (resolved in the sandbox). */
  cwd: string;
  /** The CLI's whole environment (see `cliEnv`). */
  env: Record<string, string>;
  /** Continue this stored session, under a new id when `fork`. */
  resume?: { sessionId: string; fork: boolean };
  /** Starts the CLI inside the sandbox instead of on the host. */
  spawn: (options: SpawnOptions) => SpawnedProcess;
}

/**
 * The Agent SDK's options for our own: defaults (bypass permissions unless a callback decides,
 * Claude Code's system prompt, 50 round trips, no settings files read from the sandbox), the
 * permission callback in our shape, resume or a chosen id, then `sdkOptions`. The spawn hook
 * comes last so that nothing replaces it: the CLI must run in the sandbox. Pure.
 */
export function toSdkOptions(options: AgentSessionOptions, context: SdkOptionsContext): SdkOptions {
  const permissionMode = options.permissionMode ?? (options.canUseTool ? 'default' : 'bypassPermissions');
  return {
    pathToClaudeCodeExecutable: options.executable ?? 'claude',
    cwd: context.cwd,
    env: context.env,
    model: options.model,
    permissionMode,
    ...(permissionMode === 'bypassPermissions' ? { allowDangerouslySkipPermissions: true } : {}),
    ...(options.canUseTool ? { canUseTool: toSdkCanUseTool(options.canUseTool) } : {}),
    allowedTools: options.allowedTools,
    disallowedTools: options.disallowedTools,
    systemPrompt: options.systemPrompt ?? { type: 'preset', preset: 'claude_code', append: options.appendSystemPrompt },
    mcpServers: options.mcpServers,
    hooks: options.hooks,
    maxTurns: options.maxTurns ?? defaultMaxTurns,
    maxBudgetUsd: options.maxBudgetUsd,
    includePartialMessages: options.includePartialMessages,
    // No settings files: these options alone decide how the CLI behaves, in any sandbox.
    settingSources: [],
    ...(context.resume
      ? { resume: context.resume.sessionId, forkSession: context.resume.fork }
      : options.sessionId
        ? { sessionId: options.sessionId }
        : {}),
    ...options.sdkOptions,
    spawnClaudeCodeProcess: context.spawn,
  };
}

/** Our permission callback in the SDK's shape: a request object in, the decision echoed with its tool use id. */
export function toSdkCanUseTool(canUseTool: ToolPermissionCallback): CanUseTool {
  return async (toolName, input, context) => {
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
      ? {
          behavior: 'allow',
          updatedInput: decision.updatedInput ?? input,
          updatedPermissions: decision.updatedPermissions,
          toolUseID: context.toolUseID,
        }
      : { behavior: 'deny', message: decision.message, interrupt: decision.interrupt, toolUseID: context.toolUseID };
  };
}
