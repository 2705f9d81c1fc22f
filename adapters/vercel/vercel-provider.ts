import { randomBytes } from 'node:crypto';
import type { Sandbox as VercelSdkSandbox } from '@vercel/sandbox';
import {
  SandboxEmitter,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  announceCreated,
  checkStringArgument,
  createSandboxOptionsSchema,
  listSandboxesOptionsSchema,
  loadOptionalPeer,
  matchesTags,
  parseOptions,
  raceWithSignal,
  retryIdempotent,
  type CreateSandboxOptions,
  type ListSandboxesOptions,
  type SandboxInfo,
  type SandboxProvider,
  type SandboxSnapshotRef,
  type SignalOptions,
} from '../../src/kit/index.js';
import { mapVercelError } from './vercel-errors.js';
import {
  checkVercelSnapshot,
  planVercelCreate,
  planVercelCredentials,
  planVercelListFilter,
  vercelCapabilities,
  type VercelCreatePlan,
} from './vercel-options.js';
import { VercelSandboxImpl, type VercelSandbox } from './vercel-sandbox.js';

export { vercelCapabilities };

type VercelModule = typeof import('@vercel/sandbox');

/** The pinned version this adapter is tested with (README: Vercel). */
export const vercelSdkVersion = '3.5.0';
const installLine = `npm install @vercel/sandbox@${vercelSdkVersion}`;

let loaded: VercelModule | undefined;

async function loadVercel(): Promise<VercelModule> {
  loaded ??= await loadOptionalPeer<VercelModule>('@vercel/sandbox', {
    provider: 'vercel',
    installLine,
    load: () => import('@vercel/sandbox'),
  });
  return loaded;
}

/** The prefix of names the adapter gives sandboxes created without one (Vercel's name is the id). */
export const vercelGeneratedNamePrefix = 'sandport-';

const sandboxStates = new Set(['pending', 'running', 'snapshotting']);

export interface VercelSandboxProviderOptions {
  /** Vercel access token. @default VERCEL_TOKEN; without any token, VERCEL_OIDC_TOKEN */
  token?: string;
  /** Team the token acts for. @default VERCEL_TEAM_ID */
  teamId?: string;
  /** Project the sandboxes belong to. @default VERCEL_PROJECT_ID */
  projectId?: string;
  /**
   * The `fetch` every SDK request goes through (the SDK's base URL is fixed: an emulator is
   * reached by a fetch that rewrites it). @default the global fetch
   */
  fetch?: typeof fetch;
  /**
   * Where the SDK's requests go instead of `https://vercel.com/api` (an emulator, a proxy): the
   * adapter wraps `fetch` to rewrite that base, path and query kept.
   * @default SANDPORT_VERCEL_API_URL, else Vercel's
   */
  apiUrl?: string;
  /**
   * Where tunnel URLs point instead of `https://<subdomain>.vercel.run` (an emulator's edge,
   * `http://vercel.localhost:PORT`: tunnels become `http://<subdomain>.vercel.localhost:PORT`).
   * @default SANDPORT_VERCEL_TUNNEL_BASE_URL, else none: Vercel's own domains
   */
  tunnelBaseUrl?: string;
  /**
   * Wrap-existing mode: a `@vercel/sandbox` Sandbox the caller already has. `create()` (with no
   * options) returns it wrapped; `terminate()` and disposal only detach from it.
   */
  sandbox?: VercelSdkSandbox;
}

/**
 * Sandboxes on Vercel through the official `@vercel/sandbox` SDK (pinned: {@link vercelSdkVersion}).
 *
 * Ids and names: Vercel's sandbox name is its id. A create with `name` uses it (a taken one is
 * `SandboxAlreadyExistsError`); one without gets `sandport-<random>`, which is the id and leaves
 * `sandbox.name` undefined (so names starting with `sandport-` are the adapter's).
 */
export class VercelSandboxProvider implements SandboxProvider {
  readonly specificationVersion = 'sandbox-v1' as const;
  readonly id = 'vercel';
  readonly capabilities = vercelCapabilities;
  readonly events = new SandboxEmitter();
  readonly #options: VercelSandboxProviderOptions;
  readonly #fetch: typeof fetch | undefined;
  readonly #tunnelBaseUrl: string | undefined;

  constructor(options: VercelSandboxProviderOptions = {}) {
    const apiUrl = options.apiUrl ?? process.env.SANDPORT_VERCEL_API_URL;
    const tunnelBaseUrl = options.tunnelBaseUrl ?? process.env.SANDPORT_VERCEL_TUNNEL_BASE_URL;
    for (const [argument, value] of [
      ['apiUrl', apiUrl],
      ['tunnelBaseUrl', tunnelBaseUrl],
    ] as const) {
      if (value !== undefined && !URL.canParse(value))
        throw new SandboxInvalidArgumentError({ message: `${argument} must be a URL (got ${value})`, argument, provider: 'vercel' });
    }
    this.#options = options;
    this.#fetch = apiUrl === undefined ? options.fetch : vercelApiFetch(apiUrl, options.fetch);
    this.#tunnelBaseUrl = tunnelBaseUrl;
  }

  /** The credentials and fetch every SDK call gets (resolved per call: the environment may change). */
  get connection(): Record<string, unknown> {
    const credentials = planVercelCredentials(this.#options);
    return {
      ...('oidc' in credentials ? {} : credentials),
      ...(this.#fetch === undefined ? {} : { fetch: this.#fetch }),
    };
  }

  async create(options: CreateSandboxOptions = {}): Promise<VercelSandbox> {
    const startedAt = Date.now();
    const parsed = parseOptions(createSandboxOptionsSchema, options, { provider: 'vercel', what: 'create options' });
    if (this.#options.sandbox) return this.#wrapExisting(parsed);
    const plan = planVercelCreate(parsed);
    if (parsed.name?.startsWith(vercelGeneratedNamePrefix))
      throw new SandboxInvalidArgumentError({
        message: `names starting with "${vercelGeneratedNamePrefix}" are the adapter's (sandboxes created without a name): ${parsed.name}`,
        argument: 'name',
        provider: 'vercel',
      });
    // The SDK first: a project without it learns the install line before anything about credentials.
    const sdk = await loadVercel();
    const connection = this.connection;
    parsed.signal?.throwIfAborted();
    const name = parsed.name ?? `${vercelGeneratedNamePrefix}${randomBytes(6).toString('hex')}`;
    const creating = sdk.Sandbox.create({ ...plan.params, name, ...connection } as Parameters<VercelModule['Sandbox']['create']>[0]).catch(
      (error: unknown) => {
        throw mapVercelError(error, { operation: 'create', argument: 'create options' });
      },
    );
    // A create cannot be cancelled once sent: an abort after that deletes what it made.
    const native = await raceWithSignal(creating, {
      signal: parsed.signal,
      operation: 'create',
      provider: 'vercel',
      onAbort: () =>
        void creating.then(
          (made) => made.delete().catch(() => undefined),
          () => undefined,
        ),
    });
    const sandbox = this.#wrap(native, plan, parsed.name);
    try {
      if (plan.workdir !== undefined) await sandbox.makeWorkdir(plan.workdir, parsed.signal);
      if (plan.entrypoint) await sandbox.startEntrypoint(plan.entrypoint, parsed.signal);
    } catch (error) {
      await sandbox.terminate().catch(() => undefined);
      throw error;
    }
    announceCreated(this.events, { provider: 'vercel', sandboxId: sandbox.id, name: parsed.name, startedAt, warnings: plan.warnings });
    return sandbox;
  }

  /** Attaches to a running sandbox by id (its Vercel name); a stopped one is not found (its session ended). */
  async fromId(id: string, options: SignalOptions = {}): Promise<VercelSandbox> {
    checkStringArgument(id, 'id', 'vercel');
    options.signal?.throwIfAborted();
    const native = await this.#get(id, options.signal);
    let status = 'stopped';
    try {
      status = native.status;
    } catch {
      // No session: stopped.
    }
    if (!sandboxStates.has(status))
      throw new SandboxNotFoundError({ message: `Vercel sandbox ${id} is not running (${status})`, sandboxId: id, provider: 'vercel' });
    const expiresAt = (native as { expiresAt?: Date }).expiresAt;
    return new VercelSandboxImpl({
      sdk: native,
      refetch: (resume, signal) => this.#get(id, signal, resume),
      name: id.startsWith(vercelGeneratedNamePrefix) ? undefined : id,
      warnings: [],
      events: this.events,
      ports: native.routes.map((route) => route.port),
      workdir: undefined,
      sudo: false,
      lifetimeMs: expiresAt === undefined ? undefined : Math.max(1000, expiresAt.getTime() - Date.now()),
      tunnelBaseUrl: this.#tunnelBaseUrl,
      ownsLifecycle: true,
    });
  }

  async fromName(name: string, options: SignalOptions = {}): Promise<VercelSandbox> {
    checkStringArgument(name, 'name', 'vercel');
    try {
      return await this.fromId(name, options);
    } catch (error) {
      if (SandboxNotFoundError.isInstance(error))
        throw new SandboxNotFoundError({ message: `No running sandbox is named ${name}`, name, provider: 'vercel', cause: error });
      throw error;
    }
  }

  /**
   * Running sandboxes of the project, with their tags. Vercel filters by one tag: the first tag
   * of the filter is sent, the others are matched here.
   */
  async list(options: ListSandboxesOptions = {}): Promise<SandboxInfo[]> {
    const parsed = parseOptions(listSandboxesOptionsSchema, options, { provider: 'vercel', what: 'list options' });
    parsed.signal?.throwIfAborted();
    const sdk = await loadVercel();
    const connection = this.connection;
    const filter = planVercelListFilter(parsed.tags);
    const listing = async () => {
      const paginator = await sdk.Sandbox.list({
        ...connection,
        ...(filter.server === undefined ? {} : { tags: filter.server }),
        signal: parsed.signal,
      } as Parameters<VercelModule['Sandbox']['list']>[0]);
      const found: SandboxInfo[] = [];
      for await (const item of paginator) {
        if (!sandboxStates.has(item.status)) continue;
        const tags = item.tags ?? {};
        if (!matchesTags(tags, parsed.tags)) continue;
        found.push({
          id: item.name,
          name: item.name.startsWith(vercelGeneratedNamePrefix) ? undefined : item.name,
          tags: { ...tags },
          createdAt: item.createdAt,
        });
      }
      return found;
    };
    return raceWithSignal(
      retryIdempotent(
        'list',
        () =>
          listing().catch((error: unknown) => {
            throw mapVercelError(error, { operation: 'list' });
          }),
        { provider: 'vercel', events: this.events, signal: parsed.signal },
      ),
      { signal: parsed.signal, operation: 'list', provider: 'vercel' },
    );
  }

  /** Deletes a snapshot (Vercel's `snapshot.delete()`). Idempotent: an unknown snapshot resolves. */
  async deleteSnapshot(snapshot: SandboxSnapshotRef, options: SignalOptions = {}): Promise<void> {
    const snapshotId = checkVercelSnapshot(snapshot);
    options.signal?.throwIfAborted();
    const sdk = await loadVercel();
    const connection = this.connection;
    const once = async () => {
      try {
        const found = await sdk.Snapshot.get({ snapshotId, ...connection, signal: options.signal } as Parameters<
          VercelModule['Snapshot']['get']
        >[0]);
        if (found.status === 'deleted') return;
        await found.delete({ signal: options.signal });
      } catch (error) {
        const mapped = mapVercelError(error, { operation: 'deleteSnapshot' });
        if (SandboxNotFoundError.isInstance(mapped)) return;
        throw mapped;
      }
    };
    await raceWithSignal(retryIdempotent('deleteSnapshot', once, { provider: 'vercel', events: this.events, signal: options.signal }), {
      signal: options.signal,
      operation: 'deleteSnapshot',
      provider: 'vercel',
    });
  }

  async #get(name: string, signal: AbortSignal | undefined, resume = false): Promise<VercelSdkSandbox> {
    const sdk = await loadVercel();
    const connection = this.connection;
    return raceWithSignal(
      retryIdempotent(
        'fromId',
        () =>
          sdk.Sandbox.get({ name, resume, ...connection, signal } as Parameters<VercelModule['Sandbox']['get']>[0]).catch(
            (error: unknown) => {
              throw mapVercelError(error, { operation: 'fromId', sandboxId: name });
            },
          ),
        { provider: 'vercel', events: this.events, signal },
      ),
      { signal, operation: 'fromId', provider: 'vercel' },
    );
  }

  #wrap(native: VercelSdkSandbox, plan: VercelCreatePlan, name: string | undefined): VercelSandboxImpl {
    return new VercelSandboxImpl({
      sdk: native,
      refetch: (resume, signal) => this.#get(native.name, signal, resume),
      name,
      warnings: plan.warnings,
      events: this.events,
      ports: plan.ports,
      workdir: plan.workdir,
      sudo: plan.sudo,
      lifetimeMs: plan.timeoutMs,
      tunnelBaseUrl: this.#tunnelBaseUrl,
      ownsLifecycle: true,
    });
  }

  async #wrapExisting(parsed: ReturnType<typeof createSandboxOptionsSchema.parse>): Promise<VercelSandbox> {
    const { signal, ...rest } = parsed;
    if (Object.keys(rest).length > 0)
      throw new SandboxInvalidArgumentError({
        message: 'This provider wraps an existing sandbox; create takes no options',
        argument: 'create options',
        provider: 'vercel',
      });
    signal?.throwIfAborted();
    const native = this.#options.sandbox!;
    return new VercelSandboxImpl({
      sdk: native,
      refetch: (resume, callSignal) => this.#get(native.name, callSignal, resume),
      name: native.name,
      warnings: [],
      events: this.events,
      ports: native.routes.map((route) => route.port),
      workdir: undefined,
      sudo: false,
      lifetimeMs: undefined,
      tunnelBaseUrl: this.#tunnelBaseUrl,
      ownsLifecycle: false,
    });
  }
}

/** Vercel's API base, as the SDK has it (fixed: no option or variable of the SDK changes it). */
export const vercelApiBase = 'https://vercel.com/api';

/**
 * A fetch that sends the SDK's requests to `apiUrl` instead of {@link vercelApiBase} (path and
 * query kept) and everything else unchanged, through `inner` (@default the global fetch).
 */
export function vercelApiFetch(apiUrl: string, inner?: typeof fetch): typeof fetch {
  const base = apiUrl.replace(/\/+$/, '');
  return (input, init) => {
    const send = inner ?? globalThis.fetch;
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (url !== vercelApiBase && !url.startsWith(`${vercelApiBase}/`) && !url.startsWith(`${vercelApiBase}?`)) return send(input, init);
    const target = base + url.slice(vercelApiBase.length);
    if (typeof input === 'string' || input instanceof URL) return send(target, init);
    return send(new Request(target, input), init);
  };
}

/** Creates the Vercel provider. Construction does no I/O and loads no SDK. */
export function createVercelSandboxProvider(options: VercelSandboxProviderOptions = {}): VercelSandboxProvider {
  return new VercelSandboxProvider(options);
}
