import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { access, chmod, chown, mkdir, readFile, readdir, realpath, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  SandboxAlreadyExistsError,
  SandboxCapabilityUnsupportedError,
  SandboxEmitter,
  SandboxInvalidArgumentError,
  SandboxNotFoundError,
  SandboxProviderError,
  checkStringArgument,
  createSandboxOptionsSchema,
  listSandboxesOptionsSchema,
  parseOptions,
  type CreateSandboxOptions,
  type ListSandboxesOptions,
  type ParsedCreateSandboxOptions,
  type SandboxCapabilities,
  type SandboxInfo,
  type SandboxProvider,
  type SandboxSnapshotRef,
  type SandboxWarning,
  type SignalOptions,
} from '../../src/kit/index.js';
import { SandboxCgroups } from './local-cgroups.js';
import { mapLocalError } from './local-errors.js';
import { launcherScript } from './local-launcher.js';
import { LocalSandbox } from './local-sandbox.js';
import { probeLocalSystem, type LocalSystem } from './local-system.js';
import { z } from 'zod';

/**
 * `providerOptions.local` of `create`.
 * - `hostForwards`: `{ [sandboxPort]: hostUnixSocketPath }`. Inside the sandbox, 127.0.0.1:<port>
 *   accepts connections and forwards each to the host unix socket: one deliberately opened path
 *   from the sandbox to one host service (a credential proxy, say), with the host's network
 *   still unreachable. The socket must be connectable by the sandbox's host uid (`sandboxUid`
 *   when running as root: make it mode 0666 or owned by that uid).
 */
export const localCreateOptionsSchema = z
  .object({
    hostForwards: z
      .record(
        z.string().regex(/^\d+$/, { message: 'keys are sandbox port numbers' }).refine((port) => Number(port) >= 1 && Number(port) <= 65535, { message: 'ports are 1-65535' }),
        z.string().startsWith('/', { message: 'must be an absolute host socket path' }).refine((path) => !/[\s\0:]/.test(path), { message: 'must not contain whitespace, ":" or NUL' }),
      )
      .optional(),
  })
  .strict();
export type LocalCreateOptions = z.input<typeof localCreateOptionsSchema>;
import { openTunnel } from './local-tunnels.js';

export interface LocalSandboxProviderOptions {
  /**
   * Host directory for sandbox layers, snapshots and prepared images. Must not be shared with
   * untrusted users. @default `<os.tmpdir()>/sandport-<uid>`
   */
  stateDir?: string;
  /**
   * Host uid and gid that the sandbox's root user maps to when the library runs as root. Never 0:
   * mapping the sandbox to host root would let it read root-only host files through its binds.
   * @default 65534 (nobody)
   */
  sandboxUid?: number;
  /** Pids limit applied when `create` gives none and cgroups are available. @default 1024 */
  defaultPidsLimit?: number;
}

const defaultPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const defaultTimeoutMs = 5 * 60 * 1000;
const maxTimeoutMs = 24 * 60 * 60 * 1000;
/** Host secrets hidden from the host-view image even though /etc is visible. */
const maskedFiles = ['/etc/shadow', '/etc/shadow-', '/etc/gshadow', '/etc/gshadow-', '/etc/sudoers', '/etc/security/opasswd'];
const maskedDirs = ['/etc/ssh', '/etc/ssl/private', '/etc/sudoers.d'];

/** Sandboxes of this process, shared by every provider instance so that lookups see them all. */
const live = new Map<string, LocalSandbox>();
const reservedNames = new Set<string>();
const swept = new Set<string>();

export const localCapabilities: SandboxCapabilities = Object.freeze({
  isolation: 'namespaces',
  exec: { stdin: true, kill: true, signals: true, stdinEof: true, streaming: true, separateStderr: true },
  tunnels: true,
  tunnelsTls: false,
  snapshot: true,
  deleteSnapshot: true,
  hostRoutes: true,
  tags: true,
  fromName: true,
  list: true,
  crossProcessLookup: false,
  extendTimeout: true,
  network: { block: true, allowCidrs: false, allowDomains: false },
  limits: { cpu: true, memory: true, pids: true },
  timeouts: { lifetime: true, idle: true, maxLifetimeMs: maxTimeoutMs },
  volumes: 'host-path',
  gpu: false,
  images: { reference: true, build: false, snapshot: true },
} as const);

/**
 * The embedded default provider: one bubblewrap sandbox per `create`, on this Linux host, with
 * no account and no download. See the README's "Local provider" section for what it isolates.
 */
export class LocalSandboxProvider implements SandboxProvider {
  readonly specificationVersion = 'sandbox-v1' as const;
  readonly id = 'local';
  readonly capabilities = localCapabilities;
  readonly events = new SandboxEmitter();
  private readonly stateDir: string;
  private readonly defaultPidsLimit: number;
  private readonly preparedImages = new Map<string, Promise<string>>();
  /** Host uid the sandbox's root maps to when the library runs as root. */
  readonly sandboxUid: number;

  constructor(options: LocalSandboxProviderOptions = {}) {
    this.stateDir = options.stateDir ?? join(tmpdir(), `sandport-${process.getuid?.() ?? 'user'}`);
    this.sandboxUid = options.sandboxUid ?? 65534;
    if (!Number.isInteger(this.sandboxUid) || this.sandboxUid <= 0) {
      throw new SandboxInvalidArgumentError({ message: 'sandboxUid must be a positive integer (never 0)', argument: 'sandboxUid', provider: 'local' });
    }
    this.defaultPidsLimit = options.defaultPidsLimit ?? 1024;
  }

  async create(options: CreateSandboxOptions = {}): Promise<LocalSandbox> {
    const startedAt = performance.now();
    const parsed = parseOptions(createSandboxOptionsSchema, options, { provider: 'local', what: 'create options' });
    parsed.signal?.throwIfAborted();
    const warnings = this.checkOptions(parsed);
    const localOptions = parseOptions(localCreateOptionsSchema, parsed.providerOptions?.local, { provider: 'local', what: 'providerOptions.local' });
    const forwards = Object.entries(localOptions.hostForwards ?? {});
    const system = await probeLocalSystem();
    this.checkSystem(parsed, system);
    if (parsed.name !== undefined) {
      if (reservedNames.has(parsed.name)) {
        throw new SandboxAlreadyExistsError({ message: `A sandbox named "${parsed.name}" already exists`, provider: 'local' });
      }
      reservedNames.add(parsed.name);
    }
    const id = `sb-${randomBytes(6).toString('hex')}`;
    const dir = join(this.stateDir, id);
    let cgroups: SandboxCgroups | undefined;
    try {
      await this.prepareStateDir(system);
      await mkdir(dir, { mode: 0o711 });
      const plan = await this.prepareFilesystem(parsed, system, dir);
      if (system.cgroups) {
        cgroups = await SandboxCgroups.create(system.cgroups, id, {
          cpu: parsed.cpu,
          memoryMiB: parsed.memoryMiB,
          pidsLimit: parsed.pidsLimit ?? this.defaultPidsLimit,
        });
      }
      const network = parsed.network ?? 'allow';
      const ports = (parsed.ports ?? []).map((port) => (typeof port === 'number' ? port : port.port));
      const stage = await this.bwrapStage(parsed, system, dir, plan, network === 'allow');
      const launcher = spawn('/bin/sh', ['-c', launcherScript, 'sandport-launcher', ...stage], {
        env: {
          PATH: process.env.PATH ?? defaultPath,
          SBX_DIR: dir,
          SBX_CGROUPS: cgroups?.procsFiles('init').join(' ') ?? '',
          SBX_CGROUP_DIRS: cgroups?.cleanupDirs().join(' ') ?? '',
          SBX_FREEZERS: cgroups?.freezerStateFiles().join(' ') ?? '',
          SBX_SLIRP: network === 'allow' ? system.binaries.slirp4netns! : '',
          SBX_SLIRP_USERNS: system.isRoot ? '0' : '1',
          SBX_PORTS: ports.join(' '),
          SBX_FORWARDS: forwards.map(([port, path]) => `${port}:${path}`).join(' '),
          SBX_NSENTER: system.binaries.nsenter,
          SBX_SOCAT: system.binaries.socat ?? 'socat',
          // Root may join the network namespace alone; anyone else enters its user namespace first.
          SBX_BRIDGE_NAMESPACES: system.isRoot ? '-n' : '-U --preserve-credentials -n',
          SBX_BRIDGE_USER: system.isRoot
            ? `${system.binaries.setpriv} --reuid=${this.sandboxUid} --regid=${this.sandboxUid} --clear-groups --`
            : '',
        },
        stdio: ['pipe', 'ignore', 'pipe', 'pipe'],
      });
      const launcherDone = new Promise<void>((resolve) => launcher.once('exit', () => resolve()));
      let diagnostics = '';
      launcher.stderr!.setEncoding('utf8');
      launcher.stderr!.on('data', (chunk: string) => {
        diagnostics = (diagnostics + chunk).slice(-4000);
      });
      const childPid = await this.awaitReady(launcher, launcherDone, parsed.signal, () => diagnostics);
      const tunnels: Record<number, Awaited<ReturnType<typeof openTunnel>>> = {};
      for (const port of ports) tunnels[port] = await openTunnel(port, join(dir, 'ports', `${port}.sock`));
      const sandbox = new LocalSandbox({
        id,
        name: parsed.name,
        tags: parsed.tags ?? {},
        dir,
        childPid,
        launcher,
        launcherDone,
        cgroups,
        system,
        env: { PATH: defaultPath, HOME: '/root', ...parsed.env, ...parsed.secrets },
        workdir: plan.workdir,
        tunnels,
        timeoutMs: parsed.timeoutMs ?? defaultTimeoutMs,
        idleTimeoutMs: parsed.idleTimeoutMs,
        warnings,
        events: this.events,
        takeSnapshot: (target, snapshotOptions) => this.snapshot(target, plan.base, cgroups, snapshotOptions),
        onEnd: (ended) => {
          live.delete(ended.id);
          if (ended.name !== undefined) reservedNames.delete(ended.name);
        },
      });
      live.set(id, sandbox);
      for (const warning of warnings) this.events.emit('warning', { provider: 'local', sandboxId: id, warning });
      this.events.emit('sandbox-created', { provider: 'local', sandboxId: id, name: parsed.name, durationMs: performance.now() - startedAt });
      if (parsed.command !== undefined) await this.startEntrypoint(sandbox, parsed.command);
      return sandbox;
    } catch (error) {
      if (parsed.name !== undefined && !live.has(id)) reservedNames.delete(parsed.name);
      if (!live.has(id)) {
        await cgroups?.remove();
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      }
      if (parsed.signal?.aborted && error === parsed.signal.reason) throw error;
      throw mapLocalError(error, 'Could not create the sandbox');
    }
  }

  async fromId(id: string, options: SignalOptions = {}): Promise<LocalSandbox> {
    checkStringArgument(id, 'id', 'local');
    options.signal?.throwIfAborted();
    const sandbox = live.get(id);
    if (!sandbox) throw new SandboxNotFoundError({ message: `No running local sandbox with id ${id} in this process`, sandboxId: id, provider: 'local' });
    return sandbox;
  }

  async fromName(name: string, options: SignalOptions = {}): Promise<LocalSandbox> {
    checkStringArgument(name, 'name', 'local');
    options.signal?.throwIfAborted();
    for (const sandbox of live.values()) if (sandbox.name === name && sandbox.isRunning()) return sandbox;
    throw new SandboxNotFoundError({ message: `No running local sandbox named "${name}" in this process`, sandboxId: name, provider: 'local' });
  }

  async list(options: ListSandboxesOptions = {}): Promise<SandboxInfo[]> {
    const parsed = parseOptions(listSandboxesOptionsSchema, options, { provider: 'local', what: 'list options' });
    parsed.signal?.throwIfAborted();
    const wanted = Object.entries(parsed.tags ?? {});
    return [...live.values()]
      .filter((sandbox) => sandbox.isRunning())
      .map((sandbox) => ({ id: sandbox.id, name: sandbox.name, tags: sandbox.currentTags, createdAt: sandbox.createdAt }))
      .filter((info) => wanted.every(([key, value]) => info.tags[key] === value));
  }

  /** Deletes a snapshot's files. Sandboxes already started from it are unaffected. Idempotent. */
  async deleteSnapshot(snapshot: SandboxSnapshotRef, options: SignalOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    const base = join(this.stateDir, 'snapshots', safeSnapshotId(snapshot.id));
    await rm(`${base}.tar`, { force: true });
    await rm(`${base}.json`, { force: true });
  }

  private checkOptions(options: ParsedCreateSandboxOptions): SandboxWarning[] {
    if (options.gpu !== undefined) {
      throw new SandboxCapabilityUnsupportedError({ message: 'The local provider has no GPU support', capability: 'gpu', provider: 'local' });
    }
    if (typeof options.network === 'object') {
      throw new SandboxCapabilityUnsupportedError({
        message: 'The local provider cannot enforce a CIDR or domain allowlist; use network: "block" or "allow"',
        capability: 'network.allowlist',
        provider: 'local',
      });
    }
    if (options.timeoutMs !== undefined && options.timeoutMs > maxTimeoutMs) {
      throw new SandboxInvalidArgumentError({ message: `timeoutMs is at most ${maxTimeoutMs} (24 hours)`, argument: 'timeoutMs', provider: 'local' });
    }
    if (typeof options.image === 'object' && !('type' in options.image)) {
      throw new SandboxCapabilityUnsupportedError({
        message: 'The local provider does not build images; pass a root filesystem directory, "host", or a snapshot',
        capability: 'images.build',
        provider: 'local',
      });
    }
    if (typeof options.image === 'object' && options.image.provider !== 'local') {
      throw new SandboxInvalidArgumentError({ message: `A ${options.image.provider} snapshot cannot start a local sandbox`, argument: 'image', provider: 'local' });
    }
    if (typeof options.image === 'string' && options.image !== 'host' && !options.image.startsWith('/')) {
      throw new SandboxInvalidArgumentError({
        message: 'The local provider takes "host" or an absolute path to a root filesystem directory as image',
        argument: 'image',
        provider: 'local',
      });
    }
    const warnings: SandboxWarning[] = [];
    for (const port of options.ports ?? []) {
      if (typeof port === 'object' && port.encrypted) {
        warnings.push({ type: 'unsupported-setting', setting: 'ports.encrypted', details: 'local tunnels are plain http on 127.0.0.1' });
      }
    }
    return warnings;
  }

  private checkSystem(options: ParsedCreateSandboxOptions, system: LocalSystem): void {
    const limits = (['cpu', 'memoryMiB', 'pidsLimit'] as const).filter((name) => options[name] !== undefined);
    if (limits.length > 0 && !system.cgroups) {
      throw new SandboxCapabilityUnsupportedError({
        message:
          `Cannot enforce ${limits.join(', ')}: no writable cgroup hierarchy ` +
          (system.isRoot ? 'was found on this host.' : '(the library is not running as root). Run as root, or create the sandbox without limits.'),
        capability: 'limits',
        provider: 'local',
      });
    }
    if ((options.network ?? 'allow') === 'allow' && !system.binaries.slirp4netns) {
      throw new SandboxCapabilityUnsupportedError({
        message: 'Outbound network needs slirp4netns (apt-get install slirp4netns); or pass network: "block".',
        capability: 'network',
        provider: 'local',
      });
    }
    if ((options.network ?? 'allow') === 'allow' && !system.isRoot && !system.tunUsable) {
      throw new SandboxCapabilityUnsupportedError({
        message: 'Outbound network without root needs /dev/net/tun to be readable and writable by this user (it is not on this host); pass network: "block" or run as root.',
        capability: 'network',
        provider: 'local',
      });
    }
    if (((options.ports ?? []).length > 0 || options.providerOptions?.local?.hostForwards) && !system.binaries.socat) {
      throw new SandboxCapabilityUnsupportedError({ message: 'Tunnels need socat (apt-get install socat)', capability: 'tunnels', provider: 'local' });
    }
    const image = options.image;
    const needsRoot = (typeof image === 'string' && image !== 'host') || typeof image === 'object';
    if (needsRoot && !system.isRoot && typeof image === 'string') {
      throw new SandboxCapabilityUnsupportedError({
        message: 'Root filesystem images need the library to run as root (they use an overlay mount); use the default host image',
        capability: 'images.reference',
        provider: 'local',
      });
    }
  }

  private async prepareStateDir(system: LocalSystem): Promise<void> {
    await mkdir(this.stateDir, { recursive: true, mode: 0o711 });
    await chmod(this.stateDir, 0o711);
    if (swept.has(this.stateDir)) return;
    swept.add(this.stateDir);
    // Sandboxes of a process that died with its launcher (both SIGKILLed) leave files behind.
    for (const entry of await readdir(this.stateDir)) {
      if (!entry.startsWith('sb-')) continue;
      const pid = Number(await readFile(join(this.stateDir, entry, 'launcher.pid'), 'utf8').catch(() => '0'));
      const cmdline = pid > 0 ? await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '') : '';
      if (cmdline.includes('sandport-launcher')) continue;
      const stateAge = Date.now() - ((await stat(join(this.stateDir, entry)).catch(() => undefined))?.mtimeMs ?? 0);
      if (pid === 0 && stateAge < 60_000) continue; // possibly still being created by another process
      await rm(join(this.stateDir, entry), { recursive: true, force: true }).catch(() => undefined);
      await removeStaleCgroups(system, entry);
    }
  }

  private async prepareFilesystem(
    options: ParsedCreateSandboxOptions,
    system: LocalSystem,
    dir: string,
  ): Promise<{ base: string; layer: string; workdir: string }> {
    const layer = join(dir, 'layer');
    await mkdir(layer, { mode: 0o755 });
    await mkdir(join(dir, 'ports'), { mode: 0o700 });
    if (system.isRoot) {
      await chown(layer, this.sandboxUid, this.sandboxUid);
      await chown(join(dir, 'ports'), this.sandboxUid, this.sandboxUid);
    }
    let base = 'host';
    const image = options.image;
    if (typeof image === 'object' && 'type' in image) {
      const meta = join(this.stateDir, 'snapshots', `${safeSnapshotId(image.id)}.json`);
      const info = JSON.parse(await readFile(meta, 'utf8').catch(() => 'null')) as { base: string } | null;
      if (!info) throw new SandboxInvalidArgumentError({ message: `Unknown local snapshot ${image.id}`, argument: 'image', provider: 'local' });
      base = info.base;
      await run(system.binaries.tar, ['-C', layer, '--xattrs', "--xattrs-include=*", '--numeric-owner', '-xf', meta.replace(/\.json$/, '.tar')]);
      // bwrap recreates the host view's top-level symlinks and refuses to find them already there.
      if (base === 'host') for (const name of system.hostRootSymlinks.keys()) await rm(join(layer, name), { force: true }).catch(() => undefined);
    } else if (typeof image === 'string' && image !== 'host') {
      base = await this.prepareRootfs(image);
    }
    if (base !== 'host') await mkdir(join(dir, 'work'));
    await writeFile(join(dir, 'resolv.conf'), 'nameserver 10.0.2.3\n');
    await writeFile(join(dir, 'empty'), '');
    await mkdir(join(dir, 'empty-dir'), { mode: 0o555 });
    return { base, layer, workdir: options.workdir ?? '/workspace' };
  }

  /** A root-owned copy of the rootfs would be read-only to the sandbox; keep one chowned copy per image. */
  private prepareRootfs(path: string): Promise<string> {
    const pending = this.preparedImages.get(path);
    if (pending) return pending;
    const prepared = (async () => {
      const source = await realpath(path).catch(() => undefined);
      const info = source ? await stat(source) : undefined;
      if (!source || !info?.isDirectory()) {
        throw new SandboxInvalidArgumentError({ message: `image ${path} is not a directory`, argument: 'image', provider: 'local' });
      }
      await access(join(source, 'bin', 'sh')).catch(() => {
        throw new SandboxInvalidArgumentError({ message: `image ${path} has no /bin/sh: not a root filesystem`, argument: 'image', provider: 'local' });
      });
      const key = createHash('sha256').update(`${source}\0${info.mtimeMs}\0${this.sandboxUid}`).digest('hex').slice(0, 16);
      const target = join(this.stateDir, 'images', key);
      if (await stat(target).then(() => true, () => false)) return target;
      await mkdir(join(this.stateDir, 'images'), { recursive: true, mode: 0o711 });
      const staging = `${target}.${process.pid}.tmp`;
      await run('cp', ['-a', '--reflink=auto', `${source}/.`, `${staging}/`]).catch(async () => {
        await mkdir(staging, { recursive: true });
        await run('cp', ['-a', `${source}/.`, `${staging}/`]);
      });
      await run('chown', ['-hR', `${this.sandboxUid}:${this.sandboxUid}`, staging]);
      await rename(staging, target).catch(async (error: NodeJS.ErrnoException) => {
        await rm(staging, { recursive: true, force: true });
        if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
      });
      return target;
    })();
    this.preparedImages.set(path, prepared);
    prepared.catch(() => this.preparedImages.delete(path));
    return prepared;
  }

  private async bwrapStage(
    options: ParsedCreateSandboxOptions,
    system: LocalSystem,
    dir: string,
    plan: { base: string; layer: string; workdir: string },
    networked: boolean,
  ): Promise<string[]> {
    const args = [system.binaries.bwrap, '--unshare-all', '--uid', '0', '--gid', '0', '--hostname', 'sandbox', '--cap-drop', 'ALL', '--die-with-parent', '--new-session'];
    if (plan.base === 'host') {
      args.push('--bind', plan.layer, '/', '--ro-bind', '/usr', '/usr');
      for (const [name, target] of system.hostRootSymlinks) {
        if (target) args.push('--symlink', target, `/${name}`);
        else args.push('--ro-bind', `/${name}`, `/${name}`);
      }
      args.push('--ro-bind', '/etc', '/etc');
      if (await exists('/opt')) args.push('--ro-bind', '/opt', '/opt');
      for (const file of maskedFiles) if (await exists(file)) args.push('--ro-bind', join(dir, 'empty'), file);
      for (const masked of maskedDirs) if (await exists(masked)) args.push('--ro-bind', join(dir, 'empty-dir'), masked);
    } else {
      args.push('--bind', join(dir, 'merged'), '/');
    }
    if (networked) args.push('--ro-bind', join(dir, 'resolv.conf'), '/etc/resolv.conf');
    args.push('--proc', '/proc', '--dev', '/dev', '--dir', '/tmp', '--dir', '/root', '--dir', plan.workdir);
    for (const [target, volume] of Object.entries(options.volumes ?? {})) {
      const source = typeof volume === 'string' ? volume : volume.source;
      const readOnly = typeof volume === 'string' ? false : volume.readOnly;
      args.push(readOnly ? '--ro-bind' : '--bind', await this.checkVolume(target, source, readOnly, system), target);
    }
    args.push('--info-fd', '4', '--clearenv', '--setenv', 'PATH', defaultPath, '--chdir', '/', '--', '/bin/sh', '-c', 'echo started >&5; exec 5>&-; exec sleep infinity');
    const stage = system.isRoot
      ? [system.binaries.setpriv, `--reuid=${this.sandboxUid}`, `--regid=${this.sandboxUid}`, '--clear-groups', '--', ...args]
      : args;
    if (plan.base === 'host') return stage;
    // The overlay is mounted in a mount namespace of its own: it disappears with the sandbox,
    // whatever kills it, so no mount can leak onto the host.
    await mkdir(join(dir, 'merged'));
    const overlay = `lowerdir=${plan.base},upperdir=${plan.layer},workdir=${join(dir, 'work')},userxattr`;
    return ['unshare', '-m', '--propagation', 'private', '--', '/bin/sh', '-c', 'mount -t overlay overlay -o "$1" "$2" || exit 98; shift 2; exec "$@"', 'sandport-mount', overlay, join(dir, 'merged'), ...stage];
  }

  private async checkVolume(target: string, source: string, readOnly: boolean, system: LocalSystem): Promise<string> {
    const argument = `volumes.${target}`;
    if (!source.startsWith('/')) {
      throw new SandboxInvalidArgumentError({ message: `${argument}: the local provider mounts host directories; give an absolute path`, argument, provider: 'local' });
    }
    if (['/', '/proc', '/dev', '/usr', '/etc'].includes(target)) {
      throw new SandboxInvalidArgumentError({ message: `${argument}: cannot mount over ${target}`, argument, provider: 'local' });
    }
    const info = await stat(source).catch(() => undefined);
    if (!info) throw new SandboxInvalidArgumentError({ message: `${argument}: host path ${source} does not exist`, argument, provider: 'local' });
    if (!readOnly && system.isRoot) {
      const writable = (info.uid === this.sandboxUid && (info.mode & 0o200) !== 0) || (info.mode & 0o002) !== 0;
      if (!writable) {
        throw new SandboxInvalidArgumentError({
          message: `${argument}: ${source} is not writable by the sandbox's host uid ${this.sandboxUid}; chown it to that uid or mount it readOnly`,
          argument,
          provider: 'local',
        });
      }
    }
    return source;
  }

  private awaitReady(
    launcher: import('node:child_process').ChildProcess,
    launcherDone: Promise<void>,
    signal: AbortSignal | undefined,
    diagnostics: () => string,
  ): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const lines = createInterface({ input: launcher.stdio[3] as import('node:stream').Readable });
      let settled = false;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        launcher.stdin?.end();
        void launcherDone.then(() => reject(error));
      };
      const onAbort = () => fail(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      lines.on('line', (line) => {
        if (settled) return;
        const [word, value] = line.split(' ');
        if (word === 'ready') {
          settled = true;
          signal?.removeEventListener('abort', onAbort);
          resolve(Number(value));
        } else if (word === 'failed') {
          setTimeout(() => fail(new SandboxProviderError({ message: `Sandbox ${line.slice(7)} setup failed: ${diagnostics().trim() || 'no diagnostics'}`, provider: 'local' })), 20);
        }
      });
      void launcherDone.then(() => fail(new SandboxProviderError({ message: `The sandbox launcher exited during setup: ${diagnostics().trim() || 'no diagnostics'}`, provider: 'local' })));
    });
  }

  private async startEntrypoint(sandbox: LocalSandbox, command: NonNullable<ParsedCreateSandboxOptions['command']>): Promise<void> {
    const entrypoint = await sandbox.exec(command);
    void entrypoint.stdin.close().catch(() => undefined);
    // The entrypoint's output is drained so that it never blocks on a full pipe.
    void entrypoint.stdout.pipeTo(new WritableStream()).catch(() => undefined);
    void entrypoint.stderr.pipeTo(new WritableStream()).catch(() => undefined);
    void entrypoint.wait().then(
      ({ exitCode }) => sandbox.entrypointExited(exitCode),
      () => undefined,
    );
  }

  private async snapshot(
    sandbox: LocalSandbox,
    base: string,
    cgroups: SandboxCgroups | undefined,
    options: SignalOptions,
  ): Promise<SandboxSnapshotRef> {
    const system = await probeLocalSystem();
    const id = `snap-${randomBytes(8).toString('hex')}`;
    const directory = join(this.stateDir, 'snapshots');
    await mkdir(directory, { recursive: true, mode: 0o700 });
    // Frozen while archived, so the snapshot is one consistent moment of the sandbox.
    await cgroups?.freeze(true);
    try {
      await run(system.binaries.tar, ['-C', join(sandbox.stateDir, 'layer'), '--xattrs', '--xattrs-include=*', '--numeric-owner', '-cf', join(directory, `${id}.tar`), '.'], options.signal);
    } catch (error) {
      await rm(join(directory, `${id}.tar`), { force: true });
      throw mapLocalError(error, 'Snapshot failed');
    } finally {
      await cgroups?.freeze(false);
    }
    await writeFile(join(directory, `${id}.json`), JSON.stringify({ base, sandboxId: sandbox.id, createdAt: Date.now() }));
    return { type: 'snapshot', provider: 'local', id };
  }
}

/** Creates the local provider. Construction does no I/O; the host is probed on first `create`. */
export function createLocalSandboxProvider(options: LocalSandboxProviderOptions = {}): LocalSandboxProvider {
  return new LocalSandboxProvider(options);
}

function safeSnapshotId(id: string): string {
  if (!/^snap-[0-9a-f]{16}$/.test(id)) {
    throw new SandboxInvalidArgumentError({ message: `Not a local snapshot id: ${id}`, argument: 'image', provider: 'local' });
  }
  return id;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function removeStaleCgroups(system: LocalSystem, sandboxId: string): Promise<void> {
  const roots =
    system.cgroups?.version === 1 ? Object.values(system.cgroups.controllers) : system.cgroups ? [system.cgroups.base] : [];
  for (const root of roots) {
    const dir = join(root, 'sandport', sandboxId);
    for (const leaf of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (leaf.isDirectory()) await rmdir(join(dir, leaf.name)).catch(() => undefined);
    }
    await rmdir(dir).catch(() => undefined);
  }
}

function run(command: string, args: string[], signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], signal });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited ${code}: ${stderr.trim()}`))));
  });
}
