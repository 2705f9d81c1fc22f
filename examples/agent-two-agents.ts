/**
 * Single-container pattern: two agents collaborate in one sandbox without overwriting each
 * other's files. Each owns one directory (its working directory): it may read everything, so
 * it can build on the other's work, but it writes only in its own, a rule its permission
 * callback enforces (and it gets no shell, which could write anywhere). A change to the other's
 * file goes through the app, to the owner. One credential proxy serves both.
 *   ANTHROPIC_API_KEY=sk-ant-… npx tsx examples/agent-two-agents.ts
 * Runs on the local provider. For another provider change only the provider line, e.g.
 *   const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples' });
 * Or on Docker, with an image that has python3 (the credential proxy's host route runs through
 * it) and git, e.g. built FROM debian:bookworm-slim with `apt-get install -y python3 git`:
 *   const provider: SandboxProvider = (await import('sandport/docker')).createDockerSandboxProvider({ defaultImage: 'sandport/examples:bookworm' });
 */
import { posix } from 'node:path';
import {
  AgentSession,
  CredentialProxy,
  claudeCodeHostMount,
  ensureClaudeCode,
  type SandboxProvider,
  type ToolPermissionCallback,
} from 'sandport';

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
await using proxy = await CredentialProxy.start(proxyOptions);
await using sandbox = await provider.create(
  proxy.createOptions(provider, { network: 'block', timeoutMs: 30 * 60_000, ...mount?.createOptions }),
);
const cli = await ensureClaudeCode(sandbox, mount ? { executable: mount.executable, install: false } : { install: 'upload' });

const fileTools = new Set(['Write', 'Edit', 'MultiEdit', 'NotebookEdit']);
const refusals: string[] = [];

/** The ownership rule: read anywhere, write only under `home`, no shell. */
function ownsOnly(agent: string, home: string): ToolPermissionCallback {
  return ({ toolName, input }) => {
    if (toolName === 'Bash') {
      refusals.push(`${agent}: Bash refused`);
      return { behavior: 'deny', message: 'No shell in this shared sandbox: use the file tools.' };
    }
    if (!fileTools.has(toolName)) return { behavior: 'allow' };
    const path = posix.resolve(home, String(input.file_path ?? input.notebook_path ?? ''));
    if (path.startsWith(`${home}/`)) return { behavior: 'allow' };
    refusals.push(`${agent}: ${toolName} ${path} refused (not under ${home})`);
    return {
      behavior: 'deny',
      message: `${path} belongs to another agent: write only under ${home}, and ask the app to pass on a change.`,
    };
  };
}

const common = { executable: cli.executable, credentials: proxy, maxTurns: 10 };
await using api = await AgentSession.start(sandbox, { ...common, cwd: '/workspace/api', canUseTool: ownsOnly('api', '/workspace/api') });
await using web = await AgentSession.start(sandbox, { ...common, cwd: '/workspace/web', canUseTool: ownsOnly('web', '/workspace/web') });

// Both at once, each in its own directory.
const [spec, page] = await Promise.all([
  api.send(
    'Write API.md in your directory: it documents one endpoint, GET /todos, returning a JSON array of to-dos. Reply in one sentence.',
  ).result,
  web.send('Write index.html in your directory: an empty page titled To-dos with a <ul id="todos">. Reply in one sentence.').result,
]);
console.log(`api: ${spec.text}`);
console.log(`web: ${page.text}`);

// The web agent builds on the api agent's file, and tries to change it too.
const client = await web.send(
  'Read /workspace/api/API.md and write app.js in your directory that fills #todos from the endpoint it documents. ' +
    'Then add the line "Used by: web" at the end of /workspace/api/API.md.',
).result;
console.log(`web: ${client.text}`);
for (const refusal of refusals) console.log(`refused: ${refusal}`);

// The change goes to the file's owner instead.
const relayed = await api.send('The web agent uses your API: add the line "Used by: web" at the end of API.md. Reply in one sentence.')
  .result;
console.log(`api: ${relayed.text}`);

const listing = await sandbox.run(['/bin/sh', '-c', 'cd /workspace && ls api web']);
console.log(listing.stdout.trimEnd());
const apiDoc = await sandbox.files.readText('/workspace/api/API.md');
console.log(`API.md last line: ${apiDoc.trimEnd().split('\n').at(-1)}`);
console.log(`app.js uses the documented endpoint: ${(await sandbox.files.readText('/workspace/web/app.js')).includes('/todos')}`);
console.log(`sessions: api ${api.sessionId}, web ${web.sessionId}`);
