export {
  AgentSession,
  type AgentPrompt,
  type AgentSessionEvents,
  type AgentTurn,
  type ConnectAgentSessionOptions,
} from './agent-session.js';
export { defaultAgentHostDirectory, nodeHostMount, startAgentHost, type AgentHost, type StartAgentHostOptions } from './host/agent-host.js';
export { agentHostCloseCodes } from './host/agent-host-protocol.js';
export type { SessionExecCapabilities } from './host/exec-carriage.js';
export {
  agentSessionOptionsSchema,
  type AgentCredentials,
  type AgentMessage,
  type AgentResultMessage,
  type AgentSessionOptions,
  type AgentTurnResult,
  type AgentUsage,
  type McpServerConfig,
  type PermissionMode,
  type ResumeAgentSessionOptions,
  type SandboxEnvCredentials,
  type SendOptions,
  type ToolPermissionCallback,
  type ToolUseDecision,
  type ToolUseRequest,
} from './agent-options.js';
export { AgentSessionError, type AgentErrorReason } from './agent-errors.js';
export { CredentialProxy, type CredentialProxyOptions } from './credential-proxy.js';
export type { SandboxBudget, SandboxCredentialGrant, SandboxCredentialUsage } from './credential-grants.js';
export type { MessageUsage } from './credential-usage.js';
export {
  claudeCodeHostMount,
  claudeCodeImage,
  claudeCodeImageOnlyProviders,
  defaultClaudeCodeUploadPath,
  defaultClaudeCodeVersion,
  ensureClaudeCode,
  type ClaudeCodeHostMountOptions,
  type ClaudeCodeInstallation,
  type EnsureClaudeCodeOptions,
} from './install.js';
export {
  DirectorySessionStore,
  MemorySessionStore,
  type SessionFile,
  type SessionMetadata,
  type SessionSnapshot,
  type SessionStore,
} from './session-store.js';
