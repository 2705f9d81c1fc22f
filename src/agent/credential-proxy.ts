import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
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
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { SandboxInvalidArgumentError } from '../errors/index.js';
import { parseOptions } from '../kit/validate.js';
import type { CreateSandboxOptions } from '../spec/options.js';
import type { Sandbox, SandboxHostRoute, SandboxProvider } from '../spec/sandbox.js';
import { GrantTable, sameSecret, type SandboxBudget, type SandboxCredentialGrant } from './credential-grants.js';
import { defaultMaxRequestBodyBytes, serveUrlRequest, type UrlModeContext } from './credential-url.js';
import { openHostRoute, withHostRoute } from './host-route.js';
import { withPublicUrlReach } from './public-url-network.js';

export const credentialProxyOptionsSchema = z
  .object({
    apiKey: z.string().min(1).optional(),
    oauthToken: z.string().min(1).optional(),
    authToken: z.string().min(1).optional(),
    baseUrl: z.string().url().optional(),
    socketPath: z.string().startsWith('/').optional(),
    sandboxPort: z.number().int().min(1).max(65535).optional(),
    publicUrl: z
      .string()
      .url()
      .refine((value) => /^https?:$/.test(new URL(value).protocol), { message: 'must be an http: or https: URL' })
      .refine((value) => !new URL(value).search && !new URL(value).hash, { message: 'must have no query or fragment' })
      .optional(),
    listen: z
      .union([
        z.object({ host: z.string().min(1).optional(), port: z.number().int().min(0).max(65535) }).strict(),
        z
          .object({
            server: z.custom<Server>(
              (value) => value instanceof EventEmitter && typeof (value as Server).listen === 'function',
              'must be a node:http or node:https Server',
            ),
          })
          .strict(),
      ])
      .optional(),
    maxRequestBodyBytes: z.number().int().min(1).optional(),
    budget: z
      .object({
        maxRequests: z.number().int().min(0).optional(),
        maxTokens: z.number().int().min(0).optional(),
        maxSpendUsd: z.number().min(0).optional(),
        priceUsd: z.custom<NonNullable<SandboxBudget['priceUsd']>>((value) => typeof value === 'function', 'must be a function').optional(),
      })
      .strict()
      .refine((budget) => budget.maxSpendUsd === undefined || budget.priceUsd !== undefined, {
        message: 'maxSpendUsd needs priceUsd (the proxy knows no prices)',
        path: ['priceUsd'],
      })
      .optional(),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict()
  .refine((options) => [options.apiKey, options.oauthToken, options.authToken].filter(Boolean).length === 1, {
    message: 'give exactly one of apiKey, oauthToken, authToken',
  })
  .refine((options) => (options.publicUrl === undefined) === (options.listen === undefined), {
    message: 'publicUrl and listen go together: listen says where the URL mode listens, publicUrl how sandboxes reach it',
    path: ['listen'],
  })
  .refine((options) => options.publicUrl !== undefined || (options.maxRequestBodyBytes === undefined && options.budget === undefined), {
    message: 'maxRequestBodyBytes and budget limit the URL mode: give publicUrl and listen too',
    path: ['publicUrl'],
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
  /**
   * URL mode, for sandboxes that are not on this host (providers without `capabilities.hostRoutes`):
   * the URL sandboxes reach this proxy at (`https://proxy.example.com`, or with a path prefix,
   * which is stripped from requests that carry it). It becomes the sandbox's `ANTHROPIC_BASE_URL`.
   * The app puts it in front of `listen` (a load balancer, a tunnel, a reverse proxy with TLS).
   * Must be `http:` or `https:`, with no query. Needs `listen`. @default no URL mode
   */
  publicUrl?: string;
  /**
   * Where the URL mode listens. `{ host, port }`: a server of the proxy's own (`port: 0` picks a
   * free port, see `listenAddress`; `host` @default '127.0.0.1'). `{ server }`: a `node:http` or
   * `node:https` server of yours given over to the proxy (every request it receives is the
   * proxy's; you call `listen` on it and close it). Needs `publicUrl`.
   */
  listen?: { host?: string; port: number } | { server: Server };
  /**
   * URL mode: the largest request body forwarded, in bytes; a larger one is refused with 413
   * (`request_too_large`). @default 33554432 (32 MiB, the Messages API's own request limit)
   */
  maxRequestBodyBytes?: number;
  /** URL mode: per-sandbox request, token or spend budgets (see `SandboxBudget`). @default none */
  budget?: SandboxBudget;
  signal?: AbortSignal;
}

/** The URL mode's settings once started. */
interface UrlMode {
  readonly publicUrl: string;
  readonly server: Server;
  readonly ownsServer: boolean;
  readonly grants: GrantTable;
  readonly context: UrlModeContext;
  readonly address: { host: string; port: number } | undefined;
  readonly listener: (request: IncomingMessage, response: ServerResponse) => void;
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
 * For sandboxes that are not on this host, the URL mode (`publicUrl` + `listen`) serves the same
 * swap on an address the app chooses. There every sandbox gets its own placeholder, bound to its
 * id, revoked when it ends; only the model API's paths are forwarded, bodies are capped and an
 * optional per-sandbox budget applies. `createOptions` and `sandboxEnv` pick the provider's host
 * route when it has one and the URL mode otherwise, so the app's code is the same for both.
 *
 * @example
 * const proxy = await CredentialProxy.start({ apiKey: process.env.ANTHROPIC_API_KEY });
 * const sandbox = await provider.create(proxy.createOptions(provider, { network: 'block' }));
 * const agent = await AgentSession.start(sandbox, { credentials: proxy });
 *
 * @example
 * // Any provider, including cloud ones: the proxy listens on :8080 behind https://proxy.example.com
 * const proxy = await CredentialProxy.start({
 *   apiKey: process.env.ANTHROPIC_API_KEY,
 *   listen: { host: '0.0.0.0', port: 8080 },
 *   publicUrl: 'https://proxy.example.com',
 *   budget: { maxRequests: 500 },
 * });
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
  private url: UrlMode | undefined;
  private readonly watchedProviders = new Map<SandboxProvider, (event: { provider: string; sandboxId: string; reason: string }) => void>();

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
   * Starts listening: on the unix socket always, and in the URL mode on `listen` too. Throws
   * `SandboxInvalidArgumentError` unless exactly one credential is given, for `publicUrl` without
   * `listen` (or the other way round), for URL-mode limits without the URL mode and for a bad
   * field (named); rejects with the listen error (`EADDRINUSE`, …) when `listen` cannot be bound.
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
    if (parsed.publicUrl && parsed.listen) {
      try {
        await proxy.startUrlMode(parsed.publicUrl, parsed.listen, parsed.maxRequestBodyBytes, parsed.budget ?? {});
      } catch (error) {
        await proxy.close();
        throw error;
      }
    }
    return proxy;
  }

  /** The URL mode's public URL (`publicUrl`), or `undefined` without the URL mode. */
  get publicUrl(): string | undefined {
    return this.url?.publicUrl;
  }

  /**
   * Where the URL mode's own server listens (`listen: { host, port }`; the port is the bound one
   * when `0` was asked for). `undefined` without the URL mode, or with `listen: { server }`.
   */
  get listenAddress(): { host: string; port: number } | undefined {
    return this.url?.address;
  }

  private async startUrlMode(
    publicUrl: string,
    listen: NonNullable<CredentialProxyOptions['listen']>,
    maxRequestBodyBytes: number | undefined,
    budget: SandboxBudget,
  ): Promise<void> {
    const variable = credentialVariable[this.kind];
    const base = publicUrl.replace(/\/+$/, '');
    const grants = new GrantTable({ kind: this.kind, variable, publicUrl: base, budget });
    const context: UrlModeContext = {
      pathPrefix: new URL(base).pathname.replace(/\/+$/, ''),
      maxRequestBodyBytes: maxRequestBodyBytes ?? defaultMaxRequestBodyBytes,
      grants,
      presented: (request) => this.presented(request),
      forward: (request, response, path, body, onReply) => this.forward(request, response, { path, body, onReply }),
    };
    const ownsServer = !('server' in listen);
    const server = 'server' in listen ? listen.server : createServer();
    const listener = (request: IncomingMessage, response: ServerResponse): void => serveUrlRequest(context, request, response);
    server.on('request', listener);
    let address: UrlMode['address'];
    if (!('server' in listen)) {
      const host = listen.host ?? '127.0.0.1';
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(listen.port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      address = { host, port: (server.address() as AddressInfo).port };
    }
    this.url = { publicUrl: base, server, ownsServer, grants, context, address, listener };
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

  /**
   * `options` plus what lets sandboxes of `provider` reach this proxy, for `provider.create`: the
   * provider's host route when it has one (`capabilities.hostRoutes`), otherwise, in the URL
   * mode, the network setting that reaches `publicUrl` (an allowlist gets the public URL's host;
   * `network: 'block'` becomes an allowlist of that host alone, so the sandbox reaches the proxy
   * and nothing else, as a host route does). No secret goes into these options: the per-sandbox
   * placeholder is issued once the sandbox exists (`sandboxEnv(sandbox)`, `grant(sandbox)`).
   * In the URL mode the proxy also watches `provider.events` to revoke a sandbox's placeholder
   * as soon as the provider reports its end.
   *
   * Throws `SandboxCapabilityUnsupportedError`: `hostRoutes` for a provider without host routes
   * when the proxy has no URL mode; `network.allowDomains` / `network.allowCidrs` when a blocked
   * or allowlisted sandbox of this provider cannot be let through to the public URL's host.
   */
  createOptions(provider: SandboxProvider, options: CreateSandboxOptions = {}): CreateSandboxOptions {
    if (!this.url || !isProvider(provider) || provider.capabilities.hostRoutes) return withHostRoute(options, this.route(provider));
    this.watchProvider(provider);
    return withPublicUrlReach(options, this.url.publicUrl, provider);
  }

  /**
   * Environment for the CLI inside a sandbox: `ANTHROPIC_BASE_URL` and the placeholder
   * credential. With a provider id (the original form), the route opened for that provider by
   * `createOptions` / `route`, and the proxy's one placeholder. With the sandbox itself: the same
   * when its provider got a host route, and otherwise, in the URL mode, the public URL and the
   * sandbox's own placeholder (`grant(sandbox)`). Throws `SandboxInvalidArgumentError` (argument
   * `sandbox`) for a provider id when the URL mode needs the sandbox to issue its placeholder.
   */
  sandboxEnv(target: string | Sandbox): Record<string, string> {
    const providerId = typeof target === 'string' ? target : target.provider;
    const route = this.routes.get(providerId);
    if (this.url && !route) {
      if (typeof target === 'string') {
        throw new SandboxInvalidArgumentError({
          message: `Sandboxes of provider "${providerId}" reach this proxy at its public URL, with a placeholder of their own: pass the sandbox, not its provider id`,
          argument: 'sandbox',
        });
      }
      return { ...this.grant(target).env };
    }
    const sandboxUrl = route?.sandboxUrl ?? `http://127.0.0.1:${this.sandboxPort}`;
    return { ANTHROPIC_BASE_URL: sandboxUrl, [credentialVariable[this.kind]]: this.placeholder };
  }

  /**
   * URL mode: the placeholder credential of `sandbox`, issued on the first call and bound to
   * `sandbox.id` (later calls return the same grant, revoked or not: an ended sandbox never gets
   * a new one). It is revoked when `sandbox.wait()` resolves, when the sandbox's provider (if it
   * went through `createOptions`) emits `sandbox-terminated`, on `revoke` and on `close`; a
   * revoked placeholder is refused with 401 and a message naming the sandbox and why.
   * Throws `SandboxInvalidArgumentError` (argument `publicUrl`) without the URL mode. Idempotent.
   */
  grant(sandbox: Sandbox): SandboxCredentialGrant {
    if (!this.url) {
      throw new SandboxInvalidArgumentError({
        message: 'Per-sandbox placeholders belong to the URL mode: start the proxy with publicUrl and listen',
        argument: 'publicUrl',
      });
    }
    const { grants } = this.url;
    const { grant, created } = grants.issue(sandbox.provider, sandbox.id);
    if (created) {
      if (this.closing) grants.revoke(grant, 'the proxy was closed');
      else {
        sandbox.wait({ signal: grant.watching.signal }).then(
          (status) => grants.revoke(grant, `sandbox ended (${status.reason})`),
          () => undefined,
        );
      }
    }
    return grant;
  }

  /**
   * URL mode: revokes the placeholder of the sandbox `sandboxId` of provider `providerId` now,
   * dropping its requests in flight. Returns whether there was a valid one. Idempotent.
   */
  revoke(providerId: string, sandboxId: string, reason = 'revoked by the app'): boolean {
    const grant = this.url?.grants.find(providerId, sandboxId);
    if (!grant || grant.revokedReason) return false;
    this.url!.grants.revoke(grant, reason);
    return true;
  }

  /** Stops listening, revokes every per-sandbox placeholder and drops open connections. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const [provider, listener] of this.watchedProviders) provider.events.off('sandbox-terminated', listener);
      this.watchedProviders.clear();
      this.server.closeAllConnections();
      const url = this.url;
      url?.grants.revokeAll('the proxy was closed');
      // A server of the app's stays the app's: it only stops reaching this proxy.
      url?.server.off('request', url.listener);
      await Promise.all([
        new Promise<void>((resolve) => this.server.close(() => resolve())),
        url?.ownsServer
          ? new Promise<void>((resolve) => {
              url.server.closeAllConnections();
              url.server.close(() => resolve());
            })
          : undefined,
      ]);
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

  private watchProvider(provider: SandboxProvider): void {
    if (this.watchedProviders.has(provider) || this.closing) return;
    const listener = (event: { provider: string; sandboxId: string; reason: string }): void => {
      this.revoke(event.provider, event.sandboxId, `sandbox ended (${event.reason})`);
    };
    provider.events.on('sandbox-terminated', listener);
    this.watchedProviders.set(provider, listener);
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
    this.forward(request, response, undefined);
  }

  /**
   * Sends the request upstream with the real credential and the reply back. Without `url`, the
   * request's own path and body stream through (the socket mode); with it, `url.path` (plus the
   * request's query) and the buffered `url.body`, and `url.onReply` sees the reply.
   */
  private forward(
    request: IncomingMessage,
    response: ServerResponse,
    url: { path: string; body: Buffer; onReply: (reply: IncomingMessage) => void } | undefined,
  ): void {
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (!droppedRequestHeaders.has(name) && value !== undefined) headers[name] = value;
    }
    if (this.kind === 'apiKey') headers['x-api-key'] = this.secret;
    else headers.authorization = `Bearer ${this.secret}`;
    if (url) headers['content-length'] = String(url.body.length);
    else if (request.headers['content-length']) headers['content-length'] = request.headers['content-length'];
    const target = new URL(this.upstream);
    const [requestPath = '/', query] = (request.url ?? '/').split(/\?(.*)/s);
    const path = url ? url.path : requestPath;
    target.pathname = `${target.pathname.replace(/\/$/, '')}${path}`;
    target.search = query ? `?${query}` : '';
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const upstream = send(target, { method: request.method, headers }, (reply) => {
      this.forwarded++;
      url?.onReply(reply);
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
    if (url) upstream.end(url.body);
    else request.pipe(upstream);
  }
}

const credentialVariable = {
  apiKey: 'ANTHROPIC_API_KEY',
  oauthToken: 'CLAUDE_CODE_OAUTH_TOKEN',
  authToken: 'ANTHROPIC_AUTH_TOKEN',
} as const;

function isProvider(value: unknown): value is SandboxProvider {
  return typeof value === 'object' && value !== null && typeof (value as SandboxProvider).capabilities === 'object';
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
