/**
 * The bubblewrap command line of a sandbox, built without I/O from the plan and a few host
 * facts, so what is mounted where (and what is hidden) is unit-testable without bwrap.
 */
import { join } from 'node:path';
import type { VolumeMount } from '../../src/kit/index.js';
import { sandboxPath } from './local-options.js';

/** Host secrets hidden from the host-view image even though /etc is visible. */
export const maskedFiles = ['/etc/shadow', '/etc/shadow-', '/etc/gshadow', '/etc/gshadow-', '/etc/sudoers', '/etc/security/opasswd'];
export const maskedDirs = ['/etc/ssh', '/etc/ssl/private', '/etc/sudoers.d'];
/** Host paths whose presence changes the argv: probe these and pass the ones that exist. */
export const probedHostPaths = ['/opt', ...maskedFiles, ...maskedDirs];

/**
 * The sandbox's pid 1: it tells the launcher (fd 5) once bwrap has built the sandbox, then
 * idles. Every exec enters its namespaces.
 */
const sandboxInit = 'echo started >&5; exec 5>&-; exec sleep infinity';

export interface BwrapInputs {
  binaries: { bwrap: string; setpriv: string };
  isRoot: boolean;
  /** Host uid the sandbox's root maps to (as root). */
  sandboxUid: number;
  /** The sandbox's state directory (layer, sockets, masks). */
  dir: string;
  /** `'host'`, or the lower directory of the overlay (a prepared rootfs). */
  base: string;
  /** Top-level host entries: symlink target, or `''` for a real directory (see `LocalSystem`). */
  hostRootSymlinks: ReadonlyMap<string, string>;
  /** Which of `probedHostPaths` exist on this host. */
  presentHostPaths: ReadonlySet<string>;
  networked: boolean;
  workdir: string;
  volumes: readonly VolumeMount[];
}

/**
 * The argv the launcher runs to start the sandbox: bwrap (as the sandbox's host uid when root),
 * behind an overlay mount for rootfs images. Every stage dies with the launcher
 * (`--pdeathsig`, set after the uid change, which would clear it), so a launcher killed
 * together with its creator takes the sandbox with it.
 */
export function bwrapStage(inputs: BwrapInputs): string[] {
  const { binaries, dir, base } = inputs;
  const args = [
    binaries.bwrap,
    '--unshare-all',
    '--uid',
    '0',
    '--gid',
    '0',
    '--hostname',
    'sandbox',
    '--cap-drop',
    'ALL',
    '--die-with-parent',
    '--new-session',
  ];
  if (base === 'host') {
    args.push('--bind', join(dir, 'layer'), '/', '--ro-bind', '/usr', '/usr');
    for (const [name, target] of inputs.hostRootSymlinks) {
      if (target) args.push('--symlink', target, `/${name}`);
      else args.push('--ro-bind', `/${name}`, `/${name}`);
    }
    args.push('--ro-bind', '/etc', '/etc');
    if (inputs.presentHostPaths.has('/opt')) args.push('--ro-bind', '/opt', '/opt');
    for (const file of maskedFiles) if (inputs.presentHostPaths.has(file)) args.push('--ro-bind', join(dir, 'empty'), file);
    for (const masked of maskedDirs) if (inputs.presentHostPaths.has(masked)) args.push('--ro-bind', join(dir, 'empty-dir'), masked);
  } else {
    args.push('--bind', join(dir, 'merged'), '/');
  }
  if (inputs.networked) args.push('--ro-bind', join(dir, 'resolv.conf'), '/etc/resolv.conf');
  args.push('--proc', '/proc', '--dev', '/dev', '--dir', '/tmp', '--dir', '/root', '--dir', inputs.workdir);
  for (const { target, source, readOnly } of inputs.volumes) args.push(readOnly ? '--ro-bind' : '--bind', source, target);
  args.push('--info-fd', '4', '--clearenv', '--setenv', 'PATH', sandboxPath, '--chdir', '/', '--', '/bin/sh', '-c', sandboxInit);
  const asUser = inputs.isRoot ? [`--reuid=${inputs.sandboxUid}`, `--regid=${inputs.sandboxUid}`, '--clear-groups'] : [];
  const stage = [binaries.setpriv, ...asUser, '--pdeathsig', 'KILL', '--', ...args];
  if (base === 'host') return stage;
  // The overlay is mounted in a mount namespace of its own: it disappears with the sandbox,
  // whatever kills it, so no mount can leak onto the host.
  const overlay = `lowerdir=${base},upperdir=${join(dir, 'layer')},workdir=${join(dir, 'work')},userxattr`;
  return [
    'unshare',
    '-m',
    '--propagation',
    'private',
    '--',
    '/bin/sh',
    '-c',
    'mount -t overlay overlay -o "$1" "$2" || exit 98; shift 2; exec "$@"',
    'sandport-mount',
    overlay,
    join(dir, 'merged'),
    ...stage,
  ];
}

/**
 * The argv of one exec, run on the host: join the exec's cgroup leaf (`procsFiles`), enter the
 * sandbox's namespaces, drop every capability, then run `inner` (the kit's exec wrapper).
 */
export function execArgv(inputs: {
  nsenter: string;
  setpriv: string;
  isRoot: boolean;
  childPid: number;
  procsFiles: readonly string[];
  inner: readonly string[];
}): string[] {
  return [
    '/bin/sh',
    '-c',
    cgroupTrampoline,
    'sandport-exec',
    ...inputs.procsFiles,
    '--',
    inputs.nsenter,
    '-t',
    String(inputs.childPid),
    '-U',
    '-m',
    '-p',
    '-n',
    '-i',
    '-u',
    '-r',
    '-w',
    // Without root, switching to uid 0 would call setgroups, which the user namespace denies;
    // our own uid already is the sandbox's root.
    ...(inputs.isRoot ? [] : ['--preserve-credentials']),
    '--',
    '/usr/bin/setpriv',
    '--bounding-set=-all',
    '--inh-caps=-all',
    '--no-new-privs',
    '--',
    ...inputs.inner,
  ];
}

/** Joins the exec's cgroups (args up to `--`), then execs the rest. Runs on the host. */
const cgroupTrampoline = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"';
