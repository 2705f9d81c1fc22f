/**
 * The credential proxy's URL mode: per-sandbox placeholders bound to a sandbox and revoked when it
 * ends, only the model API's paths forwarded, a body cap, per-sandbox budgets; and a sandbox of the
 * Modal emulator (real `modal` SDK, our adapter) reaching the fake Messages API through the proxy's
 * public URL, served as a host of the test internet (`proxy.test`), with the real key never inside.
 */
import { createReadStream } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { ModalClient } from 'modal';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { createE2bSandboxProvider } from '../../adapters/e2b/index.js';
import { createModalSandboxProvider, type ModalSandboxProvider } from '../../adapters/modal/index.js';
import { AgentSession, CredentialProxy, claudeCodeHostMount } from '../../src/agent/index.js';
import {
  SandboxCapabilityUnsupportedError,
  SandboxEmitter,
  SandboxInvalidArgumentError,
  type Sandbox,
  type SandboxCapabilities,
  type SandboxProvider,
} from '../../src/index.js';
import { spawnE2bEmulator, type E2bEmulatorProcess } from '../emulators/e2b/spawn.js';
import { spawnModalEmulator, type ModalEmulatorProcess } from '../emulators/modal/spawn.js';
import { startFakeAnthropic, type FakeAnthropic } from '../fake-anthropic/fake-anthropic.js';
import { agentSkipReason, testEnv } from './harness.js';

const realKey = `sk-ant-api03-REAL-SECRET-${Date.now()}`;
const messageBody = JSON.stringify({ model: 'claude-fake', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'hello' }] });

let fake: FakeAnthropic;
beforeAll(async () => {
  fake = await startFakeAnthropic();
});
afterAll(async () => {
  await fake?.close();
});

/** A sandbox object of a pretend cloud provider whose end the test decides. */
function stubSandbox(id: string, provider = 'stub-cloud'): { sandbox: Sandbox; end(reason?: string): void } {
  let end!: (status: { state: 'terminated'; reason: string }) => void;
  const ended = new Promise<{ state: 'terminated'; reason: string }>((resolve) => (end = resolve));
  const wait = ({ signal }: { signal?: AbortSignal } = {}) =>
    new Promise((resolve, reject) => {
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      void ended.then(resolve);
    });
  return { sandbox: { id, provider, wait } as unknown as Sandbox, end: (reason = 'terminated') => end({ state: 'terminated', reason }) };
}

function stubProvider(id: string, network: Partial<SandboxCapabilities['network']> = {}): SandboxProvider {
  return {
    id,
    events: new SandboxEmitter(),
    capabilities: {
      hostRoutes: false,
      network: { block: true, allowCidrs: true, allowDomains: true, allowlistViaProxy: false, update: false, ...network },
    },
  } as unknown as SandboxProvider;
}

/** A raw HTTP request (fetch refuses some of what these tests send), answering status and JSON body. */
function send(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    chunked?: boolean;
    /** TLS: the CA to trust, and the name the certificate must carry. */
    ca?: string;
    servername?: string;
  } = {},
): Promise<{ status: number; body: any; text: string }> {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', ...options.headers };
    const open = url.startsWith('https:') ? httpsRequest : httpRequest;
    const request = open(url, { method: options.method ?? 'POST', headers, ca: options.ca, servername: options.servername }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => {
        let body: any;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: response.statusCode ?? 0, body, text });
      });
    });
    request.on('error', reject);
    if (options.body !== undefined && options.chunked) {
      // No content-length: the proxy has to count while reading.
      const body = Buffer.from(options.body);
      for (let offset = 0; offset < body.length; offset += 64 * 1024) request.write(body.subarray(offset, offset + 64 * 1024));
      request.end();
    } else request.end(options.body);
  });
}

async function startUrlProxy(extra: Partial<Parameters<typeof CredentialProxy.start>[0]> = {}): Promise<CredentialProxy> {
  return CredentialProxy.start({
    apiKey: realKey,
    baseUrl: fake.url,
    listen: { port: 0 },
    publicUrl: 'https://proxy.example.test/anthropic',
    ...extra,
  });
}

/** The proxy's own listener, standing in for the public URL (same path prefix). */
function local(proxy: CredentialProxy, path: string): string {
  return `http://127.0.0.1:${proxy.listenAddress!.port}/anthropic${path}`;
}

describe('credential proxy URL mode', () => {
  it('refuses a publicUrl without listen, and limits without the URL mode, naming the field', async () => {
    await expect(CredentialProxy.start({ apiKey: realKey, publicUrl: 'https://proxy.example.test' })).rejects.toMatchObject({
      name: 'SandboxInvalidArgumentError',
      argument: 'listen',
    });
    await expect(CredentialProxy.start({ apiKey: realKey, budget: { maxRequests: 1 } })).rejects.toMatchObject({ argument: 'publicUrl' });
    await expect(
      CredentialProxy.start({ apiKey: realKey, listen: { port: 0 }, publicUrl: 'ftp://proxy.example.test' }),
    ).rejects.toMatchObject({ argument: 'publicUrl' });
    await expect(startUrlProxy({ budget: { maxSpendUsd: 1 } })).rejects.toMatchObject({ argument: 'budget.priceUsd' });
  });

  it('gives every sandbox its own placeholder and the public URL, and forwards with the real key', async () => {
    await using proxy = await startUrlProxy();
    const a = stubSandbox('sb-a');
    const b = stubSandbox('sb-b');
    const envA = proxy.sandboxEnv(a.sandbox);
    const envB = proxy.sandboxEnv(b.sandbox);
    expect(envA.ANTHROPIC_BASE_URL).toBe('https://proxy.example.test/anthropic');
    expect(envA.ANTHROPIC_API_KEY).toMatch(/^sk-ant-api03-sandport-grant-[0-9a-f]{48}$/);
    expect(envB.ANTHROPIC_API_KEY).not.toBe(envA.ANTHROPIC_API_KEY);
    // The same sandbox keeps its placeholder.
    expect(proxy.sandboxEnv(a.sandbox)).toEqual(envA);
    expect(proxy.grant(a.sandbox)).toMatchObject({ sandboxId: 'sb-a', provider: 'stub-cloud', placeholder: envA.ANTHROPIC_API_KEY });
    expect(JSON.stringify([envA, envB])).not.toContain(realKey);
    // With a provider id alone the URL mode cannot know which sandbox asks.
    expect(() => proxy.sandboxEnv('stub-cloud')).toThrow(SandboxInvalidArgumentError);

    const seen = fake.requests.length;
    const answer = await send(`${local(proxy, '/v1/messages')}?beta=true`, {
      headers: { 'x-api-key': envA.ANTHROPIC_API_KEY! },
      body: messageBody,
    });
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('event: message_start');
    expect(answer.text).not.toContain(realKey);
    const upstream = fake.requests.slice(seen);
    expect(upstream.map((request) => [request.url, request.headers['x-api-key']])).toEqual([['/v1/messages?beta=true', realKey]]);
    const counted = await send(local(proxy, '/v1/messages/count_tokens'), {
      headers: { 'x-api-key': envB.ANTHROPIC_API_KEY! },
      body: messageBody,
    });
    expect(counted).toMatchObject({ status: 200, body: { input_tokens: 10 } });
    // Usage is read from the streamed reply: the fake reports 10 input and 5 output tokens.
    expect(proxy.grant(a.sandbox).usage).toMatchObject({ requests: 1, refused: 0, tokens: { inputTokens: 10, outputTokens: 5 } });
    expect(proxy.grant(b.sandbox).usage).toMatchObject({ requests: 1, tokens: { inputTokens: 0, outputTokens: 0 } });
  });

  it('forwards only the model API paths, and refuses unknown placeholders, with JSON errors', async () => {
    await using proxy = await startUrlProxy();
    const { sandbox } = stubSandbox('sb-paths');
    const key = proxy.sandboxEnv(sandbox).ANTHROPIC_API_KEY!;
    const seen = fake.requests.length;
    for (const path of ['/v1/models', '/v1/files', '/v1/messages/batches', '/v1/messages/../models', '/api/hello', '/']) {
      const answer = await send(local(proxy, path), { headers: { 'x-api-key': key }, body: '{}' });
      expect(answer.status, path).toBe(404);
      expect(answer.body).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
      expect(answer.body.error.message).toContain('is not forwarded');
    }
    const head = await send(local(proxy, '/'), { method: 'HEAD' });
    expect(head.status).toBe(404);
    const get = await send(local(proxy, '/v1/messages'), { method: 'GET', headers: { 'x-api-key': key } });
    expect(get).toMatchObject({ status: 405, body: { error: { type: 'invalid_request_error' } } });
    // The host route's shared placeholder is no credential at the public URL.
    const localProvider = createLocalSandboxProvider();
    proxy.createOptions(localProvider);
    const shared = proxy.sandboxEnv('local').ANTHROPIC_API_KEY!;
    for (const presented of ['sk-ant-api03-guessed', `${key}x`, key.slice(0, -1), shared]) {
      const refused = await send(local(proxy, '/v1/messages'), { headers: { 'x-api-key': presented }, body: messageBody });
      expect(refused).toMatchObject({ status: 401, body: { error: { type: 'authentication_error' } } });
    }
    const wrong = await send(local(proxy, '/v1/messages'), { headers: { 'x-api-key': 'sk-ant-api03-guessed' }, body: messageBody });
    expect(wrong).toMatchObject({ status: 401, body: { error: { type: 'authentication_error' } } });
    const none = await send(local(proxy, '/v1/messages'), { body: messageBody });
    expect(none.status).toBe(401);
    expect(fake.requests.length).toBe(seen);
  });

  it('refuses a body over the cap with 413, declared or streamed, before anything goes upstream', async () => {
    await using proxy = await startUrlProxy({ maxRequestBodyBytes: 1024 * 1024 });
    const { sandbox } = stubSandbox('sb-body');
    const key = proxy.sandboxEnv(sandbox).ANTHROPIC_API_KEY!;
    const seen = fake.requests.length;
    const big = JSON.stringify({ ...JSON.parse(messageBody), padding: 'x'.repeat(1024 * 1024) });
    for (const chunked of [false, true]) {
      const answer = await send(local(proxy, '/v1/messages'), { headers: { 'x-api-key': key }, body: big, chunked });
      expect(answer, chunked ? 'chunked' : 'content-length').toMatchObject({ status: 413, body: { error: { type: 'request_too_large' } } });
      expect(answer.body.error.message).toContain('larger than 1048576 bytes');
    }
    expect(fake.requests.length).toBe(seen);
    // Just under the cap goes through.
    const fits = JSON.stringify({ ...JSON.parse(messageBody), padding: 'x'.repeat(1000 * 1000) });
    expect((await send(local(proxy, '/v1/messages'), { headers: { 'x-api-key': key }, body: fits, chunked: true })).status).toBe(200);
    expect(proxy.grant(sandbox).usage).toMatchObject({ requests: 1, refused: 2 });
  });

  it('enforces a per-sandbox request budget (429) that other sandboxes do not share', async () => {
    await using proxy = await startUrlProxy({ budget: { maxRequests: 2 } });
    const a = proxy.sandboxEnv(stubSandbox('sb-budget-a').sandbox).ANTHROPIC_API_KEY!;
    const b = proxy.sandboxEnv(stubSandbox('sb-budget-b').sandbox).ANTHROPIC_API_KEY!;
    const post = (key: string) => send(local(proxy, '/v1/messages'), { headers: { 'x-api-key': key }, body: messageBody });
    expect((await post(a)).status).toBe(200);
    expect((await post(a)).status).toBe(200);
    const third = await post(a);
    expect(third).toMatchObject({ status: 429, body: { type: 'error', error: { type: 'rate_limit_error' } } });
    expect(third.body.error.message).toContain('sb-budget-a');
    expect(third.body.error.message).toContain('budget of 2 requests');
    expect((await post(b)).status).toBe(200);
  });

  it('enforces token and spend budgets from the usage the replies report (402)', async () => {
    // Each fake reply reports 10 input + 5 output tokens.
    await using tokens = await startUrlProxy({ budget: { maxTokens: 20 } });
    const key = tokens.sandboxEnv(stubSandbox('sb-tokens').sandbox).ANTHROPIC_API_KEY!;
    const post = (proxy: CredentialProxy, presented: string) =>
      send(local(proxy, '/v1/messages'), { headers: { 'x-api-key': presented }, body: messageBody });
    expect((await post(tokens, key)).status).toBe(200);
    expect((await post(tokens, key)).status).toBe(200);
    const over = await post(tokens, key);
    expect(over).toMatchObject({ status: 402, body: { error: { type: 'billing_error' } } });
    expect(over.body.error.message).toContain('budget of 20 tokens (30 used)');

    const priced: Array<[number, string | undefined]> = [];
    await using spend = await startUrlProxy({
      budget: {
        maxSpendUsd: 0.01,
        priceUsd: (usage, model) => {
          priced.push([usage.inputTokens + usage.outputTokens, model]);
          return 0.006;
        },
      },
    });
    const spender = stubSandbox('sb-spend').sandbox;
    const spendKey = spend.sandboxEnv(spender).ANTHROPIC_API_KEY!;
    expect((await post(spend, spendKey)).status).toBe(200);
    expect((await post(spend, spendKey)).status).toBe(200);
    expect((await post(spend, spendKey)).status).toBe(402);
    expect(priced).toEqual([
      [15, 'claude-fake'],
      [15, 'claude-fake'],
    ]);
    expect(spend.grant(spender).usage.spendUsd).toBeCloseTo(0.012);
  });

  it('revokes a placeholder when its sandbox ends, and refuses it after with a 401 saying why', async () => {
    await using proxy = await startUrlProxy();
    const first = stubSandbox('sb-ends');
    const key = proxy.sandboxEnv(first.sandbox).ANTHROPIC_API_KEY!;
    const post = () => send(local(proxy, '/v1/messages'), { headers: { 'x-api-key': key }, body: messageBody });
    expect((await post()).status).toBe(200);
    first.end('lifetime-timeout');
    await vi.waitFor(() => expect(proxy.grant(first.sandbox).revokedReason).toBe('sandbox ended (lifetime-timeout)'));
    const refused = await post();
    expect(refused).toMatchObject({ status: 401, body: { error: { type: 'authentication_error' } } });
    expect(refused.body.error.message).toContain(
      'placeholder credential of sandbox sb-ends (stub-cloud) was revoked: sandbox ended (lifetime-timeout)',
    );
    // An ended sandbox never gets a fresh one.
    expect(proxy.sandboxEnv(first.sandbox).ANTHROPIC_API_KEY).toBe(key);

    // The provider's own event ends it as well (for providers that went through createOptions).
    const provider = stubProvider('stub-cloud');
    proxy.createOptions(provider);
    const second = stubSandbox('sb-event');
    const secondKey = proxy.sandboxEnv(second.sandbox).ANTHROPIC_API_KEY!;
    provider.events.emit('sandbox-terminated', { provider: 'stub-cloud', sandboxId: 'sb-event', reason: 'terminated' });
    expect(proxy.grant(second.sandbox).revokedReason).toBe('sandbox ended (terminated)');
    expect((await send(local(proxy, '/v1/messages'), { headers: { 'x-api-key': secondKey }, body: messageBody })).status).toBe(401);

    // And the app can revoke one by hand.
    const third = stubSandbox('sb-app');
    const thirdKey = proxy.sandboxEnv(third.sandbox).ANTHROPIC_API_KEY!;
    expect(proxy.revoke('stub-cloud', 'sb-app')).toBe(true);
    expect(proxy.revoke('stub-cloud', 'sb-app')).toBe(false);
    const byApp = await send(local(proxy, '/v1/messages'), { headers: { 'x-api-key': thirdKey }, body: messageBody });
    expect(byApp.body.error.message).toContain('revoked by the app');
  });

  it('drops the requests in flight of a revoked sandbox, counting what their replies reported so far', async () => {
    await using proxy = await startUrlProxy();
    const { sandbox } = stubSandbox('sb-inflight');
    const key = proxy.sandboxEnv(sandbox).ANTHROPIC_API_KEY!;
    const slow = JSON.stringify({ ...JSON.parse(messageBody), messages: [{ role: 'user', content: 'SLOW' }] });
    const response = await fetch(local(proxy, '/v1/messages'), {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
      body: slow,
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    // The first chunk holds message_start: the reply is streaming.
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('message_start');
    expect(proxy.revoke('stub-cloud', 'sb-inflight')).toBe(true);
    await expect(
      (async () => {
        for (;;) if ((await reader.read()).done) return 'ended';
      })(),
    ).rejects.toThrow();
    await vi.waitFor(() => expect(proxy.grant(sandbox).usage.tokens.inputTokens).toBe(10));
  });

  it('revokes every placeholder on close', async () => {
    const proxy = await startUrlProxy();
    const { sandbox } = stubSandbox('sb-close');
    proxy.sandboxEnv(sandbox);
    await proxy.close();
    expect(proxy.grant(sandbox).revokedReason).toBe('the proxy was closed');
    expect(proxy.grant(stubSandbox('sb-after-close').sandbox).revokedReason).toBe('the proxy was closed');
  });

  it('serves on a server the app gives it', async () => {
    const { createServer } = await import('node:http');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await using proxy = await CredentialProxy.start({
        apiKey: realKey,
        baseUrl: fake.url,
        listen: { server },
        publicUrl: 'https://p.example.test',
      });
      expect(proxy.listenAddress).toBeUndefined();
      const key = proxy.sandboxEnv(stubSandbox('sb-server').sandbox).ANTHROPIC_API_KEY!;
      const port = (server.address() as { port: number }).port;
      expect((await send(`http://127.0.0.1:${port}/v1/messages`, { headers: { 'x-api-key': key }, body: messageBody })).status).toBe(200);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('createOptions: the host route for providers that have one, the public URL through the network otherwise', async () => {
    await using proxy = await startUrlProxy();
    const localProvider = createLocalSandboxProvider();
    const routed = proxy.createOptions(localProvider, { network: 'block' });
    expect(routed.network).toBe('block');
    expect(routed.providerOptions?.local).toBeDefined();
    expect(proxy.sandboxEnv('local').ANTHROPIC_BASE_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const cloud = stubProvider('stub-cloud');
    expect(proxy.createOptions(cloud, { env: { A: '1' } })).toEqual({ env: { A: '1' } });
    expect(proxy.createOptions(cloud, { network: 'allow' })).toEqual({ network: 'allow' });
    expect(proxy.createOptions(cloud, { network: 'block' }).network).toEqual({ allowCidrs: [], allowDomains: ['proxy.example.test'] });
    expect(proxy.createOptions(cloud, { network: { allowDomains: ['github.com'] } }).network).toEqual({
      allowCidrs: [],
      allowDomains: ['github.com', 'proxy.example.test'],
    });
    // Nothing secret travels in the create options.
    expect(JSON.stringify(proxy.createOptions(cloud, { network: 'block' }))).not.toMatch(/sk-ant|REAL-SECRET/);
    const cidrsOnly = stubProvider('cidrs-only', { allowDomains: false });
    expect(() => proxy.createOptions(cidrsOnly, { network: 'block' })).toThrow(SandboxCapabilityUnsupportedError);
    await using byAddress = await startUrlProxy({ publicUrl: 'http://203.0.113.7:8080' });
    expect(byAddress.createOptions(cidrsOnly, { network: 'block' }).network).toEqual({ allowCidrs: ['203.0.113.7/32'], allowDomains: [] });

    // Without the URL mode a provider without host routes is refused, as before.
    await using socketOnly = await CredentialProxy.start({ apiKey: realKey });
    expect(() => socketOnly.createOptions(cloud)).toThrow(SandboxCapabilityUnsupportedError);
  });
});

// Everything writable in the sandbox, and the environment and argv of every process in it. The
// key arrives on stdin, so that the scan's own argv and environment do not hold it.
const scan = `
IFS= read -r needle
set -- "$needle"
hits=0
for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
  if tr '\\0' '\\n' < "$f" 2>/dev/null | grep -qF "$1"; then echo "found in $f"; hits=1; fi
done
found=$(grep -rlsF -- "$1" /tmp /root /workspace /home /var /run /etc 2>/dev/null)
if [ -n "$found" ]; then echo "found in $found"; hits=1; fi
echo "processes=$(ls -d /proc/[0-9]* | wc -l)"
exit $hits`;

// curl inside the sandbox: the path a real cloud sandbox takes to a public URL, here through the
// emulated sandbox's egress to the test internet, where `proxy.test` routes to the proxy's listener.
const curlMessages = [
  '/bin/sh',
  '-c',
  'curl -sS -X POST "$ANTHROPIC_BASE_URL$1" -H "x-api-key: $ANTHROPIC_API_KEY" -H "content-type: application/json" -H "anthropic-version: 2023-06-01" --data-binary @- -w "\\nstatus=%{http_code}"',
  'curl-messages',
];

/**
 * The curl scenario on a provider without host routes: a blocked sandbox reaches the fake API
 * through the proxy's public URL with its own placeholder, reaches nothing else, holds the real key
 * nowhere, and its placeholder is refused once it ended.
 */
async function curlThroughPublicUrl(
  proxy: CredentialProxy,
  provider: SandboxProvider,
  /** Where the test itself reaches the listener, and the CA a TLS listener's certificate is signed by. */
  listener: { url: string; ca?: string; servername?: string },
): Promise<void> {
  expect(provider.capabilities.hostRoutes).toBe(false);
  const options = proxy.createOptions(provider, { network: 'block', timeoutMs: 5 * 60_000 });
  // 'block' became "the proxy's host and nothing else".
  expect(options.network).toEqual({ allowCidrs: [], allowDomains: ['proxy.test'] });
  const sandbox = await provider.create(options);
  let ended = false;
  try {
    const env: Record<string, string> = proxy.sandboxEnv(sandbox);
    expect(env).toEqual({ ANTHROPIC_BASE_URL: proxy.publicUrl, ANTHROPIC_API_KEY: proxy.grant(sandbox).placeholder });
    if (listener.ca) {
      // TLS is end to end: without the test CA the sandbox does not trust the listener.
      const untrusted = await sandbox.run([...curlMessages, '/v1/messages'], { env, stdin: messageBody });
      expect(untrusted.exitCode).toBe(60);
      // The sandbox trusts the test CA, as a real one trusts the public URL's certificate.
      await sandbox.files.write('/tmp/proxy-ca.pem', listener.ca);
      env.CURL_CA_BUNDLE = '/tmp/proxy-ca.pem';
    }
    const seen = fake.requests.length;
    const answer = await sandbox.run([...curlMessages, '/v1/messages?beta=true'], { env, stdin: messageBody });
    expect(answer.stderr).toBe('');
    expect(answer.stdout).toContain('event: message_start');
    expect(answer.stdout).toContain('Echo: hello');
    expect(answer.stdout).toContain('status=200');
    const upstream = fake.requests.slice(seen);
    expect(upstream.map((request) => [request.url, request.headers['x-api-key']])).toEqual([['/v1/messages?beta=true', realKey]]);
    expect(proxy.grant(sandbox).usage).toMatchObject({ requests: 1, tokens: { inputTokens: 10, outputTokens: 5 } });

    // Other paths are refused by the proxy; other hosts by the sandbox's network.
    const models = await sandbox.run([...curlMessages, '/v1/models'], { env, stdin: '{}' });
    expect(models.stdout).toContain('"not_found_error"');
    expect(models.stdout).toContain('status=404');
    const elsewhere = await sandbox.run(['curl', '-sS', '-m', '20', 'http://allowed.test/']);
    expect(elsewhere.stdout).not.toContain('hello from');

    // Nothing in the sandbox holds the key: no process environment or argv, no file.
    const scanned = await sandbox.run(['/bin/sh', '-c', scan, 'scan'], { stdin: `${realKey}\n` });
    expect(scanned.stdout).toMatch(/processes=\d+/);
    expect(scanned.stdout).not.toContain('found in');
    expect(scanned.exitCode).toBe(0);
    // The scan itself works: a planted copy is found.
    await sandbox.files.write('/tmp/planted', `x${realKey}x`);
    expect((await sandbox.run(['/bin/sh', '-c', scan, 'scan'], { stdin: `${realKey}\n` })).exitCode).toBe(1);
    await sandbox.files.remove('/tmp/planted');

    const placeholder = env.ANTHROPIC_API_KEY!;
    await sandbox.terminate();
    ended = true;
    await vi.waitFor(() => expect(proxy.grant(sandbox).revokedReason).toMatch(/^sandbox ended/));
    const after = await send(`${listener.url}/v1/messages`, {
      headers: { 'x-api-key': placeholder },
      body: messageBody,
      ca: listener.ca,
      servername: listener.servername,
    });
    expect(after).toMatchObject({ status: 401, body: { error: { type: 'authentication_error' } } });
    expect(after.body.error.message).toContain(`sandbox ${sandbox.id} (${provider.id}) was revoked`);
  } finally {
    if (!ended) await sandbox.terminate();
  }
}

describe('credential proxy URL mode on the Modal emulator (real modal SDK, our adapter)', () => {
  let proxy: CredentialProxy;
  let emulator: ModalEmulatorProcess | undefined;
  let client: ModalClient | undefined;
  let provider: ModalSandboxProvider;

  beforeAll(async () => {
    proxy = await CredentialProxy.start({ apiKey: realKey, baseUrl: fake.url, listen: { port: 0 }, publicUrl: 'http://proxy.test' });
    // proxy.test is one more host of the emulator's test internet: its port 80 is the proxy's listener.
    emulator = await spawnModalEmulator({
      testInternet: { hosts: { 'proxy.test': { address: '203.0.113.10', ports: { 80: proxy.listenAddress!.port } } } },
    });
    process.env.MODAL_SERVER_URL = emulator.url;
    client = new ModalClient({ tokenId: 'ak-emulator', tokenSecret: 'as-emulator', logLevel: 'error' });
    provider = createModalSandboxProvider({ client, appName: 'sandport-credential-url', encryptPortsByDefault: false });
  }, 120_000);
  afterAll(async () => {
    client?.close();
    await emulator?.close();
    await proxy?.close();
  }, 120_000);

  it('a blocked sandbox reaches the fake API through the public URL with its own placeholder; the real key is nowhere inside; its end revokes it', async () => {
    await curlThroughPublicUrl(proxy, provider, { url: `http://127.0.0.1:${proxy.listenAddress!.port}` });
  }, 180_000);

  // The Modal emulator's sandboxes do not see the host's files and have no route to a registry,
  // so the pinned binary is uploaded through the files API (about 380 MB, some seconds here).
  const noCli = agentSkipReason();
  it.skipIf(noCli !== undefined)(
    `AgentSession runs the real claude CLI in a Modal emulator sandbox through the public URL${noCli ? ` (skipped: ${noCli})` : ''}`,
    async () => {
      const sandbox = await provider.create(proxy.createOptions(provider, { network: 'block', timeoutMs: 5 * 60_000 }));
      try {
        // The host side of the local providers' mount is where the pinned binary lies.
        const mount = claudeCodeHostMount();
        const [volume] = Object.values(mount.createOptions.volumes ?? {});
        const binary = join((volume as { source: string }).source, basename(mount.executable));
        await sandbox.files.write('/opt/claude', Readable.toWeb(createReadStream(binary)) as ReadableStream<Uint8Array>);
        expect((await sandbox.run(['chmod', '755', '/opt/claude'])).exitCode).toBe(0);
        const seen = fake.requests.length;
        await using agent = await AgentSession.start(sandbox, {
          executable: '/opt/claude',
          credentials: proxy,
          env: testEnv,
          closeGraceMs: 1_000,
        });
        const result = await agent.send('BASH: env | grep -E "ANTHROPIC_(API_KEY|BASE_URL)" | sort').result;
        // The agent's own Bash sees this sandbox's placeholder and the public URL, never the key.
        expect(result.text).toContain(`ANTHROPIC_API_KEY=${proxy.grant(sandbox).placeholder}`);
        expect(result.text).toContain('ANTHROPIC_BASE_URL=http://proxy.test');
        expect(result.text).not.toContain(realKey);
        const upstream = fake.requests.slice(seen);
        expect(upstream.length).toBeGreaterThan(1);
        expect(upstream.every((request) => request.headers['x-api-key'] === realKey)).toBe(true);
        expect(proxy.grant(sandbox).usage.requests).toBe(upstream.length);
      } finally {
        await sandbox.terminate();
      }
      await vi.waitFor(() => expect(proxy.grant(sandbox).revokedReason).toMatch(/^sandbox ended/));
    },
    180_000,
  );
});

describe('credential proxy URL mode on the E2B emulator over HTTPS (real e2b SDK, our adapter, an https server of the app)', () => {
  let proxy: CredentialProxy;
  let emulator: E2bEmulatorProcess | undefined;
  let server: ReturnType<typeof createHttpsServer>;
  let ca: string;

  beforeAll(async () => {
    // A certificate for proxy.test, signed by nobody the sandbox trusts until the test says so.
    const pems = await generate([{ name: 'commonName', value: 'proxy.test' }], {
      notAfterDate: new Date(Date.now() + 24 * 3600 * 1000),
      extensions: [
        { name: 'basicConstraints', cA: true },
        { name: 'subjectAltName', altNames: [{ type: 2 as const, value: 'proxy.test' }] },
      ],
    });
    ca = pems.cert;
    server = createHttpsServer({ key: pems.private, cert: pems.cert });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = await CredentialProxy.start({ apiKey: realKey, baseUrl: fake.url, listen: { server }, publicUrl: 'https://proxy.test' });
    const port = (server.address() as { port: number }).port;
    emulator = await spawnE2bEmulator({ testInternet: { hosts: { 'proxy.test': { address: '203.0.113.10', ports: { 443: port } } } } });
  }, 120_000);
  afterAll(async () => {
    await emulator?.close();
    await proxy?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  }, 120_000);

  it('a blocked sandbox reaches the fake API through the https public URL with its own placeholder; the real key is nowhere inside; its end revokes it', async () => {
    const provider = createE2bSandboxProvider({
      apiKey: 'e2b_emulator',
      apiUrl: emulator!.url,
      sandboxUrl: emulator!.sandboxUrl,
      domain: emulator!.domain,
      tunnelScheme: 'http',
    });
    const port = (server.address() as { port: number }).port;
    // The test's own request connects to the listener and checks the certificate for proxy.test.
    await curlThroughPublicUrl(proxy, provider, { url: `https://127.0.0.1:${port}`, ca, servername: 'proxy.test' });
  }, 180_000);
});
