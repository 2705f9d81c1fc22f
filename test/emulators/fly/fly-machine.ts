/**
 * One Fly machine and its lifecycle over the local provider.
 *
 * A machine outlives its runs: each start (create, start of a stopped machine, restart, update)
 * is a fresh local sandbox, so a stopped machine starts clean as on Fly; only mounted volumes (host
 * directories) carry files across runs and machines. The machine's init process is an exec in
 * that sandbox that the emulator holds (`init.exec`, else `init.entrypoint` + `init.cmd`, else the
 * image's default, which in the emulator is `sleep infinity`). When it exits on its own the run
 * ends: the restart policy may start a new run; otherwise the machine is `stopped`, or destroyed
 * with `auto_destroy: true`. A stop asked for through the API ends in `stopped` whatever
 * `auto_destroy` says.
 *
 * Suspend freezes the run (the local provider's pause: every process keeps its memory); start
 * thaws it. Transitions of one machine run one at a time; each API call sets the transitional
 * state (`starting`, `stopping`, `suspending`, `destroying`) at once and answers, and the work
 * finishes in the background, as Fly's API answers before the machine got there (`wait` is how a
 * client learns it did).
 */
import { constants as osConstants } from 'node:os';
import { localMaxTimeoutMs, type LocalSandbox, type LocalSandboxProvider } from '../../../adapters/local/index.js';
import { isSandboxSignal, type SandboxProcess, type SandboxSignal } from '../../../src/kit/index.js';
import { initArgv, parseDurationSeconds, restartPolicy, type MachineConfig } from './fly-config.js';
import { flyTime, newInstanceId, newMachineId, newPrivateIp } from './fly-ids.js';

export type MachineState =
  | 'created'
  | 'starting'
  | 'started'
  | 'stopping'
  | 'stopped'
  | 'suspending'
  | 'suspended'
  | 'restarting'
  | 'replacing'
  | 'destroying'
  | 'destroyed'
  | 'failed';

/** One entry of `events`. */
export interface MachineEvent {
  id: string;
  type: string;
  status: string;
  source: 'user' | 'flyd';
  timestamp: number;
  request?: Record<string, unknown>;
}

export interface MachineLease {
  nonce: string;
  /** Unix seconds. */
  expiresAt: number;
  owner: string;
  description: string;
  version: string;
}

/** One run: the local sandbox of the current start and its init process. */
interface MachineRun {
  local: LocalSandbox;
  init: SandboxProcess | undefined;
  /** Set once a stop, update or destroy takes the run down: its exit is then not the machine's own. */
  stopping: boolean;
  paused: boolean;
}

/** How a run's init process ended. */
interface InitExit {
  code: number;
  signal: number | undefined;
  oomKilled: boolean;
}

/** What a machine needs from the emulator around it. */
export interface MachineHost {
  readonly provider: LocalSandboxProvider;
  /** The local image for a Fly image reference (`'host'` unless mapped). */
  imageFor(image: string): string;
  /** Host directories of the mounted volumes, keyed by the path in the machine. */
  volumeMounts(machine: FlyMachine): Record<string, string>;
  /** Read-only host directories that stand for what an image's build put in it (`imageMounts`), keyed by the path in the machine. */
  imageVolumes(image: string): Record<string, { source: string; readOnly: true }>;
  /** The machines' outbound network (`testInternet`: an allowlist of its names), else the local provider's open one. */
  readonly network: { allowDomains: string[] } | undefined;
  /** Called once the machine is destroyed (volumes detach, names free up). */
  destroyed(machine: FlyMachine): void;
  /** The argv the image's default command stands for. */
  readonly defaultCommand: readonly string[];
  /** True once the emulator closes: no run starts any more. */
  readonly closed: boolean;
}

const maxEvents = 30;
/** Fly's default grace before SIGKILL on stop (`kill_timeout`), seconds. */
export const defaultStopTimeoutSeconds = 5;

/** A signal given as Fly does (a name, `SIGTERM`, or a number, `9`) as a local signal name. */
export function signalName(value: unknown): SandboxSignal | undefined {
  if (typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value))) {
    const number = Number(value);
    const found = Object.entries(osConstants.signals).find(([, n]) => n === number)?.[0];
    return found && isSandboxSignal(found) ? found : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const name = value.toUpperCase().startsWith('SIG') ? value.toUpperCase() : `SIG${value.toUpperCase()}`;
  return isSandboxSignal(name) ? name : undefined;
}

function delay(ms: number): { promise: Promise<'timeout'>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  return { promise, cancel: () => clearTimeout(timer) };
}

export class FlyMachine {
  readonly id = newMachineId();
  readonly createdAt = Date.now();
  readonly privateIp = newPrivateIp();
  updatedAt = this.createdAt;
  state: MachineState = 'created';
  instanceId = newInstanceId();
  events: MachineEvent[] = [];
  lease: MachineLease | undefined;
  /** Why the last launch failed (state `failed`). */
  failure: string | undefined;
  private run: MachineRun | undefined;
  private restartCount = 0;
  private queue: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<() => void>();
  private eventCounter = 0;

  constructor(
    private readonly host: MachineHost,
    readonly app: string,
    readonly name: string,
    readonly region: string,
    public config: MachineConfig,
  ) {
    this.event('launch', 'created', 'user');
  }

  /** The running local sandbox (state `started`), for exec and the edge; undefined otherwise. */
  get sandbox(): LocalSandbox | undefined {
    return this.state === 'started' && this.run && !this.run.paused ? this.run.local : undefined;
  }

  get destroyed(): boolean {
    return this.state === 'destroyed';
  }

  /** Calls `listener` on every state change until the returned function is called. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private setState(state: MachineState): void {
    this.state = state;
    this.updatedAt = Date.now();
    for (const listener of [...this.listeners]) listener();
  }

  event(type: string, status: string, source: 'user' | 'flyd', request?: Record<string, unknown>): void {
    const id = `${this.instanceId.slice(0, 10)}${String(++this.eventCounter).padStart(16, '0')}`;
    this.events.unshift({ id, type, status, source, timestamp: Date.now(), ...(request ? { request } : {}) });
    this.events.length = Math.min(this.events.length, maxEvents);
  }

  /** Runs `work` after every earlier transition of this machine; errors are logged, not thrown. */
  private enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(work).catch((error: unknown) => {
      console.error(`[fly emulator] machine ${this.id}:`, error);
    });
    this.queue = next;
    return next;
  }

  // ---- the API's transitions (each sets the transitional state at once) -------------------

  /** Boots a created or stopped machine. */
  start(source: 'user' | 'flyd' = 'user'): Promise<void> {
    if (this.state === 'suspended') return this.resume();
    this.setState('starting');
    return this.enqueue(() => this.boot(source));
  }

  /** Thaws a suspended machine. */
  private resume(): Promise<void> {
    this.setState('starting');
    return this.enqueue(async () => {
      const run = this.run;
      if (!run) return this.boot('user');
      await run.local.resume();
      run.paused = false;
      this.event('start', 'started', 'user');
      this.setState('started');
    });
  }

  /** Stops the run: `signal` to init, SIGKILL after `timeoutSeconds`, then the sandbox goes. */
  stop(options: { signal?: SandboxSignal; timeoutSeconds?: number } = {}): Promise<void> {
    this.setState('stopping');
    return this.enqueue(async () => {
      await this.takeDown(options);
      this.event('stop', 'stopped', 'user');
      this.setState('stopped');
    });
  }

  /** Freezes the run; a start thaws it. Without a freezer it stops instead, as Fly falls back to. */
  suspend(): Promise<void> {
    this.setState('suspending');
    return this.enqueue(async () => {
      const run = this.run;
      if (!run) return this.setState('stopped');
      try {
        await run.local.pause();
        run.paused = true;
        this.event('suspend', 'suspended', 'user');
        this.setState('suspended');
      } catch {
        await this.takeDown({});
        this.event('stop', 'stopped', 'flyd');
        this.setState('stopped');
      }
    });
  }

  /** Stops and starts again (the same version). */
  restart(options: { signal?: SandboxSignal; timeoutSeconds?: number } = {}): Promise<void> {
    this.setState('restarting');
    return this.enqueue(async () => {
      await this.takeDown(options);
      this.event('restart', 'stopped', 'user');
      await this.boot('user');
    });
  }

  /** A new version: a new config and `instance_id`; a running machine reboots on it. */
  update(config: MachineConfig, skipLaunch: boolean): Promise<void> {
    const previous = this.state;
    const wasRunning = this.run !== undefined || ['starting', 'started', 'restarting', 'replacing'].includes(previous);
    this.config = config;
    this.instanceId = newInstanceId();
    this.event('update', 'replacing', 'user');
    if (wasRunning) this.setState('replacing');
    return this.enqueue(async () => {
      if (this.run) await this.takeDown(this.stopConfig());
      if (skipLaunch) {
        this.setState(wasRunning || previous === 'failed' ? 'stopped' : previous);
        return;
      }
      this.setState('starting');
      await this.boot('user');
    });
  }

  /** Sends a signal to the init process (the machine's main process). */
  async signal(signal: SandboxSignal): Promise<void> {
    await this.run?.init?.kill(signal);
  }

  /** Destroys the machine (the caller checked that it may). */
  destroy(source: 'user' | 'flyd' = 'user'): Promise<void> {
    if (this.state === 'destroyed') return Promise.resolve();
    if (this.state === 'destroying') return this.queue;
    this.setState('destroying');
    return this.enqueue(() => this.finishDestroy(source));
  }

  /** Ends the run at once, for the emulator's close. */
  async kill(): Promise<void> {
    const run = this.run;
    if (!run) return;
    run.stopping = true;
    await run.local.terminate().catch(() => undefined);
  }

  // ---- the work ----------------------------------------------------------------------------

  private stopConfig(): { signal?: SandboxSignal; timeoutSeconds?: number } {
    const signal = signalName(this.config.stop_config?.signal);
    const timeoutSeconds = parseDurationSeconds(this.config.stop_config?.timeout);
    return { ...(signal ? { signal } : {}), ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}) };
  }

  private async finishDestroy(source: 'user' | 'flyd'): Promise<void> {
    if (this.run) await this.takeDown({ signal: 'SIGKILL', timeoutSeconds: 0 });
    this.lease = undefined;
    this.event('destroy', 'destroyed', source);
    this.setState('destroyed');
    this.host.destroyed(this);
  }

  /** Ends the current run (if any) as a stop asked for: its exit is not handled as the machine's own. */
  private async takeDown(options: { signal?: SandboxSignal; timeoutSeconds?: number }): Promise<void> {
    const run = this.run;
    if (!run) return;
    run.stopping = true;
    this.run = undefined;
    if (run.paused) {
      // A frozen run cannot take a signal; Fly throws the snapshot away on a stop of a suspended machine.
      await run.local.terminate().catch(() => undefined);
      return;
    }
    const init = run.init;
    if (init) {
      const fallback = this.stopConfig();
      const signal = options.signal ?? fallback.signal ?? 'SIGINT';
      const seconds = options.timeoutSeconds ?? fallback.timeoutSeconds ?? defaultStopTimeoutSeconds;
      await init.kill(signal).catch(() => undefined);
      const grace = delay(seconds * 1000);
      const outcome = await Promise.race([init.wait().catch(() => undefined), grace.promise]);
      grace.cancel();
      if (outcome === 'timeout') await init.kill('SIGKILL').catch(() => undefined);
    }
    await run.local.terminate().catch(() => undefined);
  }

  /** Starts a run: a fresh local sandbox and the init process in it. */
  private async boot(source: 'user' | 'flyd'): Promise<void> {
    if (this.host.closed) return;
    let local: LocalSandbox;
    try {
      local = await this.host.provider.create({
        image: this.host.imageFor(this.config.image),
        env: { ...this.config.env, ...this.flyEnv() },
        workdir: '/',
        timeoutMs: localMaxTimeoutMs,
        ...(this.config.guest?.cpus !== undefined ? { cpu: this.config.guest.cpus } : {}),
        ...(this.config.guest?.memory_mb !== undefined ? { memoryMiB: this.config.guest.memory_mb } : {}),
        volumes: { ...this.host.imageVolumes(this.config.image), ...this.host.volumeMounts(this) },
        ...(this.host.network ? { network: this.host.network } : {}),
      });
    } catch (error) {
      this.failure = error instanceof Error ? error.message : String(error);
      this.event('launch', 'failed', 'flyd', { error: this.failure });
      this.setState('failed');
      return;
    }
    if (this.host.closed) {
      // The emulator closed while this sandbox was being made: it must not outlive the close.
      await local.terminate().catch(() => undefined);
      return;
    }
    const run: MachineRun = { local, init: undefined, stopping: false, paused: false };
    this.run = run;
    const argv = initArgv(this.config);
    try {
      run.init = await local.exec(argv.length > 0 ? argv : [...this.host.defaultCommand], { cwd: '/' });
      // Fly keeps the init's output as logs; the emulator drains it so that it never stalls.
      void run.init.stdout.pipeTo(new WritableStream()).catch(() => undefined);
      void run.init.stderr.pipeTo(new WritableStream()).catch(() => undefined);
      void run.init.stdin.close().catch(() => undefined);
    } catch (error) {
      // A missing program: the init exits at once, as a real one would with 127.
      console.error(`[fly emulator] machine ${this.id}: init failed to start:`, error instanceof Error ? error.message : error);
      this.event('start', 'started', source);
      this.setState('started');
      // Not awaited: this runs inside the queue, which the exit handling waits behind.
      void this.enqueue(() => this.exited(run, { code: 127, signal: undefined, oomKilled: false }));
      return;
    }
    this.event('start', 'started', source);
    this.setState('started');
    this.watch(run);
  }

  /** Environment Fly's init sets in every machine. */
  private flyEnv(): Record<string, string> {
    return {
      FLY_APP_NAME: this.app,
      FLY_MACHINE_ID: this.id,
      FLY_ALLOC_ID: this.id,
      FLY_REGION: this.region,
      FLY_IMAGE_REF: this.config.image,
      FLY_MACHINE_VERSION: this.instanceId,
      FLY_PRIVATE_IP: this.privateIp,
    };
  }

  private watch(run: MachineRun): void {
    const init = run.init!;
    const byInit = init.wait().then(
      (status): InitExit => ({
        code: status.exitCode,
        signal: status.signal ? osConstants.signals[status.signal as NodeJS.Signals] : undefined,
        oomKilled: status.oomKilled === true,
      }),
      (): InitExit => ({ code: -1, signal: undefined, oomKilled: false }),
    );
    const bySandbox = run.local.wait().then((end): InitExit => ({ code: end.exitCode ?? -1, signal: undefined, oomKilled: false }));
    void Promise.race([byInit, bySandbox]).then((exit) => {
      if (run.stopping || this.run !== run) return;
      void this.enqueue(() => this.exited(run, exit));
    });
  }

  /** The init process of `run` exited on its own: restart, stop, or destroy. */
  private async exited(run: MachineRun, exit: InitExit): Promise<void> {
    if (run.stopping || this.run !== run) return;
    run.stopping = true;
    this.run = undefined;
    await run.local.terminate().catch(() => undefined);
    const { policy, maxRetries } = restartPolicy(this.config);
    const restarting = policy === 'always' || (policy === 'on-failure' && exit.code !== 0 && this.restartCount < maxRetries);
    this.event('exit', 'stopped', 'flyd', {
      exit_event: {
        exit_code: exit.code,
        guest_exit_code: exit.code,
        guest_signal: exit.signal ?? 0,
        signal: exit.signal ?? -1,
        oom_killed: exit.oomKilled,
        requested_stop: false,
        restarting,
        exited_at: new Date().toISOString(),
      },
      restart_count: this.restartCount,
    });
    if (restarting) {
      this.restartCount++;
      this.setState('starting');
      // A process that exits at once must not spin: Fly backs off between restarts too.
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * this.restartCount, 5000)));
      if (this.state !== 'starting') return;
      return this.boot('flyd');
    }
    if (this.config.auto_destroy) {
      this.setState('destroying');
      return this.finishDestroy('flyd');
    }
    this.setState('stopped');
  }

  // ---- views -------------------------------------------------------------------------------

  /** The machine as Fly's API shows it. */
  toJSON(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      id: this.id,
      name: this.name,
      state: this.state,
      region: this.region,
      image_ref: imageRef(this.config.image),
      instance_id: this.instanceId,
      version: this.instanceId,
      private_ip: this.privateIp,
      created_at: flyTime(this.createdAt),
      updated_at: flyTime(this.updatedAt),
      config: this.config,
      events: this.events,
      checks: [],
      host_status: 'ok',
      cordoned: false,
      ...extra,
    };
  }
}

/** `image_ref` from an image reference (`registry/repository:tag@digest`, Docker Hub by default). */
export function imageRef(image: string): Record<string, unknown> {
  let rest = image;
  let digest = '';
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  let tag = 'latest';
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const parts = rest.split('/');
  const hasRegistry = parts.length > 1 && /[.:]|^localhost$/.test(parts[0]!);
  const registry = hasRegistry ? parts.shift()! : 'registry-1.docker.io';
  if (!hasRegistry && parts.length === 1) parts.unshift('library');
  return { registry, repository: parts.join('/'), tag, digest, labels: {} };
}

/** When a lease has run out, it is as if there were none. */
export function activeLease(machine: FlyMachine, now = Date.now()): MachineLease | undefined {
  const lease = machine.lease;
  if (lease && lease.expiresAt * 1000 <= now) machine.lease = undefined;
  return machine.lease;
}

/** The start answer's `previous_state`. */
export function startAnswer(previous: MachineState): Record<string, unknown> {
  return { previous_state: previous, migrated: false, new_host: '' };
}

export { flyTime };
