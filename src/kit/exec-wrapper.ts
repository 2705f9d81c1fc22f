/**
 * The one wrapper every command runs under inside a sandbox, and the one tree killer.
 *
 * Providers differ in what they give an exec: some have no kill, some no working directory check,
 * some report a missing program as an exit code that a command could also return. The wrapper
 * evens that out, in POSIX sh, before the command replaces it:
 * 1. it exports `SANDPORT_EXEC_ID=<id>`, which every process the command starts inherits, so the
 *    whole tree can be found and signalled later (even processes that called `setsid`);
 * 2. it enters the working directory, or reports `cwd`;
 * 3. it checks that the program exists and is executable, or reports `command`;
 * 4. it reports `ok` and `exec`s the command with its argv untouched.
 * The report is one line, `\0SPX:<word>\n`, on the file descriptor the adapter chooses (stdout by
 * default; the local provider uses fd 3 so stdout stays the command's alone). The NUL byte makes
 * it impossible to confuse with output of a command that never ran. Under the kit's portable
 * terminal (`pty.ts`) the wrapper runs on the terminal and its `ok` carries the terminal's path
 * (`\0SPX:ok:/dev/pts/3`); a report that went through the terminal ends in `\r\n`.
 */
import { concatBytes, prependChunk } from '../streams/index.js';

/** What the wrapper reported before the command started. */
export type StartReport = 'ok' | 'cwd' | 'command' | 'none';

/** Longest report line read off a stream before it is taken for output: `ok` with a terminal path fits. */
const maxReportBytes = 256;

/** Exit codes of the wrapper when it refuses to start the command (the shell's conventions). */
export const wrapperExit = { cwd: 126, command: 127 } as const;

/** The marker variable's name. */
export const execMarkerVariable = 'SANDPORT_EXEC_ID';

/**
 * The wrapper script. Arguments: `$1` the exec id, `$2` the working directory (empty: stay), `$3`
 * the report fd, `$4` `null` to give the command an empty stdin (no input stream at all: saves
 * adapters whose stdin close is a round trip, such as Modal's, from sending it) or `pty` when it
 * runs on a terminal (the `ok` report then names the terminal, from `tty`), then the argv.
 */
export const execWrapperScript = [
  `${execMarkerVariable}=$1; export ${execMarkerVariable}; fd=$3; mode=$4`,
  `if [ -n "$2" ]; then cd -- "$2" 2>/dev/null || { printf '\\0SPX:cwd\\n' >&"$fd"; exit ${wrapperExit.cwd}; }; fi`,
  'if [ "$4" = null ]; then exec </dev/null; fi',
  'shift 4',
  `case "$1" in */*) [ -f "$1" ] && [ -x "$1" ] ;; *) command -v -- "$1" >/dev/null 2>&1 ;; esac || { printf '\\0SPX:command\\n' >&"$fd"; exit ${wrapperExit.command}; }`,
  `if [ "$mode" = pty ]; then printf '\\0SPX:ok:%s\\n' "$(tty)" >&"$fd"; else printf '\\0SPX:ok\\n' >&"$fd"; fi`,
  // A report fd other than stdout or stderr is the adapter's alone: the command never inherits it.
  'case "$fd" in 1|2) ;; *) eval "exec $fd>&-" ;; esac',
  'exec "$@"',
].join('\n');

/**
 * The argv that runs `argv` under the wrapper. `cwd` empty or undefined keeps the default directory.
 * `pty`: the wrapper runs on a terminal (the kit's `wrapPtyArgv` sets this) and reports its path.
 */
export function wrapArgv(
  execId: string,
  argv: readonly string[],
  options: { cwd?: string | undefined; reportFd?: number; stdinNull?: boolean; pty?: boolean } = {},
): string[] {
  return [
    '/bin/sh',
    '-c',
    execWrapperScript,
    'sandport-exec',
    execId,
    options.cwd ?? '',
    String(options.reportFd ?? 1),
    options.pty ? 'pty' : options.stdinNull ? 'null' : '',
    ...argv,
  ];
}

/** Parses one report line (without the newline). */
export function parseStartReport(line: Uint8Array): StartReport {
  return parseStartLine(line).report;
}

/**
 * Parses one report line (without the newline; a `\r` before it, from a terminal's line ends, is
 * dropped), with the terminal's path of a `pty` wrapper's `ok` (`undefined` when the wrapper was
 * not on a terminal: `tty` then printed `not a tty`).
 */
export function parseStartLine(line: Uint8Array): { report: StartReport; ptyPath?: string } {
  let text = new TextDecoder().decode(line);
  if (text.endsWith('\r')) text = text.slice(0, -1);
  if (text === '\0SPX:ok') return { report: 'ok' };
  if (text.startsWith('\0SPX:ok:')) {
    const path = text.slice('\0SPX:ok:'.length);
    return path.startsWith('/dev/') ? { report: 'ok', ptyPath: path } : { report: 'ok' };
  }
  if (text === '\0SPX:cwd') return { report: 'cwd' };
  if (text === '\0SPX:command') return { report: 'command' };
  return { report: 'none' };
}

/**
 * Reads the wrapper's report off the start of `stdout` and hands back a stream of the rest,
 * byte for byte. `none` means the stream ended (or began with something else) before a report:
 * the wrapper never ran, so the sandbox is gone or has no `/bin/sh`. `ptyPath`: see
 * {@link parseStartLine}.
 */
export async function readStartMarker(
  stdout: ReadableStream<Uint8Array>,
): Promise<{ report: StartReport; ptyPath?: string; stdout: ReadableStream<Uint8Array> }> {
  const reader = stdout.getReader();
  let head: Uint8Array = new Uint8Array(0);
  for (;;) {
    const newline = head.indexOf(0x0a);
    if (newline >= 0) {
      const parsed = parseStartLine(head.subarray(0, newline));
      return { ...parsed, stdout: prependChunk(reader, parsed.report === 'none' ? head : head.subarray(newline + 1)) };
    }
    // A report is short and starts with NUL: anything else is not one.
    if (head.byteLength > maxReportBytes || (head.byteLength > 0 && head[0] !== 0))
      return { report: 'none', stdout: prependChunk(reader, head) };
    const next = await reader.read();
    if (next.done) return { report: 'none', stdout: prependChunk(reader, head) };
    head = head.byteLength === 0 ? next.value : concatBytes([head, next.value]);
  }
}

/**
 * Signals every process carrying an exec's marker, from inside the sandbox (providers without a
 * per-command kill). Arguments: `$1` the signal name without `SIG`, `$2` the exec id. It skips
 * itself, and repeats for KILL until no marked process is left (at most 5 rounds), so children
 * forked during the sweep are caught too.
 */
export const killMarkedTreeScript = [
  `sig=$1; marker="${execMarkerVariable}=$2"`,
  'for round in 1 2 3 4 5; do',
  '  found=',
  '  for dir in /proc/[0-9]*; do',
  '    pid=${dir#/proc/}; [ "$pid" = "$$" ] && continue',
  '    if tr "\\0" "\\n" < "$dir/environ" 2>/dev/null | grep -qxF "$marker"; then kill -s "$sig" "$pid" 2>/dev/null && found=1; fi',
  '  done',
  '  [ -n "$found" ] && [ "$sig" = KILL ] || break',
  'done',
].join('\n');

/** The argv of the in-sandbox killer for an exec and a signal (`'SIGTERM'` or `'TERM'`). */
export function killMarkedTreeArgv(execId: string, signal: string): string[] {
  return ['/bin/sh', '-c', killMarkedTreeScript, 'sandport-kill', signal.replace(/^SIG/, ''), execId];
}
