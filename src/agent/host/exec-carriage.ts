import { SandboxCapabilityUnsupportedError } from '../../errors/index.js';
import type { SandboxCapabilities } from '../../spec/sandbox-capabilities.js';
import type { Sandbox } from '../../spec/sandbox.js';

/** The two exec capabilities a long-lived stream-json session over exec needs. */
export type SessionExecCapabilities = Pick<SandboxCapabilities['exec'], 'stdin' | 'streaming'>;

/**
 * `capabilities.exec` of the providers whose exec cannot carry the CLI's session, by provider
 * id: a `Sandbox` does not hold its provider's capabilities, and these decide how the agent
 * host gets its token and reports that it listens, and whether `AgentSession.start` can work.
 * Kept equal to the adapters' capability objects by test/agent/agent-every-provider.test.ts.
 */
export const limitedSessionExec: Readonly<Record<string, SessionExecCapabilities>> = Object.freeze({
  // Fly's exec answers with the whole output when the command ends.
  fly: Object.freeze({ stdin: true, streaming: false }),
  // The Cloudflare bridge's commands read /dev/null.
  cloudflare: Object.freeze({ stdin: false, streaming: true }),
  // Vercel's runCommand takes no stdin.
  vercel: Object.freeze({ stdin: false, streaming: true }),
});

/** The exec capabilities of `sandbox`'s provider that matter here (`given` wins; unknown providers: both true). */
export function sessionExecOf(sandbox: Pick<Sandbox, 'provider'>, given?: SessionExecCapabilities): SessionExecCapabilities {
  return given ?? limitedSessionExec[sandbox.provider] ?? { stdin: true, streaming: true };
}

/**
 * Refuses `AgentSession.start`/`resume` where exec cannot carry the CLI's stream-json session
 * (no stdin, or output only at the exit), naming the agent service that can. Never throws
 * for a provider whose exec streams both ways.
 */
export function refuseSessionOverExec(sandbox: Pick<Sandbox, 'provider' | 'id'>, given?: SessionExecCapabilities): void {
  const exec = sessionExecOf(sandbox, given);
  const missing = !exec.stdin ? 'exec.stdin' : !exec.streaming ? 'exec.streaming' : undefined;
  if (!missing) return;
  const why = !exec.stdin
    ? 'its exec has no stdin, and the CLI reads its stream-json session from stdin'
    : 'its exec output arrives only when the command ends, and the CLI answers each turn on stdout while it runs';
  throw new SandboxCapabilityUnsupportedError({
    message:
      `AgentSession.start cannot drive Claude Code in sandbox ${sandbox.id} (${sandbox.provider}): ${why}. ` +
      'Run the agent host in the sandbox and connect to it through a port instead: ' +
      'const host = await startAgentHost(sandbox, { port }); ' +
      'const agent = await AgentSession.connect(sandbox, { port, token: host.token, ... }) (declare the port in the create options)',
    capability: missing,
    provider: sandbox.provider,
  });
}
