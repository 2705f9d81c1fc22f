import {
  SandboxEmitter,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  announceCreated,
  checkStringArgument,
  createSandboxOptionsSchema,
  parseOptions,
  raceWithSignal,
  retryIdempotent,
  type CreateSandboxOptions,
  type SandboxCapabilities,
  type SandboxProvider,
  type SignalOptions,
} from '../../src/kit/index.js';
import { BridgeClient } from './cloudflare-client.js';
import { mapCloudflareError } from './cloudflare-errors.js';
import {
  cloudflareBridgeFeatures,
  cloudflareBridgeVersions,
  cloudflareCapabilities,
  cloudflareIdPattern,
  detectCloudflareBridgeVersion,
  planCloudflareConnection,
  planCloudflareCreate,
  type CloudflareBridgeFeatures,
  type CloudflareBridgeVersion,
  type CloudflareConnection,
  type CloudflareMarker,
} from './cloudflare-options.js';
import { CloudflareSandboxImpl, readMarker, writeMarker, type CloudflareSandbox } from './cloudflare-sandbox.js';

const provider = 'cloudflare';

export interface CloudflareSandboxProviderOptions {
  /** The deployed bridge Worker's URL (`https://<name>.<account>.workers.dev`). @default CLOUDFLARE_SANDBOX_BRIDGE_URL */
  url?: string;
  /** The bridge's bearer token (the Worker's `SANDBOX_API_KEY` secret). @default CLOUDFLARE_SANDBOX_BRIDGE_TOKEN */
  token?: string;
  /**
   * The bridge's version. Without it, the first call reads the bridge's OpenAPI document and
   * picks 0.13 when the bridge has its process routes, else 0.12. Capabilities are the same for
   * both (see `cloudflareBridgeFeatures` for what differs). @default detected
   */
  version?: CloudflareBridgeVersion;
  /** The `fetch` for every request (a proxy, a test). @default globalThis.fetch */
  fetch?: typeof fetch;
}

/**
 * Sandboxes on Cloudflare (`@cloudflare/sandbox`) through the SDK's bridge Worker, over HTTP.
 *
 * Ids are the bridge's (26 lowercase base32 characters, from `POST /v1/sandbox`). The bridge
 * gives any well-formed id a container, and a fresh empty one whenever the previous container
 * stopped (its fixed 10-minute `sleepAfter`, a crash, a platform update): a create writes a
 * marker in `/tmp`, and `fromId` and `poll` report a sandbox without it as gone
 * (`SandboxNotFoundError`, `crashed`) rather than hand back an empty one.
 */
export class CloudflareSandboxProvider implements SandboxProvider {
  readonly specificationVersion = 'sandbox-v1' as const;
  readonly id = provider;
  readonly events = new SandboxEmitter();
  readonly #options: CloudflareSandboxProviderOptions;
  #client: { connection: CloudflareConnection; client: BridgeClient } | undefined;
  #version: Promise<CloudflareBridgeVersion> | undefined;

  constructor(options: CloudflareSandboxProviderOptions = {}) {
    for (const key of ['url', 'token'] as const)
      if (options[key] !== undefined && typeof options[key] !== 'string')
        throw new SandboxInvalidArgumentError({ message: `${key} must be a string`, argument: key, provider });
    if (options.version !== undefined && !cloudflareBridgeVersions.includes(options.version))
      throw new SandboxInvalidArgumentError({
        message: `version is one of ${cloudflareBridgeVersions.join(', ')}`,
        argument: 'version',
        provider,
      });
    this.#options = options;
  }

  /**
   * The same flags for both bridge versions, so they are known before any request (construction
   * does no I/O); `features()` tells what the detected version does beyond them.
   */
  get capabilities(): SandboxCapabilities {
    return cloudflareCapabilities;
  }

  /** The bridge's version, detected once (or the `version` option). */
  async bridgeVersion(options: SignalOptions = {}): Promise<CloudflareBridgeVersion> {
    options.signal?.throwIfAborted();
    if (this.#options.version) return this.#options.version;
    const client = this.#bridge();
    this.#version ??= retryIdempotent(
      'detectVersion',
      async () => {
        try {
          return detectCloudflareBridgeVersion(await client.openApi());
        } catch (error) {
          throw mapCloudflareError(error, { operation: 'detectVersion' });
        }
      },
      { provider, events: this.events },
    );
    this.#version.catch(() => (this.#version = undefined));
    return raceWithSignal(this.#version, { signal: options.signal, operation: 'detectVersion', provider });
  }

  /** What the bridge's version does beyond the capability flags (byte-exact output, native env and argv). */
  async features(options: SignalOptions = {}): Promise<CloudflareBridgeFeatures> {
    return cloudflareBridgeFeatures(await this.bridgeVersion(options));
  }

  async create(options: CreateSandboxOptions = {}): Promise<CloudflareSandbox> {
    const startedAt = Date.now();
    const parsed = parseOptions(createSandboxOptionsSchema, options, { provider, what: 'create options' });
    const plan = planCloudflareCreate(parsed);
    const signal = parsed.signal;
    signal?.throwIfAborted();
    const client = this.#bridge();
    const version = await this.bridgeVersion({ signal });
    const id = await raceWithSignal(
      retryIdempotent(
        'create',
        () => client.newId(signal).catch((error: unknown) => Promise.reject(mapCloudflareError(error, { operation: 'create' }))),
        { provider, events: this.events, signal },
      ),
      { signal, operation: 'create', provider },
    );
    const marker: CloudflareMarker = { sandboxId: id, workdir: plan.workdir, env: plan.env, ports: plan.ports, createdAt: Date.now() };
    try {
      // The first command under the id starts its container.
      await raceWithSignal(
        writeMarker(client, version, marker, signal).catch((error: unknown) =>
          Promise.reject(mapCloudflareError(error, { operation: 'create', sandboxId: id })),
        ),
        { signal, operation: 'create', provider },
      );
    } catch (error) {
      await client.destroy(id).catch(() => undefined);
      throw error;
    }
    const sandbox = new CloudflareSandboxImpl({
      client,
      version,
      sandboxId: id,
      name: parsed.name,
      warnings: plan.warnings,
      events: this.events,
      marker,
    });
    if (plan.entrypoint) {
      try {
        await sandbox.startEntrypoint(plan.entrypoint, signal);
      } catch (error) {
        await sandbox.terminate().catch(() => undefined);
        throw error;
      }
    }
    announceCreated(this.events, { provider, sandboxId: id, name: parsed.name, startedAt, warnings: plan.warnings });
    return sandbox;
  }

  /**
   * Attaches to a sandbox by id. Its marker must be there: an id the bridge cannot have, or whose
   * container lost its state (stopped and replaced by an empty one), is `SandboxNotFoundError`;
   * the empty container the look started is stopped again. The entrypoint of the original
   * create is not followed (its exit does not end the attached object).
   */
  async fromId(id: string, options: SignalOptions = {}): Promise<CloudflareSandbox> {
    checkStringArgument(id, 'id', provider);
    options.signal?.throwIfAborted();
    if (!cloudflareIdPattern.test(id))
      throw new SandboxNotFoundError({
        message: `No sandbox can have the id ${id}: the bridge takes lowercase base32 ids`,
        sandboxId: id,
        provider,
      });
    const client = this.#bridge();
    const version = await this.bridgeVersion(options);
    const marker = await raceWithSignal(
      retryIdempotent(
        'fromId',
        () =>
          readMarker(client, version, id, options.signal).catch((error: unknown) =>
            Promise.reject(mapCloudflareError(error, { operation: 'fromId', sandboxId: id })),
          ),
        { provider, events: this.events, signal: options.signal },
      ),
      { signal: options.signal, operation: 'fromId', provider },
    );
    if (!marker) {
      await client.destroy(id).catch(() => undefined);
      throw new SandboxNotFoundError({
        message: `Sandbox ${id} not found: it was terminated, or its container stopped and its state is lost (the bridge gives the id a fresh, empty container)`,
        sandboxId: id,
        provider,
      });
    }
    return new CloudflareSandboxImpl({ client, version, sandboxId: id, name: undefined, warnings: [], events: this.events, marker });
  }

  #bridge(): BridgeClient {
    if (!this.#client) {
      const connection = planCloudflareConnection(this.#options, process.env);
      this.#client = { connection, client: new BridgeClient({ connection, fetch: this.#options.fetch }) };
    }
    return this.#client.client;
  }
}

/** Creates the Cloudflare provider. Construction does no I/O; the connection is read at the first call. */
export function createCloudflareSandboxProvider(options: CloudflareSandboxProviderOptions = {}): CloudflareSandboxProvider {
  return new CloudflareSandboxProvider(options);
}
