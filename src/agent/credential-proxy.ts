import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { parseOptions } from '../kit/validate.js';
import type { CreateSandboxOptions } from '../spec/options.js';
import type { SandboxHostRoute, SandboxProvider } from '../spec/sandbox.js';
import { openHostRoute, withHostRoute } from './host-route.js';

export const credentialProxyOptionsSchema = z
  .object({
    apiKey: z.string().min(1).optional(),
    oauthToken: z.string().min(1).optional(),
    authToken: z.string().min(1).optional(),
    baseUrl: z.string().url().optional(),
    socketPath: z.string().startsWith('/').optional(),
    sandboxPort: z.number().int().min(1).max(65535).optional(),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict()
  .refine((options) => [options.apiKey, options.oauthToken, options.authToken].filter(Boolean).length === 1, {
    message: 'give exactly one of apiKey, oauthToken, authToken',
  });

export interface CredentialProxyOptions {
  /** An Anthropic API key; the CLI sends the placeholder as `x-api-key`. */
  apiKey?: string;
  /** A Claude subscription token (`claude setup-token`); sent upstream as `Authorization: Bearer`. */
  oauthToken?: string;
  /** A bearer token for a gateway (`ANTHROPIC_AUTH_TOKEN`). */
  authToken?: string;
  /** Upstream API base URL; a path prefix is kept. @default 'https://api.anthropic.com' */
  baseUrl?: string;
  /** Host unix socket to listen on. @default a fresh `<tmpdir>/sandport-proxy-…/proxy.sock` */
  socketPath?: string;
  /** Port the CLI connects to inside the sandbox (on the sandbox's own loopback). @default 41917 */
  sandboxPort?: number;
  signal?: AbortSignal;
}

// Only what the API needs travels upstream: no cookies, no proxy headers, no hop-by-hop headers.
const droppedRequestHeaders = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'cookie',
  'x-api-key',
  'authorization',
  'content-length',
]);

/**
 * A host-side forwarder that keeps the real credential out of the sandbox. The sandbox gets a
 * placeholder credential and `ANTHROPIC_BASE_URL` pointing at one opened route to this proxy's
 * unix socket; the proxy checks the placeholder, swaps in the real credential and forwards to
 * the real API. The agent's own tools can read the placeholder, which is worth nothing outside
 * that route.
 *
 * @example
 * const proxy = await CredentialProxy.start({ apiKey: process.env.ANTHROPIC_API_KEY });
 * const sandbox = await provider.create(proxy.createOptions(provider, { network: 'block' }));
 * const agent = await AgentSession.start(sandbox, { credentials: proxy });
 */
export class CredentialProxy {
  /** Host unix socket the proxy listens on. */
  readonly socketPath: string;
  /** Port the CLI connects to inside the sandbox. */
  readonly sandboxPort: number;
  /** Upstream base URL. */
  readonly upstream: URL;
  /** Requests forwarded so far (refused ones are not counted). */
  forwarded = 0;
  private readonly placeholder: string;
  private readonly kind: 'apiKey' | 'oauthToken' | 'authToken';
  private readonly secret: string;
  private closing: Promise<void> | undefined;
  private readonly routes = new Map<string, SandboxHostRoute>();

  private constructor(
    private readonly server: Server,
    private readonly ownedDir: string | undefined,
    options: { socketPath: string; sandboxPort: number; upstream: URL; kind: 'apiKey' | 'oauthToken' | 'authToken'; secret: string },
  ) {
    this.socketPath = options.socketPath;
    this.sandboxPort = options.sandboxPort;
    this.upstream = options.upstream;
    this.kind = options.kind;
    this.secret = options.secret;
    const random = randomBytes(24).toString('hex');
    // Prefixed like the real thing, for CLIs that check the shape of a credential.
    this.placeholder = options.kind === 'apiKey' ? `sk-ant-api03-sandport-proxy-${random}` : `sk-ant-oat01-sandport-proxy-${random}`;
  }

  /**
   * Starts listening. Throws `SandboxInvalidArgumentError` unless exactly one credential is given.
   */
  static async start(options: CredentialProxyOptions): Promise<CredentialProxy> {
    const parsed = parseOptions(credentialProxyOptionsSchema, options, { what: 'credential proxy options' });
    parsed.signal?.throwIfAborted();
    const kind = parsed.apiKey ? 'apiKey' : parsed.oauthToken ? 'oauthToken' : 'authToken';
    const ownedDir = parsed.socketPath ? undefined : await mkdtemp(join(tmpdir(), 'sandport-proxy-'));
    // The sandbox side of the route connects as an unprivileged host uid; the directory is
    // traversable and the socket connectable, but the proxy only serves holders of the placeholder.
    if (ownedDir) await chmod(ownedDir, 0o711);
    const socketPath = parsed.socketPath ?? join(ownedDir!, 'proxy.sock');
    const server = createServer();
    const proxy = new CredentialProxy(server, ownedDir, {
      socketPath,
      sandboxPort: parsed.sandboxPort ?? 41917,
      upstream: new URL(parsed.baseUrl ?? 'https://api.anthropic.com'),
      kind,
      secret: (parsed.apiKey ?? parsed.oauthToken ?? parsed.authToken)!,
    });
    server.on('request', (request, response) => proxy.handle(request, response));
    await rm(socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    await chmod(socketPath, 0o666);
    return proxy;
  }

  /**
   * The route from sandboxes of `provider` to this proxy, opened by the provider
   * (`provider.openHostRoute`). Throws `SandboxCapabilityUnsupportedError` (capability
   * `hostRoutes`) when the provider has none.
   */
  route(provider: SandboxProvider): SandboxHostRoute {
    const route = openHostRoute(provider, this.socketPath, { sandboxPort: this.sandboxPort });
    this.routes.set(provider.id, route);
    return route;
  }

  /** `options` plus what opens the route, for `provider.create`. */
  createOptions(provider: SandboxProvider, options: CreateSandboxOptions = {}): CreateSandboxOptions {
    return withHostRoute(options, this.route(provider));
  }

  /**
   * Environment for the CLI inside a sandbox of the provider `providerId` (created with
   * `createOptions(provider)`): the base URL of the route and the placeholder credential.
   */
  sandboxEnv(providerId: string): Record<string, string> {
    const variable = { apiKey: 'ANTHROPIC_API_KEY', oauthToken: 'CLAUDE_CODE_OAUTH_TOKEN', authToken: 'ANTHROPIC_AUTH_TOKEN' }[this.kind];
    const sandboxUrl = this.routes.get(providerId)?.sandboxUrl ?? `http://127.0.0.1:${this.sandboxPort}`;
    return { ANTHROPIC_BASE_URL: sandboxUrl, [variable]: this.placeholder };
  }

  /** Stops listening and drops open connections. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.server.closeAllConnections();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      if (this.ownedDir) await rm(this.ownedDir, { recursive: true, force: true });
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private presented(request: IncomingMessage): string | undefined {
    if (this.kind === 'apiKey') return header(request, 'x-api-key');
    const authorization = header(request, 'authorization');
    return authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined;
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const presented = this.presented(request);
    if (!presented || !sameSecret(presented, this.placeholder)) {
      request.resume();
      response.writeHead(401, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          type: 'error',
          error: { type: 'authentication_error', message: 'sandport credential proxy: missing or wrong placeholder credential' },
        }),
      );
      return;
    }
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (!droppedRequestHeaders.has(name) && value !== undefined) headers[name] = value;
    }
    if (this.kind === 'apiKey') headers['x-api-key'] = this.secret;
    else headers.authorization = `Bearer ${this.secret}`;
    if (request.headers['content-length']) headers['content-length'] = request.headers['content-length'];
    const target = new URL(this.upstream);
    const [path = '/', query] = (request.url ?? '/').split(/\?(.*)/s);
    target.pathname = `${target.pathname.replace(/\/$/, '')}${path}`;
    target.search = query ? `?${query}` : '';
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const upstream = send(target, { method: request.method, headers }, (reply) => {
      this.forwarded++;
      const replyHeaders = { ...reply.headers };
      delete replyHeaders.connection;
      delete replyHeaders['keep-alive'];
      response.writeHead(reply.statusCode ?? 502, replyHeaders);
      reply.pipe(response);
    });
    upstream.on('error', (error) => {
      if (response.headersSent) return void response.destroy(error);
      response.writeHead(502, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          type: 'error',
          error: { type: 'api_error', message: `sandport credential proxy: upstream unreachable (${error.message})` },
        }),
      );
    });
    response.on('close', () => upstream.destroy());
    request.pipe(upstream);
  }
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
