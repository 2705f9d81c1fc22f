import { access, readFile, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { SandboxCapabilityUnsupportedError } from '../../src/kit/index.js';

/** What this host offers the local provider, probed once per process. */
export interface LocalSystem {
  readonly isRoot: boolean;
  readonly binaries: { bwrap: string; nsenter: string; setpriv: string; slirp4netns?: string; socat?: string; tar: string };
  readonly cgroups: CgroupLayout | undefined;
  /** slirp4netns opens /dev/net/tun as the calling user; some hosts make it root-only. */
  readonly tunUsable: boolean;
  /** Top-level host entries that are symlinks (merged /usr): replicated as symlinks in the host view. */
  readonly hostRootSymlinks: ReadonlyMap<string, string>;
}

export type CgroupLayout =
  | { readonly version: 1; readonly controllers: Readonly<Record<'memory' | 'pids' | 'cpu' | 'freezer', string>> }
  | { readonly version: 2; readonly base: string };

let probed: Promise<LocalSystem> | undefined;

export function probeLocalSystem(): Promise<LocalSystem> {
  probed ??= probe().catch((error: unknown) => {
    probed = undefined;
    throw error;
  });
  return probed;
}

async function probe(): Promise<LocalSystem> {
  if (process.platform !== 'linux') {
    throw new SandboxCapabilityUnsupportedError({
      message: 'The local provider needs Linux (bubblewrap and namespaces); use the docker provider elsewhere.',
      capability: 'platform',
      provider: 'local',
    });
  }
  const isRoot = process.geteuid?.() === 0;
  const [bwrap, nsenter, setpriv, slirp4netns, socat, tar] = await Promise.all(
    ['bwrap', 'nsenter', 'setpriv', 'slirp4netns', 'socat', 'tar'].map(findBinary),
  );
  const missing = Object.entries({ bwrap, nsenter, setpriv, tar })
    .filter(([, path]) => path === undefined)
    .map(([name]) => name);
  if (missing.length > 0) {
    throw new SandboxCapabilityUnsupportedError({
      message:
        `The local provider needs ${missing.join(', ')} on PATH. Run \`npx sandport-setup\` or, on Debian/Ubuntu: ` +
        '`sudo apt-get install -y bubblewrap util-linux slirp4netns socat`.',
      capability: 'local-binaries',
      provider: 'local',
    });
  }
  const hostRootSymlinks = new Map<string, string>();
  const { readlink, lstat } = await import('node:fs/promises');
  for (const entry of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    const info = await lstat(`/${entry}`).catch(() => undefined);
    if (info?.isSymbolicLink()) hostRootSymlinks.set(entry, await readlink(`/${entry}`));
    else if (info?.isDirectory()) hostRootSymlinks.set(entry, '');
  }
  return {
    isRoot,
    binaries: { bwrap: bwrap!, nsenter: nsenter!, setpriv: setpriv!, slirp4netns, socat, tar: tar! },
    cgroups: isRoot ? await probeCgroups() : undefined,
    tunUsable: await access('/dev/net/tun', constants.R_OK | constants.W_OK).then(
      () => true,
      () => false,
    ),
    hostRootSymlinks,
  };
}

async function findBinary(name: string): Promise<string | undefined> {
  const path = process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  for (const dir of [...path.split(delimiter), '/usr/sbin', '/usr/bin']) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Finds where this process may create child cgroups. v1: one hierarchy per controller, nested
 * under our own cgroup of that controller so the host's accounting still covers the sandboxes.
 * v2: the unified hierarchy, under our own cgroup's parent (a process may not sit in an inner node).
 */
async function probeCgroups(): Promise<CgroupLayout | undefined> {
  const self = await readFile('/proc/self/cgroup', 'utf8').catch(() => '');
  const v1: Partial<Record<'memory' | 'pids' | 'cpu' | 'freezer', string>> = {};
  let v2Path: string | undefined;
  for (const line of self.split('\n')) {
    const [, controllers, path] = line.split(':');
    if (controllers === undefined || path === undefined) continue;
    if (controllers === '') v2Path = path;
    for (const controller of controllers.split(',')) {
      if (controller === 'memory' || controller === 'pids' || controller === 'freezer') {
        v1[controller] = join('/sys/fs/cgroup', controller, path);
      } else if (controller === 'cpu') {
        v1.cpu = join('/sys/fs/cgroup', controllers.includes('cpuacct') ? controllers : 'cpu', path);
      }
    }
  }
  if (v1.memory && v1.pids && v1.cpu && v1.freezer) {
    const usable = await Promise.all(Object.values(v1).map((dir) => isWritableDir(dir)));
    if (usable.every(Boolean)) return { version: 1, controllers: v1 as Record<'memory' | 'pids' | 'cpu' | 'freezer', string> };
  }
  if (v2Path !== undefined) {
    const fsType = await stat('/sys/fs/cgroup/cgroup.controllers').catch(() => undefined);
    if (fsType) {
      const base = join('/sys/fs/cgroup', v2Path === '/' ? '' : join(v2Path, '..'));
      const controllers = await readFile(join(base, 'cgroup.controllers'), 'utf8').catch(() => '');
      if (['memory', 'pids', 'cpu'].every((name) => controllers.split(/\s+/).includes(name))) return { version: 2, base };
    }
  }
  return undefined;
}

async function isWritableDir(dir: string): Promise<boolean> {
  try {
    await access(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
