import { SandboxInvalidArgumentError } from '../errors/index.js';
import { loadOptionalPeer } from '../kit/optional-peer.js';
import type { Sandbox } from '../spec/sandbox.js';
import type { AgentCredentials } from './agent-options.js';
import { CredentialProxy } from './credential-proxy.js';

/**
 * Refuses credentials that would reach the sandbox unannounced, or that hold nothing, before any
 * I/O. A `CredentialProxy` (or no credentials) always passes.
 */
export function checkCredentials(credentials: AgentCredentials | undefined): void {
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

/**
 * The CLI's environment: its own config and temp directories (so agents sharing a sandbox never
 * share files), no side traffic, the credentials (a proxy's placeholder and route, or the real
 * ones when exposed on purpose), and the caller's `env` last.
 */
export function cliEnv(setup: {
  configDir: string;
  /** Id of the sandbox's provider: a proxy's route depends on it. */
  providerId: string;
  /** The sandbox itself: a proxy in its URL mode issues a placeholder per sandbox. */
  sandbox?: Sandbox;
  credentials: AgentCredentials | undefined;
  env: Record<string, string> | undefined;
}): Record<string, string> {
  const { credentials } = setup;
  const env: Record<string, string> = {
    CLAUDE_CONFIG_DIR: setup.configDir,
    CLAUDE_CODE_TMPDIR: `${setup.configDir}/tmp`,
    // Lets bypassPermissions work as root: the sandbox is the boundary.
    IS_SANDBOX: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
  };
  if (credentials instanceof CredentialProxy) Object.assign(env, credentials.sandboxEnv(setup.sandbox ?? setup.providerId));
  else if (credentials) {
    if (credentials.apiKey) env.ANTHROPIC_API_KEY = credentials.apiKey;
    if (credentials.oauthToken) env.CLAUDE_CODE_OAUTH_TOKEN = credentials.oauthToken;
    if (credentials.authToken) env.ANTHROPIC_AUTH_TOKEN = credentials.authToken;
    if (credentials.baseUrl) env.ANTHROPIC_BASE_URL = credentials.baseUrl;
  }
  return { ...env, ...setup.env };
}

/** Creates the config and working directories in one exec and resolves the absolute cwd. */
export async function prepareDirectories(
  sandbox: Sandbox,
  configDir: string,
  cwd: string | undefined,
  signal: AbortSignal | undefined,
): Promise<string> {
  const script = 'set -e; mkdir -p "$1/tmp"; if [ -n "$2" ]; then mkdir -p "$2"; cd "$2"; fi; pwd -P';
  const result = await sandbox.run(['/bin/sh', '-c', script, 'sandport-agent', configDir, cwd ?? ''], { signal, timeoutMs: 60_000 });
  if (result.exitCode !== 0) {
    throw new SandboxInvalidArgumentError({
      message: `Could not prepare ${configDir} and ${cwd ?? 'the working directory'} in sandbox ${sandbox.id}: ${result.stderr.trim()}`,
      argument: cwd ? 'cwd' : 'configDir',
      provider: sandbox.provider,
    });
  }
  return cwd ?? result.stdout.trim();
}

/** A missing SDK is `SandboxCapabilityUnsupportedError` (`peer:@anthropic-ai/claude-agent-sdk`), not a protocol failure. */
export function loadSdk(): Promise<typeof import('@anthropic-ai/claude-agent-sdk')> {
  return loadOptionalPeer('@anthropic-ai/claude-agent-sdk', {
    neededBy: 'AgentSession',
    load: () => import('@anthropic-ai/claude-agent-sdk'),
  });
}
