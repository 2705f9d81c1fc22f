/**
 * What the Daytona emulator knows: its sandboxes (each backed by a local sandbox while it runs),
 * snapshots, volumes, the API key it accepts, and the state changes it tells subscribers about
 * (daytona-events.ts). A Daytona sandbox outlives its local sandbox: `stop` keeps its
 * filesystem as a local snapshot and ends every process, `start` creates a new local sandbox
 * from that snapshot, as a stopped Daytona sandbox keeps its disk and loses its processes.
 * `pause` freezes the local sandbox (memory kept), `start` thaws it.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalSandbox, LocalSandboxProvider } from '../../../adapters/local/index.js';
import type { CreateSandboxOptions, NetworkPolicy, SandboxSnapshotRef } from '../../../src/kit/index.js';
import { randomToken } from '../shared/ids.js';
import { HttpError, type DaytonaRequest } from './daytona-http.js';
import type { LocalImage } from './daytona-images.js';

/** Daytona's sandbox states (the SDK's `SandboxState`), those the emulator passes through. */
export type SandboxStateName =
  | 'creating'
  | 'started'
  | 'stopping'
  | 'stopped'
  | 'starting'
  | 'archiving'
  | 'archived'
  | 'pausing'
  | 'paused'
  | 'snapshotting'
  | 'destroying'
  | 'destroyed'
  | 'error'
  | 'build_failed';

/** The organization every sandbox of the emulator belongs to. */
export const organizationId = 'org-sandport-emulator';

/** What the emulator keeps per sandbox. Handler groups keep their own parts in `extra`. */
export interface DaytonaSandbox {
  readonly id: string;
  readonly name: string;
  state: SandboxStateName;
  errorReason: string | undefined;
  /** The snapshot name it was created from, when one was named (or the default). */
  readonly snapshot: string | undefined;
  readonly user: string;
  readonly home: string;
  env: Record<string, string>;
  labels: Record<string, string>;
  public: boolean;
  networkBlockAll: boolean;
  networkAllowList: string | undefined;
  domainAllowList: string | undefined;
  readonly cpu: number;
  readonly gpu: number;
  readonly memory: number;
  readonly disk: number;
  autoStopInterval: number;
  autoPauseInterval: number;
  autoArchiveInterval: number;
  autoDeleteInterval: number;
  /** Milliseconds since the epoch when the TTL deletes it, if it has one. */
  autoDestroyAt: number | undefined;
  readonly volumes: Array<{ volumeId: string; mountPath: string; subpath?: string }>;
  readonly buildInfo: { dockerfileContent: string; contextHashes: string[] } | undefined;
  readonly createdAt: number;
  updatedAt: number;
  lastActivityAt: number;
  /** The running local sandbox (started, paused), else undefined. */
  local: LocalSandbox | undefined;
  /** What the next start creates the local sandbox from (the image, then the stop's snapshot). */
  image: LocalImage;
  /** The local create options besides `image` (network, volumes, env). */
  readonly localOptions: Omit<CreateSandboxOptions, 'image'>;
  /** The preview token (`x-daytona-preview-token`) of a private sandbox's preview links. */
  readonly previewToken: string;
  /** Signed preview tokens: port and expiry (ms since the epoch). */
  readonly signedPreviews: Map<string, { port: number; expiresAt: number }>;
  /** Environment variables the daemon adds to every process (`sandbox.updateEnv`). */
  daemonEnv: Record<string, string>;
  readonly timers: Map<string, NodeJS.Timeout>;
  /** Serialises lifecycle changes (start, stop, pause, delete) of this sandbox. */
  lifecycle: Promise<unknown>;
  readonly extra: Map<string, unknown>;
}

export interface DaytonaSnapshotRecord {
  readonly id: string;
  readonly name: string;
  state: 'active' | 'inactive' | 'build_failed' | 'error' | 'removing';
  readonly imageName: string | undefined;
  readonly entrypoint: string[] | null;
  readonly cpu: number;
  readonly gpu: number;
  readonly mem: number;
  readonly disk: number;
  errorReason: string | null;
  readonly createdAt: number;
  updatedAt: number;
  lastUsedAt: number | null;
  readonly general: boolean;
  readonly buildInfo: { dockerfileContent: string; contextHashes: string[] } | undefined;
  readonly sourceSandboxId: string | null;
  /** What sandboxes made from it start from. */
  readonly image: LocalImage | undefined;
  /** Build log lines, for the build-logs URL. */
  readonly logs: string[];
}

export interface DaytonaVolumeRecord {
  readonly id: string;
  readonly name: string;
  state: 'ready' | 'deleted';
  readonly createdAt: number;
  updatedAt: number;
  lastUsedAt: number | null;
  /** The host directory mounted into sandboxes. */
  readonly directory: string;
}

/** A state change, as daytona-events.ts delivers it. */
export type StateListener = (
  event: 'sandbox.created' | 'sandbox.state.updated',
  sandbox: DaytonaSandbox,
  oldState?: SandboxStateName,
) => void;

export interface DaytonaStateOptions {
  provider: LocalSandboxProvider;
  apiKey: string | undefined;
  /** Where volumes keep their files on the host. */
  volumesDir: string;
}

export class DaytonaState {
  readonly provider: LocalSandboxProvider;
  readonly apiKey: string | undefined;
  readonly sandboxes = new Map<string, DaytonaSandbox>();
  readonly snapshots = new Map<string, DaytonaSnapshotRecord>();
  readonly volumes = new Map<string, DaytonaVolumeRecord>();
  readonly listeners = new Set<StateListener>();
  /** API and toolbox call counts by `METHOD pattern`. */
  readonly calls = new Map<string, number>();
  /** Run on close, after the sandboxes ended. */
  readonly closers = new Set<() => Promise<void>>();
  readonly volumesDir: string;
  /** Set by the emulator once it listens: the toolbox base URL given in sandbox DTOs. */
  toolboxProxyUrl = '';
  /** Set by the emulator once the preview edge listens: `daytona.localhost:<port>`. */
  previewDomain = '';

  constructor(options: DaytonaStateOptions) {
    this.provider = options.provider;
    this.apiKey = options.apiKey;
    this.volumesDir = options.volumesDir;
  }

  /** Refuses a call without the API key (Daytona answers 401). */
  checkApiKey(request: Pick<DaytonaRequest, 'headers'>): void {
    const header = request.headers.authorization;
    const key = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    if (key === '' || (this.apiKey !== undefined && key !== this.apiKey)) {
      throw new HttpError(401, 'Invalid credentials');
    }
  }

  /** A sandbox by id or name, not destroyed; 404 as Daytona words it otherwise. */
  sandbox(idOrName: string): DaytonaSandbox {
    const byId = this.sandboxes.get(idOrName);
    if (byId && byId.state !== 'destroyed') return byId;
    for (const candidate of this.sandboxes.values()) {
      if (candidate.name === idOrName && candidate.state !== 'destroyed') return candidate;
    }
    throw new HttpError(404, `Sandbox with ID or name ${idOrName} not found`);
  }

  /** The running local sandbox of a toolbox call; Daytona's proxy answers a stopped one with an error. */
  running(id: string): { sandbox: DaytonaSandbox; local: LocalSandbox } {
    const sandbox = this.sandboxes.get(id);
    if (!sandbox || sandbox.state === 'destroyed') throw new HttpError(404, `Sandbox with ID ${id} not found`);
    if (!sandbox.local || (sandbox.state !== 'started' && sandbox.state !== 'snapshotting')) {
      throw new HttpError(400, `Sandbox ${id} is not running (state: ${sandbox.state})`);
    }
    this.touch(sandbox);
    return { sandbox, local: sandbox.local };
  }

  newSandboxId(): string {
    return randomUUID();
  }

  newPreviewToken(): string {
    return randomToken(32).toLowerCase();
  }

  /** Records a state change and tells the listeners. */
  setState(sandbox: DaytonaSandbox, state: SandboxStateName, errorReason?: string): void {
    const old = sandbox.state;
    sandbox.state = state;
    if (errorReason !== undefined) sandbox.errorReason = errorReason;
    sandbox.updatedAt = Date.now();
    if (old !== state) for (const listener of this.listeners) listener('sandbox.state.updated', sandbox, old);
  }

  announceCreated(sandbox: DaytonaSandbox): void {
    for (const listener of this.listeners) listener('sandbox.created', sandbox);
  }

  /** Counts activity (the auto-stop clock restarts), as every toolbox call does on Daytona. */
  touch(sandbox: DaytonaSandbox): void {
    sandbox.lastActivityAt = Date.now();
    this.armIdleTimers(sandbox);
  }

  /** (Re)arms auto-stop / auto-pause while started, auto-archive and auto-delete while stopped, and the TTL. */
  armIdleTimers(sandbox: DaytonaSandbox): void {
    const arm = (key: string, minutes: number, run: () => Promise<unknown>) => {
      clearTimeout(sandbox.timers.get(key));
      sandbox.timers.delete(key);
      if (minutes <= 0) return;
      const timer = setTimeout(() => void run().catch(() => undefined), minutes * 60_000);
      timer.unref();
      sandbox.timers.set(key, timer);
    };
    const started = sandbox.state === 'started';
    const stopped = sandbox.state === 'stopped';
    arm('autostop', started ? sandbox.autoStopInterval : 0, () => this.stop(sandbox));
    arm('autopause', started ? sandbox.autoPauseInterval : 0, () => this.pause(sandbox));
    arm('autoarchive', stopped ? sandbox.autoArchiveInterval : 0, () => this.archive(sandbox));
    arm('autodelete', stopped ? sandbox.autoDeleteInterval : 0, () => this.destroy(sandbox));
    clearTimeout(sandbox.timers.get('ttl'));
    if (sandbox.autoDestroyAt !== undefined && sandbox.state !== 'destroyed') {
      const timer = setTimeout(() => void this.destroy(sandbox).catch(() => undefined), Math.max(0, sandbox.autoDestroyAt - Date.now()));
      timer.unref();
      sandbox.timers.set('ttl', timer);
    }
  }

  /** Runs one lifecycle change after the ones before it. */
  serialise<T>(sandbox: DaytonaSandbox, change: () => Promise<T>): Promise<T> {
    const next = sandbox.lifecycle.then(change, change);
    sandbox.lifecycle = next.catch(() => undefined);
    return next;
  }

  /** The network policy of the local sandbox for Daytona's three settings. */
  static networkPolicy(settings: {
    networkBlockAll: boolean;
    networkAllowList: string | undefined;
    domainAllowList: string | undefined;
  }): NetworkPolicy {
    const cidrs = (settings.networkAllowList ?? '')
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean);
    const domains = (settings.domainAllowList ?? '')
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean);
    if (settings.networkBlockAll) return 'block';
    if (cidrs.length === 0 && domains.length === 0) return 'allow';
    return { allowCidrs: cidrs, allowDomains: domains };
  }

  /** Creates the local sandbox of a Daytona sandbox from its current image. */
  async launch(sandbox: DaytonaSandbox): Promise<LocalSandbox> {
    const local = await this.provider.create({
      ...sandbox.localOptions,
      image: sandbox.image.image,
      network: DaytonaState.networkPolicy(sandbox),
    });
    sandbox.local = local;
    // A local sandbox that ends on its own (killed, out of memory) leaves the Daytona sandbox in error.
    void local.wait().then(() => {
      if (sandbox.local === local && (sandbox.state === 'started' || sandbox.state === 'paused')) {
        sandbox.local = undefined;
        this.setState(sandbox, 'error', 'the sandbox stopped unexpectedly');
      }
    });
    return local;
  }

  /** Stops a started (or paused) sandbox: its filesystem kept as a snapshot, its processes ended. */
  stop(sandbox: DaytonaSandbox): Promise<void> {
    return this.serialise(sandbox, async () => {
      if (sandbox.state === 'stopped' || sandbox.state === 'archived') return;
      if (sandbox.state !== 'started' && sandbox.state !== 'paused' && sandbox.state !== 'error') {
        throw new HttpError(400, `Sandbox ${sandbox.id} cannot be stopped in state ${sandbox.state}`);
      }
      const local = sandbox.local;
      const wasPaused = sandbox.state === 'paused';
      this.setState(sandbox, 'stopping');
      if (local) {
        if (wasPaused) await local.resume().catch(() => undefined);
        const kept: SandboxSnapshotRef | undefined = await local.snapshot().catch(() => undefined);
        if (kept) sandbox.image = { ...sandbox.image, image: kept };
        sandbox.local = undefined;
        await local.terminate().catch(() => undefined);
      }
      for (const stopped of this.stopHooks) await stopped(sandbox);
      this.setState(sandbox, 'stopped');
      // Ephemeral sandboxes (auto-delete 0) go as soon as they stop.
      if (sandbox.autoDeleteInterval === 0) {
        await this.destroyNow(sandbox);
        return;
      }
      this.armIdleTimers(sandbox);
    });
  }

  /** Runs when a sandbox's processes end (stop, delete): sessions and PTYs forget theirs. */
  readonly stopHooks = new Set<(sandbox: DaytonaSandbox) => Promise<void> | void>();

  /** Starts a stopped or archived sandbox, or resumes a paused one. Idempotent on a started one. */
  start(sandbox: DaytonaSandbox): Promise<void> {
    return this.serialise(sandbox, async () => {
      if (sandbox.state === 'started') return;
      if (sandbox.state === 'paused' && sandbox.local) {
        this.setState(sandbox, 'starting');
        await sandbox.local.resume();
        this.setState(sandbox, 'started');
        this.touch(sandbox);
        return;
      }
      if (sandbox.state !== 'stopped' && sandbox.state !== 'archived' && sandbox.state !== 'error') {
        throw new HttpError(400, `Sandbox ${sandbox.id} cannot be started in state ${sandbox.state}`);
      }
      this.setState(sandbox, 'starting');
      try {
        await this.launch(sandbox);
      } catch (error) {
        this.setState(sandbox, 'error', error instanceof Error ? error.message : String(error));
        throw error;
      }
      this.setState(sandbox, 'started');
      this.touch(sandbox);
    });
  }

  /** Pauses a started sandbox: its processes frozen, memory kept. */
  pause(sandbox: DaytonaSandbox): Promise<void> {
    return this.serialise(sandbox, async () => {
      if (sandbox.state === 'paused') return;
      if (sandbox.state !== 'started' || !sandbox.local) {
        throw new HttpError(400, `Sandbox ${sandbox.id} cannot be paused in state ${sandbox.state}`);
      }
      this.setState(sandbox, 'pausing');
      try {
        await sandbox.local.pause();
      } catch (error) {
        this.setState(sandbox, 'started');
        throw new HttpError(400, `Sandbox ${sandbox.id} cannot be paused here: ${error instanceof Error ? error.message : String(error)}`);
      }
      this.setState(sandbox, 'paused');
      this.armIdleTimers(sandbox);
    });
  }

  /** Archives a stopped sandbox (the emulator keeps its snapshot where it was). */
  archive(sandbox: DaytonaSandbox): Promise<void> {
    return this.serialise(sandbox, async () => {
      if (sandbox.state === 'archived') return;
      if (sandbox.state !== 'stopped') throw new HttpError(400, `Sandbox ${sandbox.id} is not stopped (state: ${sandbox.state})`);
      this.setState(sandbox, 'archiving');
      this.setState(sandbox, 'archived');
      this.armIdleTimers(sandbox);
    });
  }

  /** Deletes a sandbox in any state. Idempotent. */
  destroy(sandbox: DaytonaSandbox): Promise<void> {
    return this.serialise(sandbox, () => this.destroyNow(sandbox));
  }

  private async destroyNow(sandbox: DaytonaSandbox): Promise<void> {
    if (sandbox.state === 'destroyed') return;
    this.setState(sandbox, 'destroying');
    const local = sandbox.local;
    sandbox.local = undefined;
    if (local) await local.terminate().catch(() => undefined);
    for (const stopped of this.stopHooks) await stopped(sandbox);
    for (const timer of sandbox.timers.values()) clearTimeout(timer);
    sandbox.timers.clear();
    this.setState(sandbox, 'destroyed');
  }

  /** The host directory of a volume, made on first use. */
  volumeDirectory(volume: DaytonaVolumeRecord, subpath?: string): string {
    const directory = subpath ? join(volume.directory, subpath.replace(/^\/+/, '')) : volume.directory;
    mkdirSync(directory, { recursive: true });
    // The sandbox writes as its own host uid, whichever the provider was given.
    chmodSync(volume.directory, 0o777);
    if (directory !== volume.directory) chmodSync(directory, 0o777);
    return directory;
  }

  /** Terminates every local sandbox. */
  async closeAll(): Promise<void> {
    await Promise.all(
      [...this.sandboxes.values()].map(async (sandbox) => {
        for (const timer of sandbox.timers.values()) clearTimeout(timer);
        const local = sandbox.local;
        sandbox.local = undefined;
        await local?.terminate().catch(() => undefined);
      }),
    );
  }
}
