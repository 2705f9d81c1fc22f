/**
 * What the Fly emulator knows: apps (by name), their machines (fly-machine.ts) and volumes (host
 * directories under the emulator's own temporary directory), the token it accepts, and the
 * lookups every handler group shares, with Fly's 404 answers.
 */
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalSandboxProvider } from '../../../adapters/local/index.js';
import { randomToken } from '../shared/ids.js';
import { FlyHttpError } from './fly-http.js';
import { flyTime, newVolumeId } from './fly-ids.js';
import type { FlyMachine, MachineHost } from './fly-machine.js';

export interface FlyApp {
  readonly id: string;
  readonly name: string;
  readonly orgSlug: string;
  readonly network: string;
  readonly createdAt: number;
}

export interface FlyVolume {
  readonly id: string;
  readonly app: string;
  readonly name: string;
  readonly sizeGb: number;
  readonly region: string;
  readonly createdAt: number;
  state: 'created' | 'destroyed';
  /** The machine that mounts it (stopped or not), until that machine is destroyed. */
  attachedMachineId: string | undefined;
  /** Where its files live on the host. */
  readonly hostDir: string;
}

export interface FlyStateOptions {
  provider: LocalSandboxProvider;
  token: string;
  /** Region of machines and volumes created without one. */
  region: string;
  /** Who holds the leases this token takes. */
  owner: string;
  /** Where volume directories go (removed on close). */
  volumeRoot: string;
  images: Readonly<Record<string, string>>;
  imageMounts: Readonly<Record<string, Readonly<Record<string, string>>>>;
  network: { allowDomains: string[] } | undefined;
  defaultCommand: readonly string[];
}

export class FlyState implements MachineHost {
  readonly provider: LocalSandboxProvider;
  readonly token: string;
  readonly region: string;
  readonly owner: string;
  readonly defaultCommand: readonly string[];
  readonly apps = new Map<string, FlyApp>();
  /** Every machine by id, destroyed ones included (`include_deleted`, `wait?state=destroyed`). */
  readonly machines = new Map<string, FlyMachine>();
  readonly volumes = new Map<string, FlyVolume>();
  /** Call counts by `METHOD pattern`, for tests and the benchmark. */
  readonly calls = new Map<string, number>();
  /** Set by `closeAll`: machines start no run any more. */
  closed = false;
  /** The public edge (fly-edge.ts), told when an app's published ports may have changed. */
  edge: { sync(app: string): Promise<void>; closeApp(app: string): Promise<void> } | undefined;
  private readonly volumeRoot: string;
  private readonly images: Readonly<Record<string, string>>;
  private readonly imageMounts: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly network: { allowDomains: string[] } | undefined;

  constructor(options: FlyStateOptions) {
    this.provider = options.provider;
    this.token = options.token;
    this.region = options.region;
    this.owner = options.owner;
    this.volumeRoot = options.volumeRoot;
    this.images = options.images;
    this.imageMounts = options.imageMounts;
    this.network = options.network;
    this.defaultCommand = options.defaultCommand;
  }

  // ---- MachineHost -------------------------------------------------------------------------

  imageFor(image: string): string {
    return this.images[image] ?? 'host';
  }

  imageVolumes(image: string): Record<string, { source: string; readOnly: true }> {
    return Object.fromEntries(
      Object.entries(this.imageMounts[image] ?? {}).map(([path, source]) => [path, { source, readOnly: true as const }]),
    );
  }

  volumeMounts(machine: FlyMachine): Record<string, string> {
    const mounts: Record<string, string> = {};
    for (const mount of machine.config.mounts ?? []) {
      const volume = this.volumes.get(mount.volume);
      if (volume && volume.state !== 'destroyed') mounts[mount.path] = volume.hostDir;
    }
    return mounts;
  }

  destroyed(machine: FlyMachine): void {
    for (const volume of this.volumes.values()) {
      if (volume.attachedMachineId === machine.id) volume.attachedMachineId = undefined;
    }
  }

  // ---- lookups -----------------------------------------------------------------------------

  app(name: string): FlyApp {
    const found = this.apps.get(name);
    if (!found) throw new FlyHttpError(404, 'app not found');
    return found;
  }

  /** A machine of `app`, destroyed or not; 404 when it never existed there. */
  machine(app: string, id: string): FlyMachine {
    this.app(app);
    const found = this.machines.get(id);
    if (!found || found.app !== app) throw new FlyHttpError(404, 'machine not found');
    return found;
  }

  /** A machine that is not destroyed: Fly's 404 for one that is. */
  liveMachine(app: string, id: string): FlyMachine {
    const found = this.machine(app, id);
    if (found.destroyed) throw new FlyHttpError(404, 'machine not found');
    return found;
  }

  machinesOf(app: string, includeDestroyed = false): FlyMachine[] {
    return [...this.machines.values()].filter((m) => m.app === app && (includeDestroyed || !m.destroyed));
  }

  volume(app: string, id: string): FlyVolume {
    this.app(app);
    const found = this.volumes.get(id);
    if (!found || found.app !== app) throw new FlyHttpError(404, 'volume not found');
    return found;
  }

  // ---- volumes -----------------------------------------------------------------------------

  async createVolume(app: string, init: { name: string; sizeGb: number; region: string }): Promise<FlyVolume> {
    const id = newVolumeId();
    const hostDir = join(this.volumeRoot, id);
    await mkdir(hostDir, { recursive: true, mode: 0o755 });
    // The sandbox's root is an unprivileged host uid when the emulator runs as root: it owns the volume.
    if (process.getuid?.() === 0) await chown(hostDir, this.provider.sandboxUid, this.provider.sandboxUid);
    else await chmod(hostDir, 0o777);
    const volume: FlyVolume = { id, app, ...init, createdAt: Date.now(), state: 'created', attachedMachineId: undefined, hostDir };
    this.volumes.set(id, volume);
    return volume;
  }

  async destroyVolume(volume: FlyVolume): Promise<void> {
    volume.state = 'destroyed';
    await rm(volume.hostDir, { recursive: true, force: true });
  }

  volumeJson(volume: FlyVolume): Record<string, unknown> {
    return {
      id: volume.id,
      name: volume.name,
      state: volume.state,
      size_gb: volume.sizeGb,
      region: volume.region,
      zone: 'e1a7',
      encrypted: true,
      attached_machine_id: volume.attachedMachineId ?? null,
      attached_alloc_id: null,
      created_at: new Date(volume.createdAt).toISOString(),
      blocks: 0,
      block_size: 0,
      blocks_free: 0,
      blocks_avail: 0,
      fstype: 'ext4',
      snapshot_retention: 5,
      auto_backup_enabled: false,
      host_dedication_key: '',
    };
  }

  appJson(app: FlyApp): Record<string, unknown> {
    return { id: app.id, name: app.name, organization: { name: app.orgSlug, slug: app.orgSlug }, status: 'deployed' };
  }

  newAppId(): string {
    return randomToken(20).toLowerCase();
  }

  /** Ends every run (the emulator's close) and removes the volume directories. */
  async closeAll(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.machines.values()].map((machine) => machine.kill()));
    await rm(this.volumeRoot, { recursive: true, force: true });
  }
}

export { flyTime };
