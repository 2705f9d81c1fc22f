/**
 * How the emulator starts one envd process in a local sandbox: a POSIX sh launcher, run under the
 * local provider's exec wrapper, that does what envd does before it execs the command (look the
 * user up in /etc/passwd, resolve the working directory against their home, set HOME, USER and
 * LOGNAME, give the command /dev/null for stdin when it asked for none), then reports the pid the
 * command will have inside the sandbox and `exec`s it, so that pid is the command's own.
 *
 * The report is one line, `\0E2B:<word>[:<detail>]\n`, the first bytes on the command's stderr
 * (on the terminal with a PTY, where it ends in `\r\n`): `pid:<n>`, `user`, `cwd:<path>` or
 * `command`. Everything after it is the command's.
 *
 * Users: the local sandbox maps one uid (its root) and has no capabilities, so no process can
 * become uid 1000. `user` is therefore emulated by its environment and home only (HOME, USER,
 * LOGNAME, the default working directory); `id -u` says 0 for every user. The base template's
 * build (scripts/build-e2b-images.sh) documents the same limit.
 */
import { posix } from 'node:path';

/** The user envd runs a command as when the request names none (E2B's templates default to `user`). */
export const defaultUser = 'user';

/**
 * The launcher. Arguments: `$1` the user (empty: the template's default user `$2`, and root when
 * the sandbox has no such user), `$3` the working directory as requested (empty: the template's
 * `$4`, else the user's home), `$5` `null` for an empty stdin, `$6` `pty` to report on stdout
 * (the terminal), `$7` a comma-separated list of HOME, USER and LOGNAME that the request sets
 * itself (its values win), then the argv.
 */
export const launcherScript = [
  'user=$1; cwd=${3:-$4}; fd=2; [ "$6" = pty ] && fd=1',
  'lookup() { while IFS=: read -r name _ _ _ _ dir _; do if [ "$name" = "$1" ]; then home=$dir; return 0; fi; done < /etc/passwd; return 1; }',
  `if [ -z "$user" ]; then user=$2; lookup "$user" || { user=root; lookup root; }; elif ! lookup "$user"; then printf '\\0E2B:user\\n' >&"$fd"; exit 1; fi`,
  '[ -n "$home" ] || home=/',
  'case $cwd in',
  '  "") cwd=$home ;;',
  '  "~") cwd=$home ;;',
  '  "~/"*) cwd=$home/${cwd#"~/"} ;;',
  // envd cannot expand another user's home (`~bob`) either.
  '  "~"*) printf \'\\0E2B:cwd:%s\\n\' "$cwd" >&"$fd"; exit 1 ;;',
  '  /*) ;;',
  '  *) cwd=$home/$cwd ;;',
  'esac',
  'cd -- "$cwd" 2>/dev/null || { printf \'\\0E2B:cwd:%s\\n\' "$cwd" >&"$fd"; exit 1; }',
  'case ",$7," in *,HOME,*) ;; *) HOME=$home; export HOME ;; esac',
  'case ",$7," in *,USER,*) ;; *) USER=$user; export USER ;; esac',
  'case ",$7," in *,LOGNAME,*) ;; *) LOGNAME=$user; export LOGNAME ;; esac',
  'if [ "$5" = null ]; then exec </dev/null; fi',
  'shift 7',
  `command -v -- "$1" >/dev/null 2>&1 || { printf '\\0E2B:command\\n' >&"$fd"; exit 1; }`,
  `printf '\\0E2B:pid:%d\\n' $$ >&"$fd"`,
  'exec "$@"',
].join('\n');

export interface LaunchSpec {
  /** The user of the request's `Authorization`; undefined for the default user. */
  user: string | undefined;
  cwd: string | undefined;
  /** The template's defaults (its last USER and WORKDIR). @default user `user`, cwd the user's home */
  defaults?: { user?: string | undefined; workdir?: string | undefined } | undefined;
  stdin: boolean;
  pty: boolean;
  envs: Readonly<Record<string, string>>;
  argv: readonly string[];
}

/** The argv that launches `spec.argv` as envd would (see {@link launcherScript}). */
export function launcherArgv(spec: LaunchSpec): string[] {
  const overridden = ['HOME', 'USER', 'LOGNAME'].filter((name) => Object.hasOwn(spec.envs, name));
  return [
    '/bin/sh',
    '-c',
    launcherScript,
    'e2b-envd',
    spec.user ?? '',
    spec.defaults?.user ?? defaultUser,
    spec.cwd ?? '',
    spec.defaults?.workdir ?? '',
    spec.stdin || spec.pty ? '' : 'null',
    spec.pty ? 'pty' : '',
    overridden.join(','),
    ...spec.argv,
  ];
}

export type LaunchReport =
  | { readonly kind: 'pid'; readonly pid: number }
  | { readonly kind: 'user' }
  | { readonly kind: 'cwd'; readonly path: string }
  | { readonly kind: 'command' }
  /** The stream ended, or began with something else: the launcher never ran. */
  | { readonly kind: 'none'; readonly head: Uint8Array };

/** A report is short: a long cwd fits, a runaway stream does not. */
const maxReportBytes = 8192;

/** Parses one report line (without its `\n`; a `\r` from a terminal is dropped). */
export function parseLaunchReport(line: Uint8Array): LaunchReport {
  let text = Buffer.from(line).toString('utf8');
  if (text.endsWith('\r')) text = text.slice(0, -1);
  if (!text.startsWith('\0E2B:')) return { kind: 'none', head: line };
  const [word, ...rest] = text.slice('\0E2B:'.length).split(':');
  const detail = rest.join(':');
  if (word === 'pid' && /^\d+$/.test(detail)) return { kind: 'pid', pid: Number(detail) };
  if (word === 'user') return { kind: 'user' };
  if (word === 'cwd') return { kind: 'cwd', path: posix.normalize(detail) };
  if (word === 'command') return { kind: 'command' };
  return { kind: 'none', head: line };
}

/**
 * Reads the launcher's report off the start of `stream` and returns it with the bytes that
 * followed it on the same read (the command's first output), which the caller delivers first.
 * The reader stays locked to the caller.
 */
export async function readLaunchReport(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<{ report: LaunchReport; rest: Uint8Array }> {
  let head: Uint8Array = new Uint8Array(0);
  for (;;) {
    const newline = head.indexOf(0x0a);
    if (newline >= 0) return { report: parseLaunchReport(head.subarray(0, newline)), rest: head.subarray(newline + 1) };
    if (head.byteLength > maxReportBytes || (head.byteLength > 0 && head[0] !== 0))
      return { report: { kind: 'none', head }, rest: new Uint8Array(0) };
    const next = await reader.read();
    if (next.done) return { report: { kind: 'none', head }, rest: new Uint8Array(0) };
    head = head.byteLength === 0 ? next.value : Buffer.concat([head, next.value]);
  }
}
