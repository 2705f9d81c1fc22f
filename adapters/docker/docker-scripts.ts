/**
 * The shell programs sandport runs inside a Docker container: the lifetime keeper (the
 * container's main process), the secrets prelude every command runs under, the entrypoint
 * notifier, and the argv that puts a command under the kit's exec wrapper.
 */
import { wrapArgv } from '../../src/kit/index.js';
import { pausedTagsDirectory, stateDirectory, tagsFile } from './docker-engine.js';

const secretsFile = `${stateDirectory}/secrets.sh`;

const deadlineFile = `${stateDirectory}/deadline`;

/**
 * The container's main process: sleeps until the deadline in the state directory ($0, rewritten
 * by extendTimeout), never past the hard cap ($1, creation + the maximum lifetime), then exits,
 * which ends the container. Wakes at least every 5 s to see a changed deadline. While the file
 * says `paused <ms>` (see {@link holdLifetimeArgv}), only the cap counts.
 */
export const lifetimeKeeper = [
  `mkdir -p ${stateDirectory} && echo "$0" > ${deadlineFile} && echo $$ > ${stateDirectory}/keeper.pid || exit 1`,
  // The entrypoint notifier signals here when its command ended: exit with the command's status.
  `trap 'exit "$(cat ${stateDirectory}/entrypoint-exit 2>/dev/null || echo 0)"' USR1`,
  'while :; do',
  `  d=$(cat ${deadlineFile} 2>/dev/null); case "$d" in 'paused '*) d=$1 ;; ''|*[!0-9]*) d=0 ;; esac`,
  '  [ "$d" -gt "$1" ] && d=$1',
  '  now=$(date +%s); [ "$now" -ge "$d" ] && exit 0',
  '  left=$((d - now)); [ "$left" -gt 5 ] && left=5',
  // In the background, so that the trap above runs at once instead of after the sleep.
  '  sleep "$left" & wait $!',
  'done',
].join('\n');

/**
 * Runs before every command: loads the sandbox's secrets (kept out of the container's Env, which
 * `docker inspect` and `commit` expose), while the exec's own env, named in SANDPORT_EXEC_ENV,
 * keeps precedence. Names are validated by the env schema, so `eval` only sees identifiers.
 */
export const secretsPrelude = [
  `if [ -r ${secretsFile} ]; then`,
  '  for sp_name in $SANDPORT_EXEC_ENV; do eval "sp_keep_$sp_name=\\$$sp_name"; done',
  `  . ${secretsFile}`,
  '  for sp_name in $SANDPORT_EXEC_ENV; do eval "export $sp_name=\\"\\$sp_keep_$sp_name\\""; unset "sp_keep_$sp_name"; done',
  '  unset sp_name',
  'fi',
  'unset SANDPORT_EXEC_ENV',
].join('\n');

/**
 * Around the create-time `command` (itself under the exec wrapper): when it ends, its status goes
 * to the keeper, which exits with it. The container, and `wait()`, then end with the entrypoint,
 * whether or not the creating process is still alive. The notifier carries no exec marker, so
 * killing the entrypoint's tree never kills the notifier.
 */
const entrypointNotifier = [
  '"$@"',
  'rc=$?',
  `echo "$rc" > ${stateDirectory}/entrypoint-exit`,
  `kill -USR1 "$(cat ${stateDirectory}/keeper.pid)" 2>/dev/null`,
  'exit "$rc"',
].join('\n');

/**
 * Run just before the engine pauses the container: the deadline file becomes `paused <ms>`, the
 * lifetime that was left, so that the keeper (frozen with the rest, and woken by the thaw long
 * after its deadline) does not end the resumed sandbox, and whoever resumes it, in any process,
 * knows what to give back; a file that already says paused is kept. The current tags are copied
 * where the archive API reads and writes them while paused. Atomic renames: the keeper never
 * reads a half-written deadline.
 */
export function holdLifetimeArgv(sandboxId: string): string[] {
  const tags = tagsFile(sandboxId);
  const script = [
    `d=$(cat ${deadlineFile} 2>/dev/null)`,
    'case "$d" in',
    "  'paused '*) ;;",
    "  ''|*[!0-9]*) echo 'no deadline' >&2; exit 3 ;;",
    `  *) left=$(( (d - $(date +%s)) * 1000 )); [ "$left" -lt 0 ] && left=0; echo "paused $left" > ${deadlineFile}.new && mv ${deadlineFile}.new ${deadlineFile} || exit 1 ;;`,
    'esac',
    `mkdir -p ${pausedTagsDirectory} || exit 1`,
    `if [ -f ${tags} ]; then cp ${tags} ${pausedTagsDirectory}/ || exit 1; fi`,
  ].join('\n');
  return ['/bin/sh', '-c', script];
}

/**
 * Run once the container is thawed (and to undo a pause the engine refused): a held deadline
 * becomes now + what was left, tags written while paused return to the state directory, and the
 * deadline in force is printed (epoch seconds). Idempotent.
 */
export function releaseLifetimeArgv(sandboxId: string): string[] {
  const tags = tagsFile(sandboxId);
  const paused = `${pausedTagsDirectory}/${tags.slice(tags.lastIndexOf('/') + 1)}`;
  const script = [
    `d=$(cat ${deadlineFile} 2>/dev/null)`,
    'case "$d" in',
    `  'paused '*) left=\${d#paused }; echo $(( $(date +%s) + (left + 999) / 1000 )) > ${deadlineFile}.new && mv ${deadlineFile}.new ${deadlineFile} || exit 1 ;;`,
    'esac',
    `if [ -f ${paused} ]; then cat ${paused} > ${tags} || exit 1; fi`,
    `rm -rf ${pausedTagsDirectory}`,
    `cat ${deadlineFile}`,
  ].join('\n');
  return ['/bin/sh', '-c', script];
}

/** The secrets file: one `export NAME='value'` line per secret, single-quoted for sh. */
export function secretsScript(secrets: Record<string, string>): string {
  return Object.entries(secrets)
    .map(([name, value]) => `export ${name}='${value.replaceAll("'", "'\\''")}'\n`)
    .join('');
}

/** Writes the secrets file (stdin: {@link secretsScript}). */
export const storeSecretsArgv = ['/bin/sh', '-c', `umask 077; cat > ${secretsFile}`];

/**
 * The exec's Cmd: the secrets prelude, then the kit's wrapper (marker, cwd and program checks,
 * report on stdout), in one shell. The entrypoint runs the wrapper under the notifier instead.
 */
export function execCommand(execId: string, argv: readonly string[], cwd: string, entrypoint: boolean): string[] {
  const wrapped = wrapArgv(execId, argv, { cwd });
  if (entrypoint) return ['/bin/sh', '-c', `${secretsPrelude}\n${entrypointNotifier}`, 'sandport-entrypoint', ...wrapped];
  const [shell, flag, script, ...rest] = wrapped;
  return [shell!, flag!, `${secretsPrelude}\n${script!}`, ...rest];
}
