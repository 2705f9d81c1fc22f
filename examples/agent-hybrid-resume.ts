/**
 * Hybrid pattern: an ephemeral sandbox per working session, hydrated with yesterday's history
 * and state. Today the agent plans a project in one sandbox; the transcript goes to a session
 * store after every turn, the app keeps the workspace's files, and the sandbox is destroyed.
 * Tomorrow a new sandbox gets the files back and the same session continues from the store:
 * the agent knows what was said yesterday.
 *   ANTHROPIC_API_KEY=sk-ant-… npx tsx examples/agent-hybrid-resume.ts
 * `tomorrow()` gets nothing from `today()` but the store's directory: run it in another process
 * (or on another host) the next day. Only `sandbox.files` and exec move the session, so it runs
 * on the local provider and on any other by changing only the provider line, e.g.
 *   const provider: SandboxProvider = (await import('sandport/modal')).createModalSandboxProvider({ appName: 'sandport-examples' });
 * Or on Docker, with an image that has python3 (the credential proxy's host route runs through
 * it) and git, e.g. built FROM debian:bookworm-slim with `apt-get install -y python3 git`:
 *   const provider: SandboxProvider = (await import('sandport/docker')).createDockerSandboxProvider({ defaultImage: 'sandport/examples:bookworm' });
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AgentSession,
  CredentialProxy,
  DirectorySessionStore,
  claudeCodeHostMount,
  ensureClaudeCode,
  type Sandbox,
  type SandboxProvider,
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
const workdir = '/workspace/app';

/** A fresh sandbox with the CLI in it: mounted where volumes are host paths (local, Docker), uploaded elsewhere. */
async function freshSandbox(proxy: CredentialProxy): Promise<{ sandbox: Sandbox; executable: string }> {
  const mount =
    provider.capabilities.volumes === 'host-path' || provider.capabilities.volumes === 'host-path-or-named'
      ? claudeCodeHostMount()
      : undefined;
  const sandbox = await provider.create(
    proxy.createOptions(provider, { network: 'block', timeoutMs: 30 * 60_000, ...mount?.createOptions }),
  );
  const cli = await ensureClaudeCode(sandbox, mount ? { executable: mount.executable, install: false } : { install: 'upload' });
  return { sandbox, executable: cli.executable };
}

async function today(storeRoot: string): Promise<void> {
  await using proxy = await CredentialProxy.start(proxyOptions);
  const { sandbox, executable } = await freshSandbox(proxy);
  const store = new DirectorySessionStore(join(storeRoot, 'sessions'));
  try {
    await using agent = await AgentSession.start(sandbox, { executable, credentials: proxy, cwd: workdir, store, maxTurns: 10 });
    const turn = agent.send(
      'We are starting a small to-do CLI; its codename is Bluebird. Write PLAN.md here with three numbered steps to build it, ' +
        'the first being the data model. Reply with one word: planned.',
    );
    console.log(`today, sandbox ${sandbox.id}: ${(await turn.result).text}`);
    await turn.saved; // the transcript is in the store
    // The state: the workspace's files, kept next to the session (a bucket or a database for real).
    const state = join(storeRoot, 'workspace', agent.sessionId!);
    await mkdir(state, { recursive: true });
    for (const entry of await sandbox.files.list(workdir)) {
      if (entry.type === 'file') await writeFile(join(state, entry.name), await sandbox.files.read(`${workdir}/${entry.name}`));
    }
    console.log(`saved session ${agent.sessionId} and ${(await readdir(state)).join(', ')}`);
  } finally {
    await sandbox.terminate(); // the sandbox is gone; the session and the files are not
  }
  console.log(`today's sandbox: ${(await sandbox.poll()).state}`);
}

async function tomorrow(storeRoot: string): Promise<void> {
  const store = new DirectorySessionStore(join(storeRoot, 'sessions'));
  const [latest] = await store.list(); // newest first
  if (!latest) throw new Error('no session in the store');
  await using proxy = await CredentialProxy.start(proxyOptions);
  const { sandbox, executable } = await freshSandbox(proxy);
  try {
    const state = join(storeRoot, 'workspace', latest.sessionId);
    for (const name of await readdir(state)) await sandbox.files.write(`${workdir}/${name}`, await readFile(join(state, name)));
    await using agent = await AgentSession.resume(sandbox, {
      sessionId: latest.sessionId,
      store,
      executable,
      credentials: proxy,
      cwd: workdir,
      maxTurns: 10,
    });
    const answer = await agent.send(
      "Good morning. Mark yesterday's first step as done in PLAN.md (prefix it with [done]), then tell me the project's codename.",
    ).result;
    console.log(`tomorrow, new sandbox ${sandbox.id}: ${answer.text}`);
    console.log(`same session: ${answer.sessionId === latest.sessionId}; remembers the codename: ${/bluebird/i.test(answer.text)}`);
    console.log(`PLAN.md now:\n${(await sandbox.files.readText(`${workdir}/PLAN.md`)).trimEnd()}`);
  } finally {
    await sandbox.terminate();
  }
}

const storeRoot = await mkdtemp(join(tmpdir(), 'sandport-hybrid-'));
try {
  await today(storeRoot);
  await tomorrow(storeRoot);
} finally {
  await rm(storeRoot, { recursive: true, force: true });
}
