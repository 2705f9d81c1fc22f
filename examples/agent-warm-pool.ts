/**
 * Warm pool for agents: sandboxes created and prepared ahead of time (the CLI in place, the
 * repository checked out), so a job's agent starts at once instead of after a create, an
 * install and a clone. Each job gets its own sandbox and ends it; the pool refills.
 *   ANTHROPIC_API_KEY=sk-ant-… npx tsx examples/agent-warm-pool.ts
 * Runs on the local provider. For another provider change only the provider line, e.g.
 *   const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples' });
 * (there `prepare` uploads the CLI, the slow part the pool pays before any job asks).
 * Or on Docker, with an image that has python3 (the credential proxy's host route runs through
 * it) and git, e.g. built FROM debian:bookworm-slim with `apt-get install -y python3 git`:
 *   const provider: SandboxProvider = (await import('sandport/docker')).createDockerSandboxProvider({ defaultImage: 'sandport/examples:bookworm' });
 */
import { AgentSession, CredentialProxy, claudeCodeHostMount, createSandboxPool, ensureClaudeCode, type SandboxProvider } from 'sandport';

const apiKey = process.env.ANTHROPIC_API_KEY;
if (!apiKey) {
  console.log('ANTHROPIC_API_KEY is not set: this example talks to the real Anthropic API, so it stops here.');
  process.exit(0);
}

const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();

/**
 * Where the credential proxy is for sandboxes: a host route on local and Docker; for providers
 * without one (Modal, E2B, …) the URL mode, at the public URL of a listener you put behind it
 * (README, "Credentials for sandboxes that are not on this host").
 */
const proxyOptions = {
  apiKey,
  baseUrl: process.env.ANTHROPIC_BASE_URL,
  ...(process.env.SANDPORT_PROXY_PUBLIC_URL && {
    listen: { host: process.env.SANDPORT_PROXY_HOST ?? '127.0.0.1', port: Number(process.env.SANDPORT_PROXY_PORT ?? 8080) },
    publicUrl: process.env.SANDPORT_PROXY_PUBLIC_URL,
  }),
};

const mount =
  provider.capabilities.volumes === 'host-path' || provider.capabilities.volumes === 'host-path-or-named'
    ? claudeCodeHostMount()
    : undefined;
const install = mount ? ({ executable: mount.executable, install: false } as const) : ({ install: 'upload' } as const);
await using proxy = await CredentialProxy.start(proxyOptions);

const pool = createSandboxPool(provider, {
  size: 2,
  // Create options carry no secret: each sandbox gets its own placeholder when its agent starts.
  createOptions: proxy.createOptions(provider, {
    network: 'block',
    timeoutMs: 60 * 60_000,
    tags: { example: 'agent-warm-pool' },
    ...mount?.createOptions,
  }),
  maxIdleMs: 10 * 60_000,
  prepare: async (sandbox, { signal }) => {
    await ensureClaudeCode(sandbox, { ...install, signal });
    // For real: `git clone` the repository (with an allowlist naming its host) and install its dependencies.
    await sandbox.files.write('/workspace/repo/CHANGELOG.md', '# Changelog\n', { signal });
  },
  healthCheck: async (sandbox, { signal }) => sandbox.files.exists('/workspace/repo/CHANGELOG.md', { signal }),
});
pool.events.on('error', (event) => console.log(`pool: ${event.operation} failed, retry in ${event.retryInMs} ms: ${String(event.error)}`));

await pool.waitUntilWarm({ signal: AbortSignal.timeout(120_000) });
console.log(`pool is warm: ${pool.stats().ready} prepared sandboxes`);

const handedOver = new Map<string, { warm: boolean; durationMs: number }>();
pool.events.on('acquired', ({ sandboxId, warm, durationMs }) => handedOver.set(sandboxId, { warm, durationMs }));

// Three jobs at once: two get a prepared sandbox, the third waits for one made for it.
const outcomes = await Promise.all(
  [1, 2, 3].map(async (ticket) => {
    const sandbox = await pool.acquire({ signal: AbortSignal.timeout(120_000) });
    try {
      const { executable } = await ensureClaudeCode(sandbox, install); // found, not installed again
      await using agent = await AgentSession.start(sandbox, { executable, credentials: proxy, cwd: '/workspace/repo', maxTurns: 10 });
      const result = await agent.send(
        `Ticket ${ticket}: append the line "- ticket ${ticket} handled" to CHANGELOG.md. Reply in one sentence.`,
      ).result;
      const changelog = await sandbox.files.readText('/workspace/repo/CHANGELOG.md');
      const { warm, durationMs } = handedOver.get(sandbox.id)!;
      const outcome = changelog.includes(`- ticket ${ticket} handled`)
        ? 'changelog updated'
        : `changelog unchanged (${result.error?.reason ?? result.text})`;
      return { warm, line: `ticket ${ticket}: ${outcome}; ${warm ? 'warm' : 'cold'} sandbox, acquired in ${durationMs.toFixed(1)} ms` };
    } finally {
      await sandbox.terminate(); // a sandbox handed over is the job's to end
    }
  }),
);
for (const outcome of outcomes) console.log(outcome.line);
console.log(
  `handed over: ${outcomes.filter((outcome) => outcome.warm).length} warm, ${outcomes.filter((outcome) => !outcome.warm).length} cold`,
);

await pool.waitUntilWarm({ signal: AbortSignal.timeout(120_000) });
console.log(`pool is warm again: ${pool.stats().ready} prepared`);
await pool.close();
console.log(`closed: ${(await provider.list?.({ tags: { example: 'agent-warm-pool' } }))?.length ?? 0} sandboxes left running`);
