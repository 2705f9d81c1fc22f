import type { Daytona, DaytonaConfig, Sandbox as DaytonaSdkSandbox } from '@daytonaio/sdk';
import {
  SandboxEmitter,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
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
import { mapDaytonaError } from './daytona-errors.js';
import {
  daytonaCapabilities,
  daytonaLabelKeys,
  planDaytonaConfig,
  planDaytonaCreate,
  tagsFromDaytonaLabels,
  type DaytonaConfigPlan,
  type DaytonaCreatePlan,
  type DaytonaVolumeMountPlan,
} from './daytona-options.js';
import { createDaytonaSandbox, type DaytonaSandbox, type DaytonaSandboxImpl } from './daytona-sandbox.js';

export { daytonaCapabilities };

type DaytonaModule = typeof import('@daytonaio/sdk');

/** The pinned version this adapter is tested with (README: Daytona). */
export const daytonaSdkVersion = '0.218.0';
const installLine = `npm install @daytonaio/sdk@${daytonaSdkVersion}`;
const provider = 'daytona';

let loaded: Promise<DaytonaModule> | undefined;

async function loadDaytona(): Promise<DaytonaModule> {
  loaded ??= loadOptionalPeer<DaytonaModule>('@daytonaio/sdk', { provider, installLine, load: () => import('@daytonaio/sdk') }).catch(
    (error: unknown) => {
      loaded = undefined;
      throw error;
    },
  );
  return loaded;
}

export interface DaytonaSandboxProviderOptions {
  /** Daytona API key. @default DAYTONA_API_KEY of the process environment (never a `.env` file) */
  apiKey?: string;
  /** JWT instead of an API key (with `organizationId`). @default DAYTONA_JWT_TOKEN */
  jwtToken?: string;
  /** Organisation of a JWT. @default DAYTONA_ORGANIZATION_ID */
  organizationId?: string;
  /** API URL (an emulator, a self-hosted Daytona). @default DAYTONA_API_URL, else DAYTONA_SERVER_URL, else `https://app.daytona.io/api` */
  apiUrl?: string;
  /** Target region. @default DAYTONA_TARGET, else the organisation's default */
  target?: string;
  /** Timeout of each API request, in milliseconds (the SDK's `requestTimeoutMs`). @default the SDK's */
  requestTimeoutMs?: number;
  /**
   * Follow state changes by polling instead of Daytona's event socket (the SDK's
   * `useDeprecatedPolling`). @default the SDK's (the socket, falling back to polling)
   */
  useDeprecatedPolling?: boolean;
  /** Registry image of creates that set cpu/memory/disk without an `image` (see `planDaytonaCreate`). @default daytonaDefaultImage */
  defaultImage?: string;
  /**
   * Wrap-existing mode: a `@daytonaio/sdk` Sandbox the caller already has, with the `Daytona`
   * client that made it. `create()` (with no options) returns it wrapped; `terminate()` and
   * disposal only detach from it.
   */
  sandbox?: { sandbox: DaytonaSdkSandbox; client: Daytona };
}

/**
 * Sandboxes on Daytona through the official `@daytonaio/sdk` (pinned: {@link daytonaSdkVersion}).
 *
 * Configuration is resolved here and passed to the SDK whole ({@link planDaytonaConfig}): the
 * SDK's own fallbacks read `.env` files in the working directory and throw when one of them
 * defines the endpoint that the process environment also does.
 *
 * Names are Daytona's own (unique per organisation: a taken name is `SandboxAlreadyExistsError`);
 * tags are labels; `list` shows the sandboxes carrying the `sandport.managed` label.
 */
export class DaytonaSandboxProvider implements SandboxProvider {
  readonly specificationVersion = 'sandbox-v1' as const;
  readonly id = provider;
  readonly capabilities = daytonaCapabilities;
  readonly events = new SandboxEmitter();
  readonly #options: DaytonaSandboxProviderOptions;
  #client: Promise<Daytona> | undefined;

  constructor(options: DaytonaSandboxProviderOptions = {}) {
    if (options.requestTimeoutMs !== undefined && (!Number.isInteger(options.requestTimeoutMs) || options.requestTimeoutMs < 0)) {
      throw new SandboxInvalidArgumentError({
        message: 'requestTimeoutMs must be a non-negative integer',
        argument: 'requestTimeoutMs',
        provider,
      });
    }
    this.#options = options;
  }

  /** The SDK client: one per provider, made on first need. */
  async client(): Promise<Daytona> {
    if (this.#options.sandbox) return this.#options.sandbox.client;
    this.#client ??= (async () => {
      // The SDK first: without it, the missing package is the error to report, not the credentials.
      const sdk = await loadDaytona();
      const config = planDaytonaConfig(this.#options);
      return constructDaytona(sdk, config);
    })().catch((error: unknown) => {
      this.#client = undefined;
      throw error;
    });
    return this.#client;
  }

  async create(options: CreateSandboxOptions = {}): Promise<DaytonaSandbox> {
    const startedAt = Date.now();
    const parsed = parseOptions(createSandboxOptionsSchema, options, { provider, what: 'create options' });
    if (this.#options.sandbox) {
      const { signal, ...rest } = parsed;
      if (Object.keys(rest).length > 0)
        throw new SandboxInvalidArgumentError({
          message: 'This provider wraps an existing sandbox; create takes no options',
          argument: 'create options',
          provider,
        });
      signal?.throwIfAborted();
      return this.wrap(this.#options.sandbox.sandbox, { ownsLifecycle: false });
    }
    const plan = planDaytonaCreate(parsed, { image: this.#options.defaultImage });
    parsed.signal?.throwIfAborted();
    const client = await this.client();
    const sdk = await loadDaytona();
    if (plan.params.volumes) await this.#checkVolumes(client, plan.params.volumes, parsed.signal);
    const creating = client.create(createParams(sdk, plan) as Parameters<Daytona['create']>[0], { timeout: 0 }).catch((error: unknown) => {
      throw mapDaytonaError(error, { operation: 'create' });
    });
    // Daytona's create cannot be cancelled once sent: an abort after that deletes what it made.
    const native = await raceWithSignal(creating, {
      signal: parsed.signal,
      operation: 'create',
      provider,
      onAbort: () =>
        void creating.then(
          (made) => made.delete().catch(() => undefined),
          () => undefined,
        ),
    });
    const sandbox = this.#wrap(client, native, {
      warnings: plan.warnings,
      ports: plan.ports,
      workdir: plan.workdir,
      lifetimeMs: plan.lifetimeMs,
      idleTimeoutMs: parsed.idleTimeoutMs,
      ownsLifecycle: true,
    });
    try {
      // Daytona has no working directory at create: it is made here, before the entrypoint runs in it.
      // (from `/`: the default cwd is that directory, which does not exist yet)
      if (plan.workdir !== undefined)
        await sandbox.run(['mkdir', '-p', '--', plan.workdir], { cwd: '/', throwOnNonZeroExit: true, signal: parsed.signal });
      if (plan.entrypoint) await sandbox.startEntrypoint(plan.entrypoint, parsed.signal);
    } catch (error) {
      await sandbox.terminate().catch(() => undefined);
      throw error;
    }
    announceCreated(this.events, { provider, sandboxId: sandbox.id, name: parsed.name, startedAt, warnings: plan.warnings });
    return sandbox;
  }

  /** Attaches to a sandbox by id (Daytona's `get`); one paused is found paused; one neither started nor paused is not found. */
  async fromId(id: string, options: SignalOptions = {}): Promise<DaytonaSandbox> {
    checkStringArgument(id, 'id', provider);
    return this.#get(id, 'fromId', options);
  }

  /** Attaches to a sandbox by its Daytona name (Daytona's `get` takes an id or a name). */
  async fromName(name: string, options: SignalOptions = {}): Promise<DaytonaSandbox> {
    checkStringArgument(name, 'name', provider);
    const sandbox = await this.#get(name, 'fromName', options);
    // `get` takes ids too: a name that is some sandbox's id is not its name.
    if (sandbox.name !== name) throw new SandboxNotFoundError({ message: `No running sandbox is named ${name}`, name, provider });
    return sandbox;
  }

  /** Started and paused sandboxes made by sandport (label `sandport.managed`), with their tags; `tags` filters by labels on Daytona's side. */
  async list(options: ListSandboxesOptions = {}): Promise<SandboxInfo[]> {
    const parsed = parseOptions(listSandboxesOptionsSchema, options, { provider, what: 'list options' });
    parsed.signal?.throwIfAborted();
    const client = await this.client();
    const labels = { ...parsed.tags, [daytonaLabelKeys.managed]: '1' };
    const listing = retryIdempotent(
      'list',
      async () => {
        const found: SandboxInfo[] = [];
        try {
          for await (const sandbox of client.list({ labels, states: ['started' as never, 'paused' as never] })) {
            parsed.signal?.throwIfAborted();
            found.push({
              id: sandbox.id,
              name: sandbox.name && sandbox.name !== sandbox.id ? sandbox.name : undefined,
              tags: tagsFromDaytonaLabels(sandbox.labels),
              createdAt: sandbox.createdAt ? Date.parse(sandbox.createdAt) : undefined,
            } as SandboxInfo);
          }
        } catch (error) {
          throw mapDaytonaError(error, { operation: 'list' });
        }
        return found;
      },
      { provider, events: this.events, signal: parsed.signal },
    );
    const infos = await raceWithSignal(listing, { signal: parsed.signal, operation: 'list', provider });
    return infos.filter((info) => matchesTags(info.tags, parsed.tags));
  }

  /** Deletes a snapshot (Daytona's `snapshot.delete`). Idempotent: an unknown snapshot resolves. */
  async deleteSnapshot(snapshot: SandboxSnapshotRef, options: SignalOptions = {}): Promise<void> {
    if (snapshot === null || typeof snapshot !== 'object' || snapshot.type !== 'snapshot' || typeof snapshot.id !== 'string')
      throw new SandboxInvalidArgumentError({ message: 'snapshot must be a snapshot reference', argument: 'snapshot', provider });
    if (snapshot.provider !== provider)
      throw new SandboxInvalidArgumentError({
        message: `A ${snapshot.provider} snapshot is not Daytona's`,
        argument: 'snapshot',
        provider,
      });
    options.signal?.throwIfAborted();
    const client = await this.client();
    await raceWithSignal(
      retryIdempotent(
        'deleteSnapshot',
        async () => {
          try {
            await client.snapshot.delete(snapshot.id);
          } catch (error) {
            const mapped = mapDaytonaError(error, { operation: 'deleteSnapshot' });
            if (!SandboxNotFoundError.isInstance(mapped)) throw mapped;
          }
        },
        { provider, events: this.events, signal: options.signal },
      ),
      { signal: options.signal, operation: 'deleteSnapshot', provider },
    );
  }

  /** Wraps a `@daytonaio/sdk` Sandbox; with `ownsLifecycle: false`, terminate only detaches. */
  wrap(native: DaytonaSdkSandbox, options: { ownsLifecycle: boolean }): DaytonaSandbox {
    const client = this.#options.sandbox?.client;
    if (!client && !this.#clientNow)
      throw new SandboxInvalidArgumentError({
        message: 'wrap needs the provider connected (call any operation first) or the sandbox option',
        argument: 'sandbox',
        provider,
      });
    return this.#wrap(client ?? this.#clientNow!, native, {
      warnings: [],
      ports: [],
      workdir: undefined,
      lifetimeMs: undefined,
      idleTimeoutMs: undefined,
      ownsLifecycle: options.ownsLifecycle,
    });
  }

  #clientNow: Daytona | undefined;

  #wrap(
    client: Daytona,
    native: DaytonaSdkSandbox,
    init: Pick<
      Parameters<typeof createDaytonaSandbox>[0],
      'warnings' | 'ports' | 'workdir' | 'lifetimeMs' | 'idleTimeoutMs' | 'ownsLifecycle' | 'paused'
    >,
  ): DaytonaSandboxImpl {
    this.#clientNow = client;
    return createDaytonaSandbox({ ...init, sdk: native, client, events: this.events });
  }

  /**
   * Asks Daytona for each mounted volume before the create, so that a missing or unready volume is
   * a `SandboxInvalidArgumentError` naming it (the create itself would answer a bare not-found,
   * which reads as if the sandbox were missing). Volumes are not made here: a name with a typo
   * would otherwise become a new empty volume; make one with `daytona.volume.get(name, true)`.
   */
  async #checkVolumes(client: Daytona, volumes: readonly DaytonaVolumeMountPlan[], signal: AbortSignal | undefined): Promise<void> {
    for (const { volumeId: name, mountPath } of volumes) {
      const volume = await raceWithSignal(
        retryIdempotent(
          'create',
          () =>
            client.volume.get(name).catch((error: unknown) => {
              const mapped = mapDaytonaError(error, { operation: 'create' });
              if (!SandboxNotFoundError.isInstance(mapped)) throw mapped;
              throw new SandboxInvalidArgumentError({
                message: `volumes: ${mountPath} names Daytona volume ${JSON.stringify(name)}, which does not exist (make it with daytona.volume.get(name, true))`,
                argument: 'volumes',
                provider,
                cause: error,
              });
            }),
          { provider, events: this.events, signal },
        ),
        { signal, operation: 'create', provider },
      );
      if (volume.state !== 'ready') {
        throw new SandboxInvalidArgumentError({
          message: `volumes: Daytona volume ${JSON.stringify(name)} (for ${mountPath}) is ${volume.state}, not ready: it can be mounted once ready`,
          argument: 'volumes',
          provider,
        });
      }
    }
  }

  async #get(idOrName: string, operation: 'fromId' | 'fromName', options: SignalOptions): Promise<DaytonaSandboxImpl> {
    options.signal?.throwIfAborted();
    const client = await this.client();
    const native = await raceWithSignal(
      retryIdempotent(
        operation,
        () =>
          client.get(idOrName).catch((error: unknown) => {
            throw mapDaytonaError(error, { operation, sandboxId: idOrName });
          }),
        { provider, events: this.events, signal: options.signal },
      ),
      { signal: options.signal, operation, provider },
    );
    const paused = native.state === 'paused';
    if (native.state !== undefined && native.state !== 'started' && !paused) {
      throw new SandboxNotFoundError({
        message: `Sandbox ${idOrName} is not running on Daytona (state ${native.state})`,
        sandboxId: native.id,
        provider,
      });
    }
    const deadline = native.autoDestroyAt ? Date.parse(native.autoDestroyAt) : Number.NaN;
    return this.#wrap(client, native, {
      warnings: [],
      ports: [],
      workdir: undefined,
      lifetimeMs: Number.isFinite(deadline) ? Math.max(1000, deadline - Date.now()) : undefined,
      idleTimeoutMs: undefined,
      ownsLifecycle: true,
      // A paused sandbox's lifetime is in its labels (its TTL is cleared while paused).
      paused,
    });
  }
}

/** `daytona.create`'s parameters with the image made by the SDK's builder when the plan asks for one. */
function createParams(sdk: DaytonaModule, plan: DaytonaCreatePlan): Record<string, unknown> {
  const { source, params } = plan;
  if (source.kind === 'snapshot') {
    const { resources: _resources, ...rest } = params;
    return source.snapshot === undefined ? rest : { ...rest, snapshot: source.snapshot };
  }
  if (source.kind === 'image') return { ...params, image: source.image };
  const image = source.commands.length > 0 ? sdk.Image.base(source.base).runCommands(...source.commands) : sdk.Image.base(source.base);
  return { ...params, image };
}

/**
 * The SDK's client from an explicit configuration. The constructor's own failures (an ambiguous
 * endpoint in a `.env` file, missing credentials) become a `SandboxInvalidArgumentError` saying
 * what to pass, with the SDK's error as `cause`.
 */
export function constructDaytona(sdk: DaytonaModule, config: DaytonaConfigPlan): Daytona {
  try {
    return new sdk.Daytona(config as DaytonaConfig);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof Error && error.name.startsWith('Daytona'))
      throw new SandboxInvalidArgumentError({
        message: `The Daytona SDK refused its configuration (pass apiKey and apiUrl to createDaytonaSandboxProvider explicitly): ${message}`,
        argument: 'apiUrl',
        provider,
        cause: error,
      });
    throw new SandboxProviderError({ message: `The Daytona SDK failed to start: ${message}`, provider, cause: error });
  }
}

/** Creates the Daytona provider. Construction does no I/O and loads no SDK. */
export function createDaytonaSandboxProvider(options: DaytonaSandboxProviderOptions = {}): DaytonaSandboxProvider {
  return new DaytonaSandboxProvider(options);
}
