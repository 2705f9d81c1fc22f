import type { App, Image, ModalClient, Sandbox as ModalSdkSandbox, Secret, Volume } from 'modal';
import {
  SandboxEmitter,
  announceCreated,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  checkStringArgument,
  createSandboxOptionsSchema,
  listSandboxesOptionsSchema,
  loadOptionalPeer,
  parseOptions,
  raceWithSignal,
  retryIdempotent,
  type CreateSandboxOptions,
  type ListSandboxesOptions,
  type SandboxInfo,
  type SandboxProvider,
  type SignalOptions,
} from '../../src/kit/index.js';
import { mapModalError } from './modal-errors.js';
import { modalCapabilities, planModalCreate, type ModalCreatePlan } from './modal-options.js';

export { modalCapabilities };
import { createModalSandbox, type ModalSandbox } from './modal-sandbox.js';

export interface ModalSandboxProviderOptions {
  /** Modal App the sandboxes belong to; created when missing. @default 'sandport' */
  appName?: string;
  /** Modal Environment. @default the profile's (MODAL_ENVIRONMENT or ~/.modal.toml) */
  environment?: string;
  /** A configured client. @default `new ModalClient()` with the credentials below or the profile's */
  client?: ModalClient;
  /** Credentials; both or neither. @default MODAL_TOKEN_ID / MODAL_TOKEN_SECRET or ~/.modal.toml */
  tokenId?: string;
  tokenSecret?: string;
  /** Image used when `create` names none. @default 'python:3.13-slim' */
  defaultImage?: string;
  /**
   * Whether a port given as a bare number gets a TLS tunnel (`https://…`). `{ port, encrypted }`
   * decides per port. @default true
   */
  encryptPortsByDefault?: boolean;
  /**
   * Wrap-existing mode: a `modal` Sandbox the caller already has. `create()` (with no options)
   * returns it wrapped; `terminate()` and disposal only detach from it, the caller keeps its
   * lifecycle.
   */
  sandbox?: ModalSdkSandbox;
}

/** The SDK's client class, once an operation loaded it (an optional peer: importing this module never needs it). */
let ModalClientClass: typeof ModalClient | undefined;

async function loadModal(): Promise<void> {
  // `latest` of `modal` on the registry is an unrelated package, hence the pinned line.
  ModalClientClass ??= (
    await loadOptionalPeer('modal', { provider: 'modal', installLine: 'npm install modal@~0.11.1', load: () => import('modal') })
  ).ModalClient;
}

function loadedModalClient(): typeof ModalClient {
  if (ModalClientClass) return ModalClientClass;
  throw new SandboxProviderError({
    message:
      'provider.client is made by the first operation (create, fromId, fromName, list), which loads the modal SDK: call one first, or pass options.client',
    provider: 'modal',
  });
}

/** Sandboxes on Modal through the official `modal` SDK (0.11 line). */
export class ModalSandboxProvider implements SandboxProvider {
  readonly specificationVersion = 'sandbox-v1' as const;
  readonly id = 'modal';
  readonly capabilities = modalCapabilities;
  readonly events = new SandboxEmitter();
  private modalClient: ModalClient | undefined;
  private app: Promise<App> | undefined;
  private readonly appName: string;
  private readonly images = new Map<string, Image>();

  constructor(private readonly options: ModalSandboxProviderOptions = {}) {
    if ((options.tokenId === undefined) !== (options.tokenSecret === undefined)) {
      throw new SandboxInvalidArgumentError({
        message: 'Pass both tokenId and tokenSecret, or neither',
        argument: 'tokenId',
        provider: 'modal',
      });
    }
    this.appName = options.appName ?? 'sandport';
  }

  /**
   * The SDK client: `options.client`, or one made on first use (so construction does no I/O and
   * reads no profile). `modal` is an optional peer that the first operation loads; before one,
   * without `options.client`, this (and `wrap`) throws `SandboxProviderError`.
   */
  get client(): ModalClient {
    this.modalClient ??=
      this.options.client ??
      new (loadedModalClient())({
        ...(this.options.tokenId !== undefined ? { tokenId: this.options.tokenId, tokenSecret: this.options.tokenSecret } : {}),
        ...(this.options.environment !== undefined ? { environment: this.options.environment } : {}),
      });
    return this.modalClient;
  }

  /** Loads the SDK unless the caller brought a client; rejects with `SandboxCapabilityUnsupportedError` (`peer:modal`) when it is not installed. */
  private async loadClient(): Promise<void> {
    if (!this.options.client) await loadModal();
  }

  async create(options: CreateSandboxOptions = {}): Promise<ModalSandbox> {
    const startedAt = Date.now();
    const parsed = parseOptions(createSandboxOptionsSchema, options, { provider: 'modal', what: 'create options' });
    await this.loadClient();
    if (this.options.sandbox) {
      const { signal, ...rest } = parsed;
      if (Object.keys(rest).length > 0) {
        throw new SandboxInvalidArgumentError({
          message: 'This provider wraps an existing sandbox; create takes no options',
          argument: 'create options',
          provider: 'modal',
        });
      }
      signal?.throwIfAborted();
      return this.wrap(this.options.sandbox, { ownsLifecycle: false });
    }
    const plan = planModalCreate(parsed, {
      image: this.options.defaultImage ?? 'python:3.13-slim',
      encryptPorts: this.options.encryptPortsByDefault ?? true,
    });
    parsed.signal?.throwIfAborted();
    const created = (async () => {
      const client = this.client;
      const app = await this.getApp();
      const [image, secrets, volumes] = await Promise.all([this.image(plan), this.secrets(plan), this.volumes(plan)]);
      return client.sandboxes.create(app, image, { ...plan.params, secrets, volumes });
    })().catch((error: unknown) => {
      throw mapModalError(error, { operation: 'create' });
    });
    // Modal has no cancellable create: an abort after the request left terminates what it made.
    const sdk = await raceWithSignal(created, {
      signal: parsed.signal,
      operation: 'create',
      provider: 'modal',
      onAbort: () =>
        void created.then(
          (sandbox) => sandbox.terminate(),
          () => undefined,
        ),
    });
    const sandbox = createModalSandbox({
      sdk,
      client: this.client,
      name: parsed.name,
      warnings: plan.warnings,
      events: this.events,
      ownsLifecycle: true,
      hasCommand: plan.params.command !== undefined,
    });
    announceCreated(this.events, { provider: 'modal', sandboxId: sandbox.id, name: parsed.name, startedAt, warnings: plan.warnings });
    return sandbox;
  }

  async fromId(id: string, options: SignalOptions = {}): Promise<ModalSandbox> {
    checkStringArgument(id, 'id', 'modal');
    options.signal?.throwIfAborted();
    await this.loadClient();
    // The SDK's fromId makes no call; poll proves the sandbox exists and still runs.
    const sandbox = this.wrap(await this.client.sandboxes.fromId(id), { ownsLifecycle: true });
    await this.assertRunning(sandbox, id, options);
    return sandbox;
  }

  async fromName(name: string, options: SignalOptions = {}): Promise<ModalSandbox> {
    checkStringArgument(name, 'name', 'modal');
    options.signal?.throwIfAborted();
    await this.loadClient();
    const lookup = retryIdempotent(
      'fromName',
      () =>
        this.client.sandboxes.fromName(this.appName, name, { environment: this.options.environment }).catch((error: unknown) => {
          throw mapModalError(error, { operation: 'fromName', sandboxId: name });
        }),
      { provider: 'modal', events: this.events, signal: options.signal },
    );
    const sandbox = this.wrap(await raceWithSignal(lookup, { signal: options.signal, operation: 'fromName', provider: 'modal' }), {
      ownsLifecycle: true,
      name,
    });
    await this.assertRunning(sandbox, name, options);
    return sandbox;
  }

  async list(options: ListSandboxesOptions = {}): Promise<SandboxInfo[]> {
    const parsed = parseOptions(listSandboxesOptionsSchema, options, { provider: 'modal', what: 'list options' });
    parsed.signal?.throwIfAborted();
    await this.loadClient();
    const app = await raceWithSignal(this.getApp(), { signal: parsed.signal, operation: 'list', provider: 'modal' });
    const tags = Object.entries(parsed.tags ?? {}).map(([tagName, tagValue]) => ({ tagName, tagValue }));
    // The SDK's list() yields bare handles; the same RPC's response carries name, tags and
    // creation time, so it is paged here directly rather than with one call per sandbox.
    const infos: SandboxInfo[] = [];
    let beforeTimestamp: number | undefined;
    for (;;) {
      const page = await retryIdempotent(
        'list',
        () =>
          this.client.cpClient
            .sandboxListV2({ appId: app.appId, beforeTimestamp, includeFinished: false, tags })
            .catch((error: unknown) => {
              throw mapModalError(error, { operation: 'list' });
            }),
        { provider: 'modal', events: this.events, signal: parsed.signal },
      );
      if (page.sandboxes.length === 0) return infos;
      for (const info of page.sandboxes) {
        infos.push({
          id: info.id,
          name: info.name || undefined,
          tags: Object.fromEntries(info.tags.map((tag) => [tag.tagName, tag.tagValue])),
          createdAt: Math.round(info.createdAt * 1000),
        });
      }
      beforeTimestamp = page.sandboxes[page.sandboxes.length - 1]!.createdAt;
    }
  }

  /** Wraps a `modal` Sandbox; with `ownsLifecycle: false`, terminate only detaches. */
  wrap(sdk: ModalSdkSandbox, options: { ownsLifecycle: boolean; name?: string }): ModalSandbox {
    return createModalSandbox({
      sdk,
      client: this.client,
      name: options.name,
      warnings: [],
      events: this.events,
      ownsLifecycle: options.ownsLifecycle,
    });
  }

  private getApp(): Promise<App> {
    this.app ??= this.client.apps.fromName(this.appName, { createIfMissing: true, environment: this.options.environment });
    this.app.catch(() => (this.app = undefined));
    return this.app;
  }

  private async assertRunning(sandbox: ModalSandbox, key: string, options: SignalOptions): Promise<void> {
    const status = await retryIdempotent('poll', () => sandbox.poll(options), {
      provider: 'modal',
      events: this.events,
      signal: options.signal,
    });
    if (status.state === 'terminated') {
      throw new SandboxNotFoundError({
        message: `Sandbox ${key} is no longer running (${status.reason})`,
        sandboxId: key,
        provider: 'modal',
      });
    }
  }

  private async image(plan: ModalCreatePlan): Promise<Image> {
    const images = this.client.images;
    if (plan.image.kind === 'snapshot') return images.fromId(plan.image.imageId);
    // A built Image keeps its id, so later creates skip the build round trip.
    const key = JSON.stringify(plan.image);
    let image = this.images.get(key);
    if (!image) {
      image =
        plan.image.kind === 'registry'
          ? images.fromRegistry(plan.image.tag)
          : images.fromRegistry(plan.image.base).dockerfileCommands(plan.image.commands.map((command) => `RUN ${command}`));
      this.images.set(key, image);
    }
    return image;
  }

  private async secrets(plan: ModalCreatePlan): Promise<Secret[]> {
    const secrets = await Promise.all(
      plan.secretNames.map((name) => this.client.secrets.fromName(name, { environment: this.options.environment })),
    );
    if (plan.secretValues) secrets.push(await this.client.secrets.fromObject(plan.secretValues));
    return secrets;
  }

  private async volumes(plan: ModalCreatePlan): Promise<Record<string, Volume>> {
    const entries = await Promise.all(
      plan.volumes.map(async ({ mountPath, name, readOnly }) => {
        const volume = await this.client.volumes.fromName(name, { createIfMissing: true, environment: this.options.environment });
        return [mountPath, readOnly ? volume.withMountOptions({ readOnly: true }) : volume] as const;
      }),
    );
    return Object.fromEntries(entries);
  }
}

/** Creates the Modal provider. Construction does no I/O; the client is made on first use. */
export function createModalSandboxProvider(options: ModalSandboxProviderOptions = {}): ModalSandboxProvider {
  return new ModalSandboxProvider(options);
}
