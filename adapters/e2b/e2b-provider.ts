import type { ConnectionOpts, Sandbox as E2bSdkSandbox, SandboxInfo as E2bSandboxInfo } from 'e2b';
import {
  SandboxAlreadyExistsError,
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
  type SandboxTags,
  type SignalOptions,
} from '../../src/kit/index.js';
import { mapE2bError } from './e2b-errors.js';
import {
  e2bCapabilities,
  e2bMetadataKeys,
  planE2bCreate,
  tagsFromE2bMetadata,
  type E2bCreatePlan,
  type E2bResourceTemplate,
} from './e2b-options.js';
import { createE2bSandbox, readTagsFile, type E2bSandbox, type E2bSandboxImpl } from './e2b-sandbox.js';

export { e2bCapabilities };

type E2bModule = typeof import('e2b');

/** The pinned version this adapter is tested with (README: E2B). */
export const e2bSdkVersion = '2.51.0';
const installLine = `npm install e2b@${e2bSdkVersion}`;

let loaded: E2bModule | undefined;

async function loadE2b(): Promise<E2bModule> {
  loaded ??= await loadOptionalPeer<E2bModule>('e2b', { provider: 'e2b', installLine, load: () => import('e2b') });
  return loaded;
}

export interface E2bSandboxProviderOptions {
  /** E2B API key. @default E2B_API_KEY */
  apiKey?: string;
  /** Control-plane URL (an emulator, a self-hosted E2B). @default E2B_API_URL, else E2B's */
  apiUrl?: string;
  /** envd URL for every sandbox (an emulator). @default E2B_SANDBOX_URL, else per sandbox */
  sandboxUrl?: string;
  /** Domain of sandbox host names (`<port>-<id>.<domain>`). @default E2B_DOMAIN, else `e2b.app` */
  domain?: string;
  /** Timeout of each API request, in milliseconds (the SDK's `requestTimeoutMs`). @default the SDK's 60 000 */
  requestTimeoutMs?: number;
  /** Template a create without `image` starts from. @default 'base' */
  defaultTemplate?: string;
  /**
   * Templates whose cpu/memory are known: a create asking for those resources (and no other
   * image) starts from the matching one instead of building a template. @default none
   */
  templates?: readonly E2bResourceTemplate[];
  /**
   * The scheme of tunnel URLs. E2B terminates TLS for every port: `'https'`. An emulator without
   * TLS serves `'http'`. @default 'http' when the control plane's URL (`apiUrl`, else
   * E2B_API_URL) is `http:` (an emulator or a dev install has no TLS in front of its sandboxes
   * either), else 'https'
   */
  tunnelScheme?: 'https' | 'http';
  /**
   * Wrap-existing mode: an `e2b` Sandbox the caller already has. `create()` (with no options)
   * returns it wrapped; `terminate()` and disposal only detach from it.
   */
  sandbox?: E2bSdkSandbox;
}

/**
 * Sandboxes on E2B through the official `e2b` SDK (pinned: {@link e2bSdkVersion}).
 *
 * Names: E2B has none. A `name` is kept in the metadata key `sandport.name`; `create` refuses a
 * name that a running or paused sandbox carries, and after its create, looks again: when two
 * creates of one name raced (each saw none), the later-started sandbox (ties: the greater id)
 * kills itself and rejects with `SandboxAlreadyExistsError`. The window left is E2B's listing
 * lag: a create whose sandbox is not listed yet when the other one looks goes unseen.
 */
export class E2bSandboxProvider implements SandboxProvider {
  readonly specificationVersion = 'sandbox-v1' as const;
  readonly id = 'e2b';
  readonly capabilities = e2bCapabilities;
  readonly events = new SandboxEmitter();
  readonly #options: E2bSandboxProviderOptions;
  /** Templates built (or found) by this provider, by name. */
  readonly #templates = new Map<string, Promise<void>>();

  constructor(options: E2bSandboxProviderOptions = {}) {
    if (options.requestTimeoutMs !== undefined && (!Number.isInteger(options.requestTimeoutMs) || options.requestTimeoutMs < 0)) {
      throw new SandboxInvalidArgumentError({
        message: 'requestTimeoutMs must be a non-negative integer',
        argument: 'requestTimeoutMs',
        provider: 'e2b',
      });
    }
    this.#options = options;
  }

  /** See `E2bSandboxProviderOptions.tunnelScheme`. */
  get #tunnelScheme(): 'https' | 'http' {
    if (this.#options.tunnelScheme !== undefined) return this.#options.tunnelScheme;
    return (this.#options.apiUrl ?? process.env.E2B_API_URL)?.startsWith('http:') ? 'http' : 'https';
  }

  /** Connection options every SDK call gets (the environment fills what is left out). */
  get connection(): ConnectionOpts {
    const { apiKey, apiUrl, sandboxUrl, domain, requestTimeoutMs } = this.#options;
    return Object.fromEntries(
      Object.entries({ apiKey, apiUrl, sandboxUrl, domain, requestTimeoutMs }).filter(([, value]) => value !== undefined),
    ) as ConnectionOpts;
  }

  async create(options: CreateSandboxOptions = {}): Promise<E2bSandbox> {
    const startedAt = Date.now();
    const parsed = parseOptions(createSandboxOptionsSchema, options, { provider: 'e2b', what: 'create options' });
    const plan = planE2bCreate(parsed, { template: this.#options.defaultTemplate, templates: this.#options.templates });
    const sdk = await loadE2b();
    if (this.#options.sandbox) {
      const { signal, ...rest } = parsed;
      if (Object.keys(rest).length > 0)
        throw new SandboxInvalidArgumentError({
          message: 'This provider wraps an existing sandbox; create takes no options',
          argument: 'create options',
          provider: 'e2b',
        });
      signal?.throwIfAborted();
      return this.wrap(this.#options.sandbox, { ownsLifecycle: false });
    }
    parsed.signal?.throwIfAborted();
    const template = await raceWithSignal(this.#template(sdk, plan), { signal: parsed.signal, operation: 'create', provider: 'e2b' });
    if (parsed.name !== undefined) await this.#refuseTakenName(sdk, parsed.name, undefined, parsed.signal);
    const creating = sdk.Sandbox.create(template, { ...this.connection, ...plan.opts }).catch((error: unknown) => {
      throw mapE2bError(error, { operation: 'create' });
    });
    // E2B's create cannot be cancelled once sent: an abort after that kills what it made.
    const native = await raceWithSignal(creating, {
      signal: parsed.signal,
      operation: 'create',
      provider: 'e2b',
      onAbort: () =>
        void creating.then(
          (made) => made.kill().catch(() => undefined),
          () => undefined,
        ),
    });
    const sandbox = this.#wrap(sdk, native, {
      name: parsed.name,
      metadataTags: { ...parsed.tags },
      warnings: plan.warnings,
      ports: plan.ports,
      workdir: plan.workdir,
      lifetimeMs: plan.opts.lifecycle ? undefined : plan.opts.timeoutMs,
      ownsLifecycle: true,
    });
    try {
      if (parsed.name !== undefined) await this.#refuseTakenName(sdk, parsed.name, native.sandboxId, parsed.signal);
      if (plan.entrypoint) await sandbox.startEntrypoint(plan.entrypoint, parsed.signal);
    } catch (error) {
      await sandbox.terminate().catch(() => undefined);
      throw error;
    }
    announceCreated(this.events, { provider: 'e2b', sandboxId: sandbox.id, name: parsed.name, startedAt, warnings: plan.warnings });
    return sandbox;
  }

  /**
   * Attaches to a sandbox by id. A paused sandbox stays paused (E2B's `connect` would resume it):
   * it is found through `getInfo`, and connected at `resume()`.
   */
  async fromId(id: string, options: SignalOptions = {}): Promise<E2bSandbox> {
    checkStringArgument(id, 'id', 'e2b');
    options.signal?.throwIfAborted();
    const sdk = await loadE2b();
    const info = await this.#info(sdk, id, options.signal);
    const init = {
      name: info.metadata[e2bMetadataKeys.name],
      metadataTags: tagsFromE2bMetadata(info.metadata),
      warnings: [],
      ports: [],
      workdir: undefined,
      lifetimeMs: Math.max(1000, info.endAt.getTime() - Date.now()),
      ownsLifecycle: true,
    };
    if (info.state === 'paused') return this.#wrapPaused(sdk, id, init);
    const native = await raceWithSignal(
      retryIdempotent(
        'fromId',
        () =>
          sdk.Sandbox.connect(id, { ...this.connection, signal: options.signal }).catch((error: unknown) => {
            throw mapE2bError(error, { operation: 'fromId', sandboxId: id });
          }),
        { provider: 'e2b', events: this.events, signal: options.signal },
      ),
      { signal: options.signal, operation: 'fromId', provider: 'e2b' },
    );
    return this.#wrap(sdk, native, init);
  }

  async fromName(name: string, options: SignalOptions = {}): Promise<E2bSandbox> {
    checkStringArgument(name, 'name', 'e2b');
    options.signal?.throwIfAborted();
    const sdk = await loadE2b();
    const found = await this.#listNative(sdk, { [e2bMetadataKeys.name]: name }, options.signal);
    const first = found.sort(byAge)[0];
    if (!first) throw new SandboxNotFoundError({ message: `No running sandbox is named ${name}`, name, provider: 'e2b' });
    return this.fromId(first.sandboxId, options);
  }

  /**
   * Running and paused sandboxes made by sandport, with their tags. Tags replaced by `setTags`
   * live inside the sandbox (E2B's metadata cannot change), so a tag filter reads each running
   * sandbox's tags (one request each); a paused sandbox is judged by its metadata.
   */
  async list(options: ListSandboxesOptions = {}): Promise<SandboxInfo[]> {
    const parsed = parseOptions(listSandboxesOptionsSchema, options, { provider: 'e2b', what: 'list options' });
    parsed.signal?.throwIfAborted();
    const sdk = await loadE2b();
    const found = await this.#listNative(sdk, {}, parsed.signal);
    const infos = await Promise.all(
      found.map(async (info): Promise<SandboxInfo | undefined> => {
        let tags: SandboxTags = tagsFromE2bMetadata(info.metadata);
        if (info.state === 'running') {
          try {
            const native = await sdk.Sandbox.connect(info.sandboxId, { ...this.connection, signal: parsed.signal });
            tags = await readTagsFile(native, info.sandboxId, tags, parsed.signal);
          } catch (error) {
            const mapped = mapE2bError(error, { operation: 'list', sandboxId: info.sandboxId });
            if (SandboxNotFoundError.isInstance(mapped)) return undefined;
            throw mapped;
          }
        }
        return { id: info.sandboxId, name: info.metadata[e2bMetadataKeys.name], tags, createdAt: info.startedAt.getTime() };
      }),
    );
    return infos.filter((info): info is SandboxInfo => info !== undefined && matchesTags(info.tags, parsed.tags));
  }

  /** Deletes a snapshot (E2B's `deleteSnapshot`). Idempotent: an unknown snapshot resolves. */
  async deleteSnapshot(snapshot: SandboxSnapshotRef, options: SignalOptions = {}): Promise<void> {
    if (snapshot === null || typeof snapshot !== 'object' || snapshot.type !== 'snapshot' || typeof snapshot.id !== 'string')
      throw new SandboxInvalidArgumentError({ message: 'snapshot must be a snapshot reference', argument: 'snapshot', provider: 'e2b' });
    if (snapshot.provider !== 'e2b')
      throw new SandboxInvalidArgumentError({
        message: `A ${snapshot.provider} snapshot is not E2B's`,
        argument: 'snapshot',
        provider: 'e2b',
      });
    options.signal?.throwIfAborted();
    const sdk = await loadE2b();
    await raceWithSignal(
      retryIdempotent(
        'deleteSnapshot',
        () =>
          sdk.Sandbox.deleteSnapshot(snapshot.id, { ...this.connection, signal: options.signal }).catch((error: unknown) => {
            const mapped = mapE2bError(error, { operation: 'deleteSnapshot' });
            if (SandboxNotFoundError.isInstance(mapped)) return false;
            throw mapped;
          }),
        { provider: 'e2b', events: this.events, signal: options.signal },
      ),
      { signal: options.signal, operation: 'deleteSnapshot', provider: 'e2b' },
    );
  }

  /** Wraps an `e2b` Sandbox; with `ownsLifecycle: false`, terminate only detaches. Needs the SDK loaded (any operation loads it). */
  wrap(native: E2bSdkSandbox, options: { ownsLifecycle: boolean; name?: string }): E2bSandbox {
    const SandboxClass = native.constructor as typeof E2bSdkSandbox;
    return createE2bSandbox({
      sdk: native,
      sandboxId: native.sandboxId,
      SandboxClass,
      connection: this.connection,
      name: options.name,
      metadataTags: {},
      warnings: [],
      events: this.events,
      ports: [],
      tunnelScheme: this.#tunnelScheme,
      workdir: undefined,
      lifetimeMs: undefined,
      paused: false,
      ownsLifecycle: options.ownsLifecycle,
    });
  }

  #wrap(
    sdk: E2bModule,
    native: E2bSdkSandbox,
    init: Pick<
      Parameters<typeof createE2bSandbox>[0],
      'name' | 'metadataTags' | 'warnings' | 'ports' | 'workdir' | 'lifetimeMs' | 'ownsLifecycle'
    >,
  ): E2bSandboxImpl {
    return createE2bSandbox({
      ...init,
      sdk: native,
      sandboxId: native.sandboxId,
      SandboxClass: sdk.Sandbox,
      connection: this.connection,
      events: this.events,
      tunnelScheme: this.#tunnelScheme,
      paused: false,
    });
  }

  #wrapPaused(
    sdk: E2bModule,
    sandboxId: string,
    init: Pick<
      Parameters<typeof createE2bSandbox>[0],
      'name' | 'metadataTags' | 'warnings' | 'ports' | 'workdir' | 'lifetimeMs' | 'ownsLifecycle'
    >,
  ): E2bSandboxImpl {
    return createE2bSandbox({
      ...init,
      sdk: undefined,
      sandboxId,
      SandboxClass: sdk.Sandbox,
      connection: this.connection,
      events: this.events,
      tunnelScheme: this.#tunnelScheme,
      paused: true,
    });
  }

  async #info(sdk: E2bModule, id: string, signal: AbortSignal | undefined): Promise<E2bSandboxInfo> {
    return raceWithSignal(
      retryIdempotent(
        'fromId',
        () =>
          sdk.Sandbox.getInfo(id, { ...this.connection, signal }).catch((error: unknown) => {
            throw mapE2bError(error, { operation: 'fromId', sandboxId: id });
          }),
        { provider: 'e2b', events: this.events, signal },
      ),
      { signal, operation: 'fromId', provider: 'e2b' },
    );
  }

  /** Every running or paused sandbox made by sandport whose metadata has `metadata`, all pages. */
  async #listNative(sdk: E2bModule, metadata: Record<string, string>, signal: AbortSignal | undefined): Promise<E2bSandboxInfo[]> {
    const paginator = sdk.Sandbox.list({
      ...this.connection,
      query: { metadata: { [e2bMetadataKeys.managed]: '1', ...metadata }, state: ['running', 'paused'] },
      limit: 100,
    });
    const found: E2bSandboxInfo[] = [];
    while (paginator.hasNext) {
      const page = await raceWithSignal(
        retryIdempotent(
          'list',
          () =>
            paginator.nextItems({ signal }).catch((error: unknown) => {
              throw mapE2bError(error, { operation: 'list' });
            }),
          { provider: 'e2b', events: this.events, signal },
        ),
        { signal, operation: 'list', provider: 'e2b' },
      );
      found.push(...page);
    }
    return found;
  }

  /**
   * Refuses a name another running or paused sandbox carries. With `own` (after the create), the
   * oldest of the sandboxes carrying it keeps it; when that is not `own`, it is the caller's to
   * give up (see the class doc).
   */
  async #refuseTakenName(sdk: E2bModule, name: string, own: string | undefined, signal: AbortSignal | undefined): Promise<void> {
    const holders = (await this.#listNative(sdk, { [e2bMetadataKeys.name]: name }, signal)).sort(byAge);
    const winner = holders[0];
    if (winner === undefined || winner.sandboxId === own) return;
    throw new SandboxAlreadyExistsError({
      message: `A sandbox named ${name} exists already (${winner.sandboxId})`,
      provider: 'e2b',
    });
  }

  /** The template of a plan: a name as it is, or a build (once per name in this process; E2B's `exists` skips a build made before). */
  async #template(sdk: E2bModule, plan: E2bCreatePlan): Promise<string> {
    const template = plan.template;
    if (template.kind === 'name') return template.template;
    let building = this.#templates.get(template.name);
    if (!building) {
      building = (async () => {
        const connection = this.connection;
        if (await sdk.Template.exists(template.name, connection).catch(() => false)) return;
        const start = sdk.Template();
        let builder = 'image' in template.from ? start.fromImage(template.from.image) : start.fromTemplate(template.from.template);
        if (template.commands.length > 0) builder = builder.runCmd(template.commands);
        await sdk.Template.build(builder, template.name, {
          ...connection,
          ...(template.cpuCount === undefined ? {} : { cpuCount: template.cpuCount }),
          ...(template.memoryMB === undefined ? {} : { memoryMB: template.memoryMB }),
        });
      })().catch((error: unknown) => {
        this.#templates.delete(template.name);
        throw mapE2bError(error, { operation: 'create' });
      });
      this.#templates.set(template.name, building);
    }
    await building;
    return template.name;
  }
}

function byAge(a: E2bSandboxInfo, b: E2bSandboxInfo): number {
  const time = a.startedAt.getTime() - b.startedAt.getTime();
  return time !== 0 ? time : a.sandboxId < b.sandboxId ? -1 : a.sandboxId > b.sandboxId ? 1 : 0;
}

/** Creates the E2B provider. Construction does no I/O and loads no SDK. */
export function createE2bSandboxProvider(options: E2bSandboxProviderOptions = {}): E2bSandboxProvider {
  return new E2bSandboxProvider(options);
}
