/**
 * The sandboxes an emulator runs, each a sandbox of the local provider under the id, name and
 * tags the client sees. Names are unique among running sandboxes of one scope (a Modal app, a
 * Kubernetes namespace, a Fly app); lookups by name find the newest. Provider-specific state
 * (task ids, tunnels, execs) rides along as `data`.
 */
import {
  SandboxAlreadyExistsError,
  matchesTags,
  type CreateSandboxOptions,
  type Sandbox,
  type SandboxStatus,
} from '../../../src/kit/index.js';
import { randomToken } from './ids.js';

/** How a sandbox ended, as the local provider reports it. */
export type SandboxEnd = Extract<SandboxStatus, { state: 'terminated' }>;

/** The part of a provider the registry needs (the local provider, or a fake in unit tests). */
export interface RegistryBackend<Local extends Sandbox> {
  create(options?: CreateSandboxOptions): Promise<Local>;
}

export interface RegisteredSandbox<Local extends Sandbox, Data> {
  /** The id the client sees (not the local sandbox's). */
  readonly id: string;
  readonly scope: string;
  readonly name: string | undefined;
  tags: Record<string, string>;
  /** Milliseconds since the epoch, strictly increasing across the registry (a stable sort key). */
  readonly createdAt: number;
  readonly local: Local;
  /** Set once the sandbox ended, before `ended` resolves. */
  end: SandboxEnd | undefined;
  readonly ended: Promise<SandboxEnd>;
  readonly data: Data;
}

export interface RegisterOptions<Local extends Sandbox, Data> {
  /** The scope its name is unique in. @default '' (one scope) */
  scope?: string;
  name?: string;
  tags?: Record<string, string>;
  /** Provider-specific state, built once the local sandbox exists. */
  data: (local: Local, id: string) => Data | Promise<Data>;
}

export interface ListOptions<Local extends Sandbox, Data> {
  /** Only this scope. @default every scope */
  scope?: string;
  /** Only sandboxes carrying every one of these tags with these values. */
  tags?: Readonly<Record<string, string>>;
  /** Include sandboxes that ended. @default false */
  includeEnded?: boolean;
  /** Any further condition. */
  where?: (entry: RegisteredSandbox<Local, Data>) => boolean;
}

export interface SandboxRegistryOptions {
  /** Makes the ids the client sees. @default `sb-` and 16 random letters and digits */
  newId?: () => string;
  /** What a scope is called in the duplicate-name error ("app", "namespace"). @default 'scope' */
  scopeNoun?: string;
}

export class SandboxRegistry<Local extends Sandbox, Data = undefined> {
  private readonly entries = new Map<string, RegisteredSandbox<Local, Data>>();
  /** `scope\0name` of creates under way, so that two concurrent creates cannot take one name. */
  private readonly reserved = new Set<string>();
  private lastCreatedAt = 0;
  private readonly newId: () => string;
  private readonly scopeNoun: string;

  constructor(
    private readonly backend: RegistryBackend<Local>,
    options: SandboxRegistryOptions = {},
  ) {
    this.newId = options.newId ?? (() => `sb-${randomToken(16)}`);
    this.scopeNoun = options.scopeNoun ?? 'scope';
  }

  /**
   * Creates a local sandbox and registers it. Throws `SandboxAlreadyExistsError` when a running
   * sandbox of the same scope has the name (checked before any sandbox starts), and whatever the
   * local provider throws. If `data` throws, the sandbox is terminated and the error rethrown.
   */
  async create(options: CreateSandboxOptions, register: RegisterOptions<Local, Data>): Promise<RegisteredSandbox<Local, Data>> {
    const scope = register.scope ?? '';
    const key = register.name === undefined ? undefined : `${scope}\0${register.name}`;
    if (register.name !== undefined && (this.reserved.has(key!) || this.findByName(register.name, { scope }))) {
      throw new SandboxAlreadyExistsError({
        message: `A running sandbox named "${register.name}" already exists in the ${this.scopeNoun}`,
      });
    }
    if (key) this.reserved.add(key);
    try {
      const local = await this.backend.create(options);
      const id = this.newId();
      let data: Data;
      try {
        data = await register.data(local, id);
      } catch (error) {
        await local.terminate().catch(() => undefined);
        throw error;
      }
      this.lastCreatedAt = Math.max(Date.now(), this.lastCreatedAt + 1);
      const entry: RegisteredSandbox<Local, Data> = {
        id,
        scope,
        name: register.name,
        tags: { ...register.tags },
        createdAt: this.lastCreatedAt,
        local,
        end: undefined,
        ended: local.wait().then((end) => (entry.end = end)),
        data,
      };
      this.entries.set(id, entry);
      return entry;
    } finally {
      if (key) this.reserved.delete(key);
    }
  }

  /** The sandbox with this id, running or ended, or undefined. */
  get(id: string): RegisteredSandbox<Local, Data> | undefined {
    return this.entries.get(id);
  }

  /** The newest sandbox with this name in `scope` (default `''`, as at create); ended ones only with `includeEnded`. */
  findByName(name: string, options: { scope?: string; includeEnded?: boolean } = {}): RegisteredSandbox<Local, Data> | undefined {
    return this.list({ ...options, scope: options.scope ?? '', where: (entry) => entry.name === name })[0];
  }

  /** Matching sandboxes, newest first. */
  list(options: ListOptions<Local, Data> = {}): Array<RegisteredSandbox<Local, Data>> {
    return [...this.entries.values()]
      .filter((entry) => options.includeEnded || !entry.end)
      .filter((entry) => options.scope === undefined || entry.scope === options.scope)
      .filter((entry) => matchesTags(entry.tags, options.tags))
      .filter((entry) => !options.where || options.where(entry))
      .sort((a, b) => b.createdAt - a.createdAt);
  }

  /** Every registered sandbox, in creation order. */
  all(): Array<RegisteredSandbox<Local, Data>> {
    return [...this.entries.values()];
  }

  /** Terminates every sandbox (errors ignored: some have ended already). Idempotent. */
  async terminateAll(): Promise<void> {
    await Promise.all([...this.entries.values()].map((entry) => entry.local.terminate().catch(() => undefined)));
  }
}
