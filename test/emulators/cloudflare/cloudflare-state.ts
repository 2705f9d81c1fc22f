/**
 * What the bridge emulator knows: the caller's sandbox ids mapped to containers (the bridge's
 * WarmPool maps each id to a container UUID, the Sandbox Durable Object's name), each container a
 * local sandbox with the state the bridge keeps for it (sessions, tunnels, 0.13 processes).
 *
 * As on Cloudflare, any well-formed id gets a fresh container on first use, and the mapping is
 * kept only while the container runs: once it stopped (the `restartContainer` test hook, a
 * crash), the same id gets a new, empty one.
 */
import { randomUUID } from 'node:crypto';
import type { LocalSandbox, LocalSandboxProvider } from '../../../adapters/local/index.js';
import { SandboxRegistry, type RegisteredSandbox } from '../shared/sandbox-registry.js';
import type { BridgeVersion } from './cloudflare-wire.js';

/** A session made by `POST /session`: what an exec with its `Session-Id` runs with. */
export interface BridgeSession {
  readonly cwd: string | undefined;
  readonly env: Readonly<Record<string, string>>;
}

/** What `POST /tunnel/:port` answers, and what the edge proxy routes by. */
export interface TunnelRecord {
  readonly id: string;
  readonly port: number;
  readonly url: string;
  readonly hostname: string;
  readonly createdAt: string;
}

/** Per-container state; handler groups keep theirs under their own key in `extra`. */
export interface ContainerData {
  /** The caller's id this container serves. */
  readonly sandboxId: string;
  readonly sessions: Map<string, BridgeSession>;
  /** By sandbox port. */
  readonly tunnels: Map<number, TunnelRecord>;
  readonly extra: Map<string, unknown>;
}

export type Container = RegisteredSandbox<LocalSandbox, ContainerData>;

export interface BridgeStateOptions {
  provider: LocalSandboxProvider;
  version: BridgeVersion;
  /** `SANDBOX_API_KEY`; undefined: auth off. */
  token: string | undefined;
  /** Local create options of every container. */
  network: 'allow' | 'block' | { allowDomains: string[] };
  /** Read-only host directories in every container, by path (what the Worker's image holds). */
  volumes?: Record<string, { source: string; readOnly: true }>;
}

export class BridgeState {
  readonly version: BridgeVersion;
  readonly token: string | undefined;
  /** Containers by UUID (the registry's id). */
  readonly containers: SandboxRegistry<LocalSandbox, ContainerData>;
  /** Call counts by `METHOD pattern`. */
  readonly calls = new Map<string, number>();
  /** Run on close, after the containers ended. */
  readonly closers = new Set<() => Promise<void>>();
  /** Run when a container goes (restart, delete, close), to drop what points at it (tunnels). */
  readonly onContainerGone = new Set<(container: Container) => void>();
  private readonly assigned = new Map<string, Promise<Container>>();
  private readonly network: 'allow' | 'block' | { allowDomains: string[] };
  private readonly volumes: Record<string, { source: string; readOnly: true }> | undefined;

  constructor(options: BridgeStateOptions) {
    this.version = options.version;
    this.token = options.token;
    this.network = options.network;
    this.volumes = options.volumes;
    this.containers = new SandboxRegistry(options.provider, { newId: randomUUID, scopeNoun: 'bridge' });
  }

  /**
   * The running container of `sandboxId`, started now when it has none (or its last one
   * stopped). Concurrent first calls share one start.
   */
  async container(sandboxId: string): Promise<Container> {
    const current = this.assigned.get(sandboxId);
    if (current) {
      const container = await current.catch(() => undefined);
      if (container && !container.end) return container;
      if (this.assigned.get(sandboxId) === current) this.assigned.delete(sandboxId);
      if (container) this.forget(container);
      return this.container(sandboxId);
    }
    const starting = this.containers.create(
      { network: this.network, ...(this.volumes ? { volumes: this.volumes } : {}) },
      { data: () => ({ sandboxId, sessions: new Map(), tunnels: new Map(), extra: new Map() }) },
    );
    this.assigned.set(sandboxId, starting);
    starting.then(
      (container) => void container.ended.then(() => this.forget(container)),
      () => this.assigned.get(sandboxId) === starting && this.assigned.delete(sandboxId),
    );
    return starting;
  }

  /** The container `sandboxId` is mapped to now, without starting one (`DELETE /v1/sandbox/:id`). */
  async lookup(sandboxId: string): Promise<Container | undefined> {
    const container = await this.assigned.get(sandboxId)?.catch(() => undefined);
    return container && !container.end ? container : undefined;
  }

  /**
   * Stops the container of `sandboxId` and forgets the mapping, so that its next use gets a fresh
   * one. Resolves to whether there was one. Idempotent.
   */
  async stop(sandboxId: string): Promise<boolean> {
    const container = await this.lookup(sandboxId);
    this.assigned.delete(sandboxId);
    if (!container) return false;
    await container.local.terminate().catch(() => undefined);
    this.forget(container);
    return true;
  }

  /** Sandbox ids mapped to a running container (the pool's `assigned`). */
  get assignedCount(): number {
    return this.containers.list().length;
  }

  private readonly forgotten = new WeakSet<Container>();

  private forget(container: Container): void {
    if (this.forgotten.has(container)) return;
    this.forgotten.add(container);
    for (const listener of this.onContainerGone) listener(container);
  }
}
