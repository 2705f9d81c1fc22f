import { randomBytes } from 'node:crypto';
import { access, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SandboxEmitter,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxRegistry,
  announceCreated,
  checkStringArgument,
  createSandboxOptionsSchema,
  listSandboxesOptionsSchema,
  parseOptions,
  signalOptionsSchema,
  egressProxyPort,
  listenInNamespace,
  startEgressProxy,
  type CreateSandboxOptions,
  type EgressNetwork,
  type EgressProxy,
  type ListSandboxesOptions,
  type SandboxHostRoute,
  type SandboxInfo,
  type SandboxProvider,
  type SandboxSnapshotRef,
  type SignalOptions,
} from '../../src/kit/index.js';
import { bwrapStage, probedHostPaths } from './local-bwrap.js';
import { SandboxCgroups } from './local-cgroups.js';
import { mapLocalError } from './local-errors.js';
import { createLocalImages } from './local-images.js';
import { startLauncher, type Launcher } from './local-launcher.js';
import {
  checkVolumeSources,
  localCapabilities,
  planLocalCreate,
  type LocalAllowlist,
  type LocalSandboxProviderOptions,
  type LocalSettings,
} from './local-options.js';
import { createLocalSandbox, type LocalSandbox, type LocalSandboxControl } from './local-sandbox.js';
import { makeSandboxDir, prepareStateDir, removeSandboxDir, sweepDue, sweepStale } from './local-state.js';
import { probeLocalSystem, type LocalSystem } from './local-system.js';
import { openTunnels, type LocalTunnels } from './local-tunnels.js';

const provider = 'local';

/**
 * The embedded default provider: one bubblewrap sandbox per `create`, on this Linux host, with
 * no account and no download. See the README's "Local provider" section for what it isolates.
 */
export interface LocalSandboxProvider extends SandboxProvider {
  /** Host uid the sandbox's root maps to when the library runs as root. */
  readonly sandboxUid: number;
  create(options?: CreateSandboxOptions): Promise<LocalSandbox>;
  /**
   * Sandboxes of this process only (`capabilities.crossProcessLookup` is false). A sandbox never
   * outlives the process that created it (its launcher ends it when that process exits, however
   * it dies), which is also where an allowlisted sandbox's egress proxy runs: its policy holds
   * for the sandbox's whole life.
   */
  fromId(id: string, options?: SignalOptions): Promise<LocalSandbox>;
  fromName(name: string, options?: SignalOptions): Promise<LocalSandbox>;
  list(options?: ListSandboxesOptions): Promise<SandboxInfo[]>;
  /** Deletes a snapshot's files. Sandboxes already started from it are unaffected. Idempotent. */
  deleteSnapshot(snapshot: SandboxSnapshotRef, options?: SignalOptions): Promise<void>;
  /** A route to a host unix socket, through `providerOptions.local.hostForwards`. */
  openHostRoute(hostSocketPath: string, options: { readonly sandboxPort: number }): SandboxHostRoute;
  /**
   * Removes what sandboxes of crashed processes left in this provider's state directory and
   * cgroups (a create does the same at most every 30 s). Sandboxes of running processes are
   * never touched. Idempotent; never throws for what it cannot remove.
   */
  cleanup(options?: SignalOptions): Promise<void>;
}

/** One registry per process, shared by every copy of the library (ESM and CJS both loaded). */
interface SharedState {
  registry: SandboxRegistry<LocalSandboxControl>;
  /** Ids of creates in progress: their directories are not stale. */
  creating: Set<string>;
}
const sharedKey = Symbol.for('sandport.local.registry.v1');
const shared: SharedState = ((globalThis as Record<symbol, SharedState | undefined>)[sharedKey] ??= {
  registry: new SandboxRegistry<LocalSandboxControl>(provider),
  creating: new Set<string>(),
});
const isOurs = (sandboxId: string) => shared.creating.has(sandboxId) || shared.registry.get(sandboxId) !== undefined;

/** Creates the local provider. Construction does no I/O; the host is probed on first `create`. */
export function createLocalSandboxProvider(options: LocalSandboxProviderOptions = {}): LocalSandboxProvider {
  const sandboxUid = options.sandboxUid ?? 65534;
  if (!Number.isInteger(sandboxUid) || sandboxUid <= 0) {
    throw new SandboxInvalidArgumentError({ message: 'sandboxUid must be a positive integer (never 0)', argument: 'sandboxUid', provider });
  }
  const settings: LocalSettings = {
    stateDir: options.stateDir ?? join(tmpdir(), `sandport-${process.getuid?.() ?? 'user'}`),
    sandboxUid,
    defaultPidsLimit: options.defaultPidsLimit ?? 1024,
  };
  const { egressNetwork } = options;
  const events = new SandboxEmitter();
  const images = createLocalImages(settings);
  const running = (control: LocalSandboxControl | undefined) => (control?.isRunning() ? control : undefined);
  return {
    specificationVersion: 'sandbox-v1',
    id: provider,
    capabilities: localCapabilities,
    events,
    sandboxUid,
    create: (createOptions = {}) => create(createOptions, settings, events, images, egressNetwork),
    async fromId(id, lookup = {}) {
      checkStringArgument(id, 'id', provider);
      parseOptions(signalOptionsSchema, lookup, { provider, what: 'fromId options' }).signal?.throwIfAborted();
      const found = running(shared.registry.get(id));
      if (!found)
        throw new SandboxNotFoundError({
          message: `No running local sandbox with id ${id.slice(0, 100)} in this process`,
          sandboxId: id,
          provider,
        });
      return found.sandbox;
    },
    async fromName(name, lookup = {}) {
      checkStringArgument(name, 'name', provider);
      parseOptions(signalOptionsSchema, lookup, { provider, what: 'fromName options' }).signal?.throwIfAborted();
      const found = running(shared.registry.byName(name));
      if (!found) throw new SandboxNotFoundError({ message: `No running local sandbox named "${name}" in this process`, name, provider });
      return found.sandbox;
    },
    async list(listOptions = {}) {
      const parsed = parseOptions(listSandboxesOptionsSchema, listOptions, { provider, what: 'list options' });
      parsed.signal?.throwIfAborted();
      return shared.registry
        .list(parsed.tags)
        .filter((control) => control.isRunning())
        .map((control) => ({ id: control.id, name: control.name, tags: control.tags(), createdAt: control.sandbox.createdAt }));
    },
    async deleteSnapshot(snapshot, deleteOptions = {}) {
      parseOptions(signalOptionsSchema, deleteOptions, { provider, what: 'deleteSnapshot options' }).signal?.throwIfAborted();
      if (snapshot?.provider !== provider) {
        throw new SandboxInvalidArgumentError({
          message: `Not a local snapshot: ${JSON.stringify(snapshot?.provider)}`,
          argument: 'snapshot',
          provider,
        });
      }
      await images.deleteSnapshot(snapshot.id);
    },
    openHostRoute(hostSocketPath, { sandboxPort }) {
      if (typeof hostSocketPath !== 'string' || !hostSocketPath.startsWith('/') || /[\s\0:]/.test(hostSocketPath)) {
        throw new SandboxInvalidArgumentError({
          message: 'hostSocketPath must be an absolute path without whitespace, ":" or NUL',
          argument: 'hostSocketPath',
          provider,
        });
      }
      if (!Number.isInteger(sandboxPort) || sandboxPort < 1 || sandboxPort > 65535) {
        throw new SandboxInvalidArgumentError({
          message: 'sandboxPort must be an integer from 1 to 65535',
          argument: 'sandboxPort',
          provider,
        });
      }
      return {
        createOptions: { providerOptions: { local: { hostForwards: { [sandboxPort]: hostSocketPath } } } },
        sandboxUrl: `http://127.0.0.1:${sandboxPort}`,
      };
    },
    async cleanup(cleanupOptions = {}) {
      parseOptions(signalOptionsSchema, cleanupOptions, { provider, what: 'cleanup options' }).signal?.throwIfAborted();
      const system = await probeLocalSystem();
      await sweepStale(settings.stateDir, system, isOurs);
    },
  };
}

/** What a create made so far, released in reverse when it fails. */
interface Made {
  dir?: string;
  cgroups?: SandboxCgroups;
  egress?: EgressProxy;
  launcher?: Launcher;
  tunnels?: LocalTunnels;
  control?: LocalSandboxControl;
}

async function create(
  options: CreateSandboxOptions,
  settings: LocalSettings,
  events: SandboxEmitter,
  images: ReturnType<typeof createLocalImages>,
  egressNetwork: EgressNetwork | undefined,
): Promise<LocalSandbox> {
  const startedAt = Date.now();
  const parsed = parseOptions(createSandboxOptionsSchema, options, { provider, what: 'create options' });
  const { signal } = parsed;
  signal?.throwIfAborted();
  const system = await probeLocalSystem();
  const plan = planLocalCreate(parsed, localCapabilities, system, settings);
  signal?.throwIfAborted();
  const releaseName = shared.registry.reserveName(plan.name);
  const id = `sb-${randomBytes(6).toString('hex')}`;
  shared.creating.add(id);
  const made: Made = {};
  // An abort between two steps stops the create there; `catch` releases what was made.
  const checkpoint = () => signal?.throwIfAborted();
  try {
    await checkVolumeSources(plan.volumes, system, settings.sandboxUid);
    await prepareStateDir(settings.stateDir);
    if (sweepDue(settings.stateDir)) await sweepStale(settings.stateDir, system, isOurs).catch(() => undefined);
    checkpoint();
    const dir = join(settings.stateDir, id);
    made.dir = dir;
    await makeSandboxDir(dir, { isRoot: system.isRoot, sandboxUid: settings.sandboxUid });
    const base = await images.prepare(plan.image, join(dir, 'layer'), system);
    checkpoint();
    if (system.cgroups && plan.limits) made.cgroups = await SandboxCgroups.create(system.cgroups, id, plan.limits);
    checkpoint();
    const stage = bwrapStage({
      binaries: system.binaries,
      isRoot: system.isRoot,
      sandboxUid: settings.sandboxUid,
      dir,
      base,
      hostRootSymlinks: system.hostRootSymlinks,
      presentHostPaths: await presentPaths(probedHostPaths),
      networked: plan.networked,
      workdir: plan.workdir,
      volumes: plan.volumes,
    });
    const { cgroups } = made;
    made.launcher = await startLauncher(
      {
        stage,
        dir,
        cgroups,
        system,
        sandboxUid: settings.sandboxUid,
        networked: plan.networked,
        ports: plan.ports,
        forwards: plan.forwards,
        path: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      },
      signal,
    );
    if (plan.allowlist) {
      made.egress = await startSandboxEgress({
        id,
        childPid: made.launcher.childPid,
        policy: plan.allowlist,
        events,
        network: egressNetwork,
        settings,
        system,
        signal,
      });
      checkpoint();
    }
    const { egress } = made;
    made.tunnels = await openTunnels(plan.ports, dir);
    checkpoint();
    const control = createLocalSandbox({
      id,
      name: plan.name,
      tags: plan.tags,
      dir,
      launcher: made.launcher,
      cgroups,
      system,
      env: plan.env,
      workdir: plan.workdir,
      tunnels: made.tunnels,
      network: parsed.network ?? 'allow',
      egress,
      timeoutMs: plan.timeoutMs,
      idleTimeoutMs: plan.idleTimeoutMs,
      warnings: plan.warnings,
      events,
      takeSnapshot: (snapshotSignal) => images.snapshot(join(dir, 'layer'), base, id, system, snapshotSignal),
      release: () => release(dir, cgroups),
      onEnd: () => shared.registry.remove(control),
    });
    made.control = control;
    shared.registry.add(control);
    announceCreated(events, { provider, sandboxId: id, name: plan.name, startedAt, warnings: plan.warnings });
    if (plan.entrypoint) await control.startEntrypoint(plan.entrypoint, parsed.command!, signal);
    // Checked last, synchronously before resolving: once the signal fired, the create rejects.
    checkpoint();
    return control.sandbox;
  } catch (error) {
    releaseName();
    await releaseMade(made);
    if (signal?.aborted) throw signal.reason;
    throw mapLocalError(error, 'Could not create the sandbox');
  } finally {
    shared.creating.delete(id);
  }
}

async function releaseMade(made: Made): Promise<void> {
  if (made.control) return made.control.end();
  await made.tunnels?.close().catch(() => undefined);
  await made.launcher?.stop().catch(() => undefined);
  await made.egress?.close().catch(() => undefined);
  if (made.dir) await release(made.dir, made.cgroups);
}

/**
 * The egress proxy of an allowlisted sandbox, in this process, accepting on a listener made in
 * the sandbox's network namespace at 127.0.0.1:3128 (`listenInNamespace`): no bridge process
 * between the sandbox and the proxy. The helper that makes it enters the namespace the way the
 * launcher's bridges do (as the sandbox's uid when root; who owns a listening socket does not
 * matter to a client on the sandbox's loopback) and exits once the listener is handed over. The
 * listener keeps the namespace alive until the proxy closes, which the teardown does after the
 * launcher; it dies with this process, so the sandbox's egress fails closed.
 */
async function startSandboxEgress(inputs: {
  id: string;
  childPid: number;
  policy: LocalAllowlist;
  events: SandboxEmitter;
  network: EgressNetwork | undefined;
  settings: LocalSettings;
  system: LocalSystem;
  signal: AbortSignal | undefined;
}): Promise<EgressProxy> {
  const { binaries, isRoot } = inputs.system;
  const uid = inputs.settings.sandboxUid;
  const handle = await listenInNamespace({
    provider,
    enter: [
      binaries.nsenter,
      '-t',
      String(inputs.childPid),
      // Root may join the network namespace alone; anyone else enters its user namespace first.
      ...(isRoot ? ['-n'] : ['-U', '--preserve-credentials', '-n']),
      '--',
      binaries.setpriv,
      ...(isRoot ? [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'] : []),
      '--pdeathsig',
      'KILL',
      '--',
    ],
    port: egressProxyPort,
    namespace: await readlink(`/proc/${inputs.childPid}/ns/net`).catch(() => undefined),
    signal: inputs.signal,
  });
  return startEgressProxy({
    provider,
    sandboxId: inputs.id,
    policy: inputs.policy,
    listen: { handle },
    events: inputs.events,
    ...(inputs.network ? { network: inputs.network } : {}),
  });
}

/** The creator's backstop after the launcher: nothing of the sandbox stays on the host. */
async function release(dir: string, cgroups: SandboxCgroups | undefined): Promise<void> {
  await cgroups?.destroy().catch(() => false);
  await removeSandboxDir(dir);
}

async function presentPaths(paths: readonly string[]): Promise<Set<string>> {
  const present = await Promise.all(
    paths.map((path) =>
      access(path).then(
        () => path,
        () => undefined,
      ),
    ),
  );
  return new Set(present.filter((path): path is string => path !== undefined));
}
