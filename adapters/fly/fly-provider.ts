import {
  SandboxAlreadyExistsError,
  SandboxEmitter,
  SandboxError,
  SandboxNotFoundError,
  SandboxProviderError,
  announceCreated,
  checkStringArgument,
  createSandboxOptionsSchema,
  listSandboxesOptionsSchema,
  matchesTags,
  parseOptions,
  raceWithSignal,
  type CreateSandboxOptions,
  type ListSandboxesOptions,
  type SandboxInfo,
  type SandboxProvider,
  type SignalOptions,
} from '../../src/kit/index.js';
import { FlyClient, flyLiveStates, type FlyMachine } from './fly-client.js';
import {
  checkFlyAppPrefix,
  flyCapabilities,
  flyMetadataKeys,
  parseFlySandboxId,
  planFlyAppName,
  planFlyCreate,
  tagsFromFlyMetadata,
  type FlyCreatePlan,
  type FlyMachineConfig,
} from './fly-options.js';
import { FlySandboxImpl, type FlySandbox } from './fly-sandbox.js';
import { flyReadDeadlineArgv, flySecretsScript, flyStoreSecretsArgv } from './fly-scripts.js';

export { flyCapabilities };

const provider = 'fly';

export interface FlySandboxProviderOptions {
  /** Base URL of the Machines API. @default FLY_API_HOSTNAME, else `https://api.machines.dev` */
  apiHostname?: string;
  /** API token. @default FLY_API_TOKEN */
  token?: string;
  /** Organization slug the sandboxes' apps are created in. @default FLY_ORG, else `'personal'` */
  org?: string;
  /** First part of every sandbox app's name (`<prefix>-<random>`); `list` looks only at these apps. @default 'sandport' */
  appPrefix?: string;
  /** Image of a create without `image`. @default flyDefaultImage */
  defaultImage?: string;
  /** Domain of the apps' public host names (`<app>.<domain>`). @default SANDPORT_FLY_PUBLIC_DOMAIN, else 'fly.dev' */
  publicDomain?: string;
  /**
   * Scheme of tunnel URLs: Fly terminates TLS (`'https'`); an emulator's edge is plain `'http'`.
   * @default 'http' when the API's URL (`apiHostname`, else FLY_API_HOSTNAME) is `http:` (an
   * emulator or a local proxy), else 'https'
   */
  tunnelScheme?: 'https' | 'http';
  /** Retries of an idempotent call on transient failures. @default 3 */
  retries?: number;
}

/**
 * Sandboxes on Fly Machines, through our own client for the Machines REST API.
 *
 * Each sandbox is one machine in an app of its own, on a private network of its own (the app's
 * `network`): no sandbox reaches another over Fly's private network, and each has its own public
 * host name (`<app>.fly.dev`) for its declared ports. The cost: an app create (and delete) per
 * sandbox, and named volumes that live in the sandbox's app (gone with it). A named sandbox's app
 * name is derived from the org and the name, so the machine name (unique in its app) refuses a
 * second create of the name.
 */
export class FlySandboxProvider implements SandboxProvider {
  readonly specificationVersion = 'sandbox-v1' as const;
  readonly id = provider;
  readonly capabilities = flyCapabilities;
  readonly events = new SandboxEmitter();
  readonly client: FlyClient;
  readonly #options: FlySandboxProviderOptions;
  readonly #prefix: string;

  constructor(options: FlySandboxProviderOptions = {}) {
    this.#prefix = options.appPrefix ?? 'sandport';
    checkFlyAppPrefix(this.#prefix);
    this.#options = options;
    this.client = new FlyClient({ apiHostname: options.apiHostname, token: options.token, events: this.events, retries: options.retries });
  }

  get #publicDomain(): string {
    return this.#options.publicDomain ?? process.env.SANDPORT_FLY_PUBLIC_DOMAIN ?? 'fly.dev';
  }

  get #tunnelScheme(): 'https' | 'http' {
    return this.#options.tunnelScheme ?? (this.client.apiHostname.startsWith('http:') ? 'http' : 'https');
  }

  get #org(): string {
    return this.#options.org ?? process.env.FLY_ORG ?? 'personal';
  }

  async create(options: CreateSandboxOptions = {}): Promise<FlySandbox> {
    const startedAt = Date.now();
    const parsed = parseOptions(createSandboxOptionsSchema, options, { provider, what: 'create options' });
    const plan = planFlyCreate(parsed, { image: this.#options.defaultImage });
    const { signal } = parsed;
    signal?.throwIfAborted();
    const app = planFlyAppName(this.#prefix, this.#org, parsed.name);
    const createdApp = await this.#ensureApp(app, parsed.name, signal);
    let machine: FlyMachine | undefined;
    try {
      const mounts = await this.#mounts(app, plan, signal);
      const config: FlyMachineConfig = { ...plan.config, ...(mounts.length > 0 ? { mounts } : {}) };
      machine = await this.client.createMachine(app, { name: plan.name, region: plan.region, config }, signal).catch((error: unknown) => {
        if (parsed.name !== undefined && SandboxError.isInstance(error) && error.code === 'already_exists')
          throw new SandboxAlreadyExistsError({ message: `A sandbox named ${parsed.name} exists already`, provider, cause: error });
        throw error;
      });
      await this.#waitStarted(app, machine.id, signal);
      const sandbox = this.#wrap(app, machine.id, plan, parsed.name);
      try {
        await this.#setUp(sandbox, plan, signal);
      } catch (error) {
        await sandbox.terminate().catch(() => undefined);
        throw error;
      }
      announceCreated(this.events, { provider, sandboxId: sandbox.id, name: parsed.name, startedAt, warnings: plan.warnings });
      return sandbox;
    } catch (error) {
      if (machine) await this.client.deleteMachine(app, machine.id).catch(() => undefined);
      if (createdApp) await this.client.deleteApp(app).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Creates the sandbox's app on its own network. A named sandbox's app may exist already (an
   * earlier sandbox of the name ended by its keeper, which cannot delete the app): it is reused
   * when no live machine is in it. Resolves whether this call created it.
   */
  async #ensureApp(app: string, name: string | undefined, signal: AbortSignal | undefined): Promise<boolean> {
    try {
      await this.client.createApp({ name: app, org: this.#org, network: `${app}-net` }, signal);
      return true;
    } catch (error) {
      if (name === undefined || !SandboxError.isInstance(error) || error.code !== 'already_exists') throw error;
    }
    const machines = await this.client.listMachines(app, {}, signal);
    if (machines.some((machine) => flyLiveStates.has(machine.state)))
      throw new SandboxAlreadyExistsError({ message: `A sandbox named ${name} exists already (app ${app})`, provider });
    return false;
  }

  /** The mounts of the plan: each volume name found in the app (unattached), or created. */
  async #mounts(app: string, plan: FlyCreatePlan, signal: AbortSignal | undefined): Promise<Array<{ volume: string; path: string }>> {
    if (plan.mounts.length === 0) return [];
    const existing = await this.client.listVolumes(app, signal);
    const mounts: Array<{ volume: string; path: string }> = [];
    for (const mount of plan.mounts) {
      const found = existing.find(
        (volume) => volume.name === mount.name && !volume.attached_machine_id && !/destroy/.test(volume.state ?? ''),
      );
      const volume =
        found ?? (await this.client.createVolume(app, { name: mount.name, sizeGb: plan.volumeSizeGb, region: plan.region }, signal));
      existing.splice(existing.indexOf(volume), 1);
      mounts.push({ volume: volume.id, path: mount.path });
    }
    return mounts;
  }

  async #waitStarted(app: string, machineId: string, signal: AbortSignal | undefined): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (await this.client.waitMachine(app, machineId, 'started', 60, signal)) return;
    }
    throw new SandboxProviderError({ message: `Machine ${machineId} did not start`, provider });
  }

  /** Secrets into the machine (kept out of its config), the workdir, then the entrypoint. */
  async #setUp(sandbox: FlySandboxImpl, plan: FlyCreatePlan, signal: AbortSignal | undefined): Promise<void> {
    if (Object.keys(plan.secrets).length > 0) {
      const stored = await sandbox.direct(flyStoreSecretsArgv, {
        stdin: Buffer.from(flySecretsScript(plan.secrets)).toString('base64'),
        timeoutSeconds: 30,
        operation: 'create',
        signal,
      });
      if (stored.exitCode !== 0) throw new SandboxProviderError({ message: `Storing the secrets failed: ${stored.stderr}`, provider });
    }
    if (plan.workdir !== undefined) await sandbox.files.mkdir(plan.workdir, signal ? { signal } : {});
    if (plan.entrypoint) await sandbox.startEntrypoint(plan.entrypoint, signal);
  }

  #wrap(app: string, machineId: string, plan: FlyCreatePlan, name: string | undefined): FlySandboxImpl {
    return new FlySandboxImpl({
      client: this.client,
      app,
      machineId,
      name,
      warnings: plan.warnings,
      events: this.events,
      ports: plan.ports,
      publicDomain: this.#publicDomain,
      tunnelScheme: this.#tunnelScheme,
      workdir: plan.workdir,
      lifetimeMs: plan.lifetimeMs,
      idleTimeoutMs: plan.idleTimeoutMs,
      paused: false,
      hasEntrypoint: plan.entrypoint !== undefined,
    });
  }

  async fromId(id: string, options: SignalOptions = {}): Promise<FlySandbox> {
    checkStringArgument(id, 'id', provider);
    options.signal?.throwIfAborted();
    const parts = parseFlySandboxId(id);
    const notFound = (cause?: unknown) =>
      new SandboxNotFoundError({ message: `No running Fly sandbox ${id}`, sandboxId: id, provider, cause });
    if (!parts) throw notFound();
    let machine: FlyMachine;
    try {
      machine = await this.client.getMachine(parts.app, parts.machineId, options.signal, id);
    } catch (error) {
      if (SandboxNotFoundError.isInstance(error)) throw notFound(error);
      throw error;
    }
    const metadata = machine.config?.metadata ?? {};
    if (!flyLiveStates.has(machine.state) || metadata[flyMetadataKeys.managed] !== '1') throw notFound();
    const paused = machine.state === 'suspended' || machine.state === 'suspending';
    const sandbox = new FlySandboxImpl({
      client: this.client,
      app: parts.app,
      machineId: parts.machineId,
      name: metadata[flyMetadataKeys.name],
      warnings: [],
      events: this.events,
      ports: portsOf(machine),
      publicDomain: this.#publicDomain,
      tunnelScheme: this.#tunnelScheme,
      workdir: undefined,
      lifetimeMs: undefined,
      idleTimeoutMs: undefined,
      paused,
      hasEntrypoint: metadata[flyMetadataKeys.entrypoint] === '1',
    });
    if (!paused) {
      // The keeper holds the deadline: this process's clock follows it.
      const answer = await raceWithSignal(
        sandbox.direct(flyReadDeadlineArgv, { timeoutSeconds: 30, operation: 'fromId', signal: options.signal }),
        { signal: options.signal, operation: 'fromId', provider },
      ).catch(() => undefined);
      const deadline = Number(answer?.stdout.trim());
      if (Number.isInteger(deadline) && deadline > 0) sandbox.lifecycle.armLifetime(Math.max(1, deadline * 1000 - Date.now()));
    }
    return sandbox;
  }

  async fromName(name: string, options: SignalOptions = {}): Promise<FlySandbox> {
    checkStringArgument(name, 'name', provider);
    options.signal?.throwIfAborted();
    const app = planFlyAppName(this.#prefix, this.#org, name);
    let machines: FlyMachine[];
    try {
      machines = await this.client.listMachines(app, { [flyMetadataKeys.name]: name }, options.signal);
    } catch (error) {
      if (!SandboxNotFoundError.isInstance(error)) throw error;
      machines = [];
    }
    const live = machines.find((machine) => flyLiveStates.has(machine.state));
    if (!live) throw new SandboxNotFoundError({ message: `No running sandbox is named ${name}`, name, provider });
    return this.fromId(`${app}:${live.id}`, options);
  }

  /** The live sandboxes of the org's sandport apps (one list call per app), filtered by Fly's metadata filter and again here. */
  async list(options: ListSandboxesOptions = {}): Promise<SandboxInfo[]> {
    const parsed = parseOptions(listSandboxesOptionsSchema, options, { provider, what: 'list options' });
    parsed.signal?.throwIfAborted();
    const apps = (await this.client.listApps(this.#org, parsed.signal)).filter((app) => app.name.startsWith(`${this.#prefix}-`));
    const filter = { [flyMetadataKeys.managed]: '1', ...parsed.tags };
    const lists = await Promise.all(
      apps.map((app) =>
        this.client.listMachines(app.name, filter, parsed.signal).then(
          (machines) => machines.map((machine) => ({ app: app.name, machine })),
          (error: unknown) => {
            if (SandboxNotFoundError.isInstance(error)) return [];
            throw error;
          },
        ),
      ),
    );
    return lists
      .flat()
      .filter(({ machine }) => flyLiveStates.has(machine.state))
      .map(({ app, machine }) => {
        const metadata = machine.config?.metadata ?? {};
        return {
          id: `${app}:${machine.id}`,
          name: metadata[flyMetadataKeys.name],
          tags: tagsFromFlyMetadata(metadata),
          createdAt: machine.created_at ? Date.parse(machine.created_at) : Date.now(),
        };
      })
      .filter((info) => matchesTags(info.tags, parsed.tags));
  }
}

/** The declared ports of a machine found by id, from its services. */
function portsOf(machine: FlyMachine): Array<{ port: number; encrypted: boolean }> {
  return (machine.config?.services ?? []).map((service) => {
    const handlers = ((service.ports ?? [])[0] as { handlers?: unknown } | undefined)?.handlers;
    return { port: service.internal_port, encrypted: Array.isArray(handlers) && handlers.includes('tls') };
  });
}

/** Creates the Fly provider. Construction does no I/O. Throws `SandboxInvalidArgumentError` for a bad `appPrefix`. */
export function createFlySandboxProvider(options: FlySandboxProviderOptions = {}): FlySandboxProvider {
  return new FlySandboxProvider(options);
}
