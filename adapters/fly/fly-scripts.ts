/**
 * The shell programs sandport runs inside a Fly Machine: the lifetime keeper (the machine's init,
 * whose exit stops and destroys the machine), and the exec runner that makes Fly's buffered exec
 * (whole stdin up front, output at the end, a timeout in seconds) carry the contract's exec:
 * every command starts detached, writes its output to files and its exit status to a file, and
 * reads its stdin from a FIFO that later execs feed; later execs wait for it and collect the output.
 * POSIX sh plus coreutils (base64, head, tail, wc, mkfifo).
 */
import { shellQuote, wrapArgv } from '../../src/kit/index.js';

/** Where the adapter keeps its state inside the machine. */
export const flyStateDirectory = '/tmp/.sandport';
const deadlineFile = `${flyStateDirectory}/deadline`;
const secretsFile = `${flyStateDirectory}/secrets.sh`;
const tagsFile = `${flyStateDirectory}/tags.json`;
/** Per-exec directories: `out`, `err`, `in` (FIFO), `report`, `exit`, `holder`. */
const execDirectory = `${flyStateDirectory}/x`;

/** Output up to this many bytes per stream comes back with the exit, in the answer that sees it. */
export const flyInlineOutputBytes = 256 * 1024;

/**
 * Prints what a command left once `$d/exit` exists: `exit <code> <out bytes> <err bytes>`, then,
 * when both outputs are at most `flyInlineOutputBytes`, `inline`, a line of base64 stdout and a
 * line of base64 stderr (and removes the exec's directory: it is done with).
 */
const exitReport = [
  'o=$(wc -c < "$d/out"); e=$(wc -c < "$d/err")',
  'echo "exit $(cat "$d/exit") $o $e"',
  `if [ "$o" -le ${flyInlineOutputBytes} ] && [ "$e" -le ${flyInlineOutputBytes} ]; then`,
  '  echo inline; base64 -w0 < "$d/out"; echo; base64 -w0 < "$d/err"; echo',
  '  rm -rf "$d"',
  'fi',
];

/** Exit code of a runner script when the exec it names is unknown (its directory is gone). */
export const flyUnknownExecExit = 91;

/**
 * The machine's init: sleeps until the deadline ($0, epoch seconds, rewritten by extendTimeout),
 * never past the hard cap ($1), then exits, which stops the machine (and destroys it: the config
 * says `auto_destroy`). Wakes at least every 5 s to see a changed deadline. While the file says
 * `paused <ms>` (see {@link flyHoldLifetimeArgv}), only the cap counts. The entrypoint notifier
 * signals USR1 when the create `command` ended: the keeper then exits with its status.
 */
export const flyLifetimeKeeper = [
  `mkdir -p ${execDirectory} && echo "$0" > ${deadlineFile} && echo $$ > ${flyStateDirectory}/keeper.pid || exit 1`,
  `trap 'exit "$(cat ${flyStateDirectory}/entrypoint-exit 2>/dev/null || echo 0)"' USR1`,
  'while :; do',
  `  d=$(cat ${deadlineFile} 2>/dev/null); case "$d" in 'paused '*) d=$1 ;; ''|*[!0-9]*) d=0 ;; esac`,
  '  [ "$d" -gt "$1" ] && d=$1',
  '  now=$(date +%s); [ "$now" -ge "$d" ] && exit 0',
  '  left=$((d - now)); [ "$left" -gt 5 ] && left=5',
  '  sleep "$left" & wait $!',
  'done',
].join('\n');

/** The init argv for a deadline and a cap (epoch seconds). */
export function flyKeeperArgv(deadline: number, cap: number): string[] {
  return ['/bin/sh', '-c', flyLifetimeKeeper, String(deadline), String(cap)];
}

/**
 * Waits (up to 10 s) until the keeper is up. Fly reports a machine started once its init was
 * launched, which can be before the keeper's first line wrote the deadline: a pause or an extend
 * right after create would otherwise find no deadline, or be overwritten by the keeper's own.
 */
const awaitKeeper = `i=0; while [ ! -e ${flyStateDirectory}/keeper.pid ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done`;

/** Sets the deadline ($1, epoch seconds); a paused sandbox keeps it as its remaining time. */
export function flySetDeadlineArgv(deadline: number): string[] {
  return [
    '/bin/sh',
    '-c',
    `${awaitKeeper}; echo "$1" > ${deadlineFile}.new && mv ${deadlineFile}.new ${deadlineFile}`,
    'sandport-deadline',
    String(deadline),
  ];
}

/**
 * Run just before the machine is suspended: the deadline file becomes `paused <ms>`, the lifetime
 * left, so that the keeper (frozen with the rest, woken by the start long after its deadline) does
 * not end the resumed sandbox, and whoever resumes it knows what to give back. Prints the ms left.
 */
export function flyHoldLifetimeArgv(): string[] {
  const script = [
    awaitKeeper,
    `d=$(cat ${deadlineFile} 2>/dev/null)`,
    'case "$d" in',
    `  'paused '*) echo "\${d#paused }" ;;`,
    "  ''|*[!0-9]*) echo 'no deadline' >&2; exit 3 ;;",
    `  *) left=$(( (d - $(date +%s)) * 1000 )); [ "$left" -lt 0 ] && left=0; echo "paused $left" > ${deadlineFile}.new && mv ${deadlineFile}.new ${deadlineFile} || exit 1; echo "$left" ;;`,
    'esac',
  ].join('\n');
  return ['/bin/sh', '-c', script];
}

/** Run once the machine runs again: a held deadline becomes now + what was left. Prints the deadline. Idempotent. */
export function flyReleaseLifetimeArgv(): string[] {
  const script = [
    awaitKeeper,
    `d=$(cat ${deadlineFile} 2>/dev/null)`,
    'case "$d" in',
    `  'paused '*) left=\${d#paused }; echo $(( $(date +%s) + (left + 999) / 1000 )) > ${deadlineFile}.new && mv ${deadlineFile}.new ${deadlineFile} || exit 1 ;;`,
    'esac',
    `cat ${deadlineFile}`,
  ].join('\n');
  return ['/bin/sh', '-c', script];
}

/** Reads the deadline file: epoch seconds, or `paused <ms>`. */
export const flyReadDeadlineArgv = ['/bin/sh', '-c', `${awaitKeeper}; cat ${deadlineFile}`];

/** Writes the secrets file (stdin: base64 of {@link flySecretsScript}). */
export const flyStoreSecretsArgv = ['/bin/sh', '-c', `umask 077; mkdir -p ${flyStateDirectory} && base64 -d > ${secretsFile}`];

/** The secrets file: one `export NAME='value'` line per secret, single-quoted for sh. */
export function flySecretsScript(secrets: Record<string, string>): string {
  return Object.entries(secrets)
    .map(([name, value]) => `export ${name}='${value.replaceAll("'", "'\\''")}'\n`)
    .join('');
}

/** Reads the tags file (JSON), or prints nothing. */
export const flyReadTagsArgv = ['/bin/sh', '-c', `cat ${tagsFile} 2>/dev/null; true`];
/** Writes the tags file (stdin: base64 of the JSON). */
export const flyWriteTagsArgv = ['/bin/sh', '-c', `base64 -d > ${tagsFile}.new && mv ${tagsFile}.new ${tagsFile}`];

/**
 * The detached half of a command, kept in the machine as `runner.sh` so that its command line
 * (`/bin/sh /tmp/.sandport/runner.sh`) is the same for every command: nothing of an exec (its id,
 * env, argv) shows in a process list. It reads its exec's directory from `SP_D` and its stdin
 * mode from `SP_MODE`, loads the secrets and the exec's env file (the exec's env wins), takes its
 * argv from the `argv` file (shell-quoted), runs the command with its output to files and the
 * wrapper's report on fd 3, records the status in `exit` (atomically) and frees the FIFO.
 */
export const flyRunnerScript = [
  'd=$SP_D; mode=$SP_MODE; unset SP_D SP_MODE',
  `if [ -r ${secretsFile} ]; then . ${secretsFile}; fi`,
  '. "$d/env"',
  'eval "set -- $(cat "$d/argv")"',
  'case "$mode" in',
  '  pipe) sleep 2147483647 > "$d/in" & echo $! > "$d/holder"; exec 0< "$d/in" ;;',
  '  data) exec 0< "$d/data" ;;',
  '  *) exec 0< /dev/null ;;',
  'esac',
  '"$@" > "$d/out" 2> "$d/err" 3> "$d/report"',
  'rc=$?',
  'exec 0<&-',
  // A writer blocked on the FIFO is let go (O_RDWR never blocks), and no new one can open it.
  'if [ -p "$d/in" ]; then exec 4<> "$d/in"; rm -f "$d/in"; fi',
  '[ -s "$d/holder" ] && kill "$(cat "$d/holder")" 2>/dev/null',
  'echo "$rc" > "$d/exit.new" && mv "$d/exit.new" "$d/exit"',
].join('\n');

const runnerFile = `${flyStateDirectory}/runner.sh`;

/**
 * Starts a command detached; everything about it comes on this exec's stdin (so this script's
 * command line is constant too): a line with the exec id, one with the stdin mode (`pipe`: a FIFO
 * fed by later execs, held open by a holder process until the caller closes it; `data`: the rest
 * of stdin, base64, then EOF; `null`: empty), one with the base64 of the env file (`export`
 * lines), one with the base64 of the shell-quoted argv, then the data. It installs the runner
 * once, starts it detached (no terminal, no pipes, HUP ignored: it outlives this exec), waits for
 * the wrapper's report (or the exit) and prints it.
 */
export const flyStartScript = [
  'read -r id; read -r mode; read -r envb; read -r argvb; read -r linger',
  `d=${execDirectory}/$id; mkdir -p "$d" || exit 90`,
  `if [ ! -f ${runnerFile} ]; then printf %s "$1" | base64 -d > ${runnerFile}.new && mv ${runnerFile}.new ${runnerFile} || exit 90; fi`,
  ': > "$d/out"; : > "$d/err"; : > "$d/report"',
  'printf %s "$envb" | base64 -d > "$d/env" && printf %s "$argvb" | base64 -d > "$d/argv" || exit 90',
  'case "$mode" in',
  '  pipe) mkfifo "$d/in" || exit 90 ;;',
  '  data) base64 -d > "$d/data" || exit 90 ;;',
  'esac',
  `(trap "" HUP; SP_D=$d SP_MODE=$mode exec /bin/sh ${runnerFile}) < /dev/null > /dev/null 2>&1 &`,
  'while [ ! -s "$d/report" ] && [ ! -e "$d/exit" ]; do sleep 0.01; done',
  'cat "$d/report"',
  // A `run` waits a little here: a short command's exit and output then come in this answer.
  'case "$linger" in ""|*[!0-9]*|0) exit 0 ;; esac',
  'grep -q "SPX:ok" "$d/report" || exit 0',
  'i=0; while [ ! -e "$d/exit" ] && [ "$i" -lt "$linger" ]; do sleep 0.005; i=$((i + 5)); done',
  '[ -e "$d/exit" ] || exit 0',
  ...exitReport,
].join('\n');

/** The Fly exec argv of the start script (its one argument: the runner, base64, installed once). */
export const flyStartArgv = ['/bin/sh', '-c', flyStartScript, 'sandport-start', Buffer.from(flyRunnerScript).toString('base64')];

/**
 * The start script's stdin for `wrapped` (an argv already under the kit's exec wrapper, reporting
 * on fd 3), its env and its stdin mode, with `data` (base64) for the `data` mode.
 */
export function flyStartInput(
  execId: string,
  wrapped: readonly string[],
  options: {
    env?: Record<string, string> | undefined;
    stdin: 'pipe' | 'data' | 'null';
    data?: string | undefined;
    /** Milliseconds to wait for the exit in this answer (a `run`). @default 0 */
    lingerMs?: number | undefined;
  },
): string {
  const env = Object.entries(options.env ?? {})
    .map(([name, value]) => `export ${name}=${shellQuote(value)}\n`)
    .join('');
  const argv = wrapped.map(shellQuote).join(' ');
  const lines = [
    execId,
    options.stdin,
    Buffer.from(env).toString('base64'),
    Buffer.from(argv).toString('base64'),
    String(options.lingerMs ?? 0),
  ];
  return `${lines.join('\n')}\n${options.stdin === 'data' ? (options.data ?? '') : ''}`;
}

/** A command under the kit's wrapper, reporting on fd 3 (the runner's `report` file). */
export function flyWrappedArgv(execId: string, argv: readonly string[], cwd: string | undefined): string[] {
  return wrapArgv(execId, argv, { cwd, reportFd: 3 });
}

/**
 * Waits up to `$2` seconds for exec `$1` to exit. Prints `running`, or what the command left (see
 * `exitReport`).
 */
export const flyWaitScript = [
  `d=${execDirectory}/$1; [ -d "$d" ] || exit ${flyUnknownExecExit}`,
  'end=$(( $(date +%s) + $2 ))',
  'while [ ! -e "$d/exit" ]; do [ "$(date +%s)" -ge "$end" ] && { echo running; exit 0; }; sleep 0.02; done',
  ...exitReport,
].join('\n');

export function flyWaitArgv(execId: string, seconds: number): string[] {
  return ['/bin/sh', '-c', flyWaitScript, 'sandport-wait', execId, String(seconds)];
}

/** Prints base64 of `$3` bytes of exec `$1`'s stream `$2` (`out`/`err`) from offset `$4`. */
export const flyReadOutputScript = [
  `f=${execDirectory}/$1/$2; [ -f "$f" ] || exit ${flyUnknownExecExit}`,
  'tail -c +$(( $4 + 1 )) "$f" | head -c "$3" | base64 -w0',
].join('\n');

export function flyReadOutputArgv(execId: string, stream: 'out' | 'err', bytes: number, offset: number): string[] {
  return ['/bin/sh', '-c', flyReadOutputScript, 'sandport-output', execId, stream, String(bytes), String(offset)];
}

/** Removes an exec's directory (its output was read). */
export function flyForgetExecArgv(execId: string): string[] {
  return ['/bin/sh', '-c', `rm -rf ${execDirectory}/"$1"`, 'sandport-forget', execId];
}

/**
 * Feeds this exec's stdin (base64) into exec `$1`'s FIFO. Exits 0 without writing when the
 * command has exited (its FIFO is gone): nothing can read the data any more.
 */
export function flyFeedStdinArgv(execId: string): string[] {
  const script = `p=${execDirectory}/$1/in; [ -p "$p" ] || exit 0; base64 -d > "$p" 2>/dev/null; exit 0`;
  return ['/bin/sh', '-c', script, 'sandport-stdin', execId];
}

/** Closes exec `$1`'s stdin: the holder goes, so the command reads EOF once the FIFO drains. */
export function flyCloseStdinArgv(execId: string): string[] {
  const script = `h=${execDirectory}/$1/holder; [ -s "$h" ] && kill "$(cat "$h")" 2>/dev/null; exit 0`;
  return ['/bin/sh', '-c', script, 'sandport-eof', execId];
}

/**
 * The entrypoint: the wrapped create `command` under a notifier that tells the keeper its status
 * (the keeper exits with it, which ends the machine). A command that never started (the wrapper
 * reported a missing program or directory) is not the machine's end: `create` reports it and
 * removes the machine itself.
 */
export function flyEntrypointArgv(execId: string, argv: readonly string[], cwd: string | undefined): string[] {
  const notifier = [
    'report=$1; shift',
    '"$@"',
    'rc=$?',
    'grep -q "SPX:ok" "$report" 2>/dev/null || exit "$rc"',
    `echo "$rc" > ${flyStateDirectory}/entrypoint-exit`,
    `kill -USR1 "$(cat ${flyStateDirectory}/keeper.pid)" 2>/dev/null`,
    'exit "$rc"',
  ].join('\n');
  return [
    '/bin/sh',
    '-c',
    notifier,
    'sandport-entrypoint',
    `${execDirectory}/${execId}/report`,
    ...wrapArgv(execId, argv, { cwd, reportFd: 3 }),
  ];
}

/** Files: reads `$3` bytes from offset `$2` of `$1` as base64; prints `R` first on the first chunk's checks. */
export const flyReadChunkScript = [
  '[ -e "$1" ] || exit 44; [ -d "$1" ] && exit 45; [ -r "$1" ] || exit 1',
  'tail -c +$(( $2 + 1 )) "$1" | head -c "$3" | base64 -w0',
].join('\n');

/** Files: size of `$1` after the read checks. */
export const flyFileSizeScript = '[ -e "$1" ] || exit 44; [ -d "$1" ] && exit 45; [ -r "$1" ] || exit 1; wc -c < "$1"';

/**
 * Files: one chunk of a write (stdin: base64). `$2` `first` creates the parent directories and
 * starts the part file, `next` appends, `last` appends and moves the part into place with mode `$3`.
 */
export const flyWriteChunkScript = [
  'p="$1.sandport-part"',
  'case "$2" in',
  '  first|only) dir=$(dirname -- "$1"); mkdir -p -- "$dir" || exit 1; [ -d "$1" ] && exit 45; base64 -d > "$p" || exit 1 ;;',
  '  *) [ -f "$p" ] || exit 1; base64 -d >> "$p" || exit 1 ;;',
  'esac',
  'case "$2" in',
  '  only|last) if [ -n "$3" ]; then chmod -- "$3" "$p" || exit 1; elif [ -e "$1" ]; then chmod --reference="$1" "$p" 2>/dev/null; fi; mv -f -- "$p" "$1" || exit 1 ;;',
  'esac',
].join('\n');

/** Files: drops an unfinished write's part file. */
export const flyAbandonWriteScript = 'rm -f -- "$1.sandport-part"';
