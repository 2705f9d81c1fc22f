/**
 * The shell programs sandport runs inside a Docker container: the lifetime keeper (the
 * container's main process), the secrets prelude every command runs under, the entrypoint
 * notifier, and the argv that puts a command under the kit's exec wrapper.
 */
import { wrapArgv } from '../../src/kit/index.js';
import { stateDirectory } from './docker-engine.js';

const secretsFile = `${stateDirectory}/secrets.sh`;

/**
 * The container's main process: sleeps until the deadline in the state directory ($0, rewritten
 * by extendTimeout), never past the hard cap ($1, creation + the maximum lifetime), then exits,
 * which ends the container. Wakes at least every 5 s to see a changed deadline.
 */
export const lifetimeKeeper = [
  `mkdir -p ${stateDirectory} && echo "$0" > ${stateDirectory}/deadline && echo $$ > ${stateDirectory}/keeper.pid || exit 1`,
  // The entrypoint notifier signals here when its command ended: exit with the command's status.
  `trap 'exit "$(cat ${stateDirectory}/entrypoint-exit 2>/dev/null || echo 0)"' USR1`,
  'while :; do',
  `  d=$(cat ${stateDirectory}/deadline 2>/dev/null); case "$d" in ''|*[!0-9]*) d=0 ;; esac`,
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
