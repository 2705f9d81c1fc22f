/**
 * The portable terminal: a command runs on a pseudo-terminal allocated INSIDE the sandbox, for
 * providers without native resizable terminals (local; Modal, whose SDK's own `pty` is a fixed
 * 80x24). Only ordinary pipes are needed from the provider: stdin, stdout, and an exit code.
 *
 * How: util-linux `script` (in Debian's essential `bsdutils`) opens the pty pair and copies
 * between its pipes and the terminal. On the terminal, `stty rows R cols C` sets the size first,
 * then the kit's exec wrapper (`wrapArgv` with `pty`) checks the working directory and the program,
 * reports `\0SPX:ok:<tty path>` on the report fd and `exec`s the command, which is the session
 * leader with the terminal as its controlling tty. A resize is a second exec in the sandbox,
 * {@link resizeArgv} (`stty -F <tty> rows R cols C`): the kernel then sends SIGWINCH to the
 * terminal's foreground process group.
 *
 * What the command and its caller see (measured with util-linux 2.38.1, Debian bookworm):
 * - all terminal output on stdout (`\r\n` line ends, stderr merged), nothing on stderr: `script`'s
 *   own messages (`Session terminated, killing shell...` when it gets SIGTERM) are dropped;
 * - echo on and the default line discipline (`\x03` is SIGINT for the foreground job);
 * - closing stdin (EOF on `script`'s input) types one end-of-file character (VEOF, Ctrl-D):
 *   `cat` or an interactive shell at the start of a line ends; after a partial line it only
 *   ends that line, and a program in raw mode reads it as the byte 0x04;
 * - the exit code comes through (`script -e`); a command killed by a signal n inside the
 *   terminal exits `script` with 128+n (no signal), while a kill of the exec's tree (the
 *   wrapper's marker variable is on every process, `script` included) ends the outer shell by
 *   the signal itself, so the provider reports it as for pipes. `script` itself, given SIGTERM,
 *   SIGINT or SIGQUIT by that kill, waits 2 s before it exits (util-linux's "Session terminated,
 *   killing shell... ...killed", dropped with its stderr): `wait()` settles at once, stdout ends
 *   2 s later. (It cannot be spared: a backgrounded `script` would start with SIGINT ignored, and
 *   so would the command);
 * - `TERM`: whatever the exec's environment says; {@link ptyEnvironment} gives the default.
 * - input written before the start report is echoed by the terminal AHEAD of the report (script
 *   copies stdin to the terminal at once), which hides the report on fd 1: resolve `exec` only
 *   after `readStartMarker`, as every adapter does, and write nothing before;
 * - `script` needs no terminal of its own and does not touch the size: with stdin a pipe it
 *   leaves the pty at the size `stty` set and forwards no SIGWINCH of its own.
 *
 * Usage in an adapter (the sandbox's `exec(argv, { pty })` over pipes):
 * ```ts
 * const argv = wrapPtyArgv(execId, call.argv, { size: call.options.pty, cwd, reportFd: 1 });
 * const native = await client.exec(argv, { env: ptyEnvironment(env) });
 * const { report, ptyPath, stdout } = await readStartMarker(native.stdout);
 * // report 'ok' with ptyPath: started; 'cwd' / 'command' as for pipes; 'none': see ptyToolsExit
 * process.resize = (size) => run(resizeArgv(ptyPath, checkPtySize(size)));  // a no-op once exited
 * ```
 */
import { SandboxInvalidArgumentError } from '../errors/index.js';
import { ptySizeSchema, type PtySize } from '../spec/options.js';
import { execMarkerVariable, wrapArgv } from './exec-wrapper.js';

/** `TERM` of a command on a terminal when its environment sets none. */
export const defaultPtyTerm = 'xterm-256color';

/**
 * Exit code of the outer shell when the image lacks `script`, `stty` or `tty`; it also prints
 * which one (and that `bsdutils`/`coreutils` provide them) on stderr, and makes no start report.
 */
export const ptyToolsExit = 125;

/** `env` with `TERM` defaulting to {@link defaultPtyTerm}: pass the exec's whole environment. */
export function ptyEnvironment(env: Readonly<Record<string, string>> = {}): Record<string, string> {
  return { TERM: defaultPtyTerm, ...env };
}

/**
 * Validates a terminal size (`ExecOptions.pty`, `SandboxProcess.resize`). Throws
 * `SandboxInvalidArgumentError` (argument `pty.cols` or `pty.rows`, or `pty` for a non-object).
 */
export function checkPtySize(size: unknown, provider?: string): PtySize {
  const result = ptySizeSchema.safeParse(size);
  if (result.success) return { cols: result.data.cols, rows: result.data.rows };
  const issue = result.error.issues[0]!;
  const argument = ['pty', ...issue.path.map(String)].join('.');
  const detail = issue.code === 'unrecognized_keys' ? `unknown option(s) ${issue.keys.join(', ')}` : issue.message;
  throw new SandboxInvalidArgumentError({ message: `Invalid pty size: ${detail}`, argument, provider, cause: result.error });
}

/** Quotes one argument for POSIX sh: single quotes keep every byte but `'`, which is spelled `'\''`. */
export function shellQuote(argument: string): string {
  return `'${argument.replaceAll("'", "'\\''")}'`;
}

/**
 * The outer shell, over the provider's pipes. Arguments: `$1` the exec id, `$2` the command line
 * `script` runs on the terminal. It carries the exec's marker (so the tree killer finds `script`
 * too), checks the tools, hides `SHELL` from `script` (which runs `$SHELL -c`; the command gets
 * it back) and waits rather than `exec`s, so that a kill of the tree ends this shell by the
 * signal itself: `script` would turn it into an exit code.
 */
export const ptyOuterScript = [
  `${execMarkerVariable}=$1; export ${execMarkerVariable}`,
  'for tool in script stty tty; do',
  `  command -v "$tool" >/dev/null 2>&1 || { echo "sandport: the sandbox image has no $tool, needed to run a command on a terminal (install util-linux's script from bsdutils, and coreutils)" >&2; exit ${ptyToolsExit}; }`,
  'done',
  'if [ -n "${SHELL+x}" ]; then SANDPORT_PTY_SHELL=$SHELL; export SANDPORT_PTY_SHELL; unset SHELL; fi',
  // -q: no "Script started" lines; -e: the command's exit code; the typescript goes nowhere.
  'script -q -e -c "$2" /dev/null 2>/dev/null',
  'exit $?',
].join('\n');

/** Restores the caller's `SHELL` on the terminal, before the wrapper runs. */
const restoreShell = 'if [ -n "${SANDPORT_PTY_SHELL+x}" ]; then SHELL=$SANDPORT_PTY_SHELL; export SHELL; unset SANDPORT_PTY_SHELL; fi';

/** Options of {@link wrapPtyArgv}. */
export interface PtyWrapOptions {
  /** The terminal's initial size (validate it first: {@link checkPtySize}). */
  size: PtySize;
  /** The working directory, as for `wrapArgv`. @default the exec's own */
  cwd?: string | undefined;
  /**
   * Where the wrapper reports, as for `wrapArgv`. The report is written on the terminal, so on
   * fd 1 it arrives through the terminal (`\r\n`-terminated: `readStartMarker` accepts that);
   * another fd is passed through `script` untouched. @default 1
   */
  reportFd?: number;
}

/**
 * The argv that runs `argv` on a new terminal inside the sandbox, under the exec wrapper: run it
 * with pipes and the environment from {@link ptyEnvironment}, then read the start report with
 * `readStartMarker` (its `ptyPath` is the terminal, for {@link resizeArgv}). Every argument
 * reaches the command byte for byte. Pure.
 */
export function wrapPtyArgv(execId: string, argv: readonly string[], options: PtyWrapOptions): string[] {
  const { cols, rows } = options.size;
  const wrapped = wrapArgv(execId, argv, { cwd: options.cwd, reportFd: options.reportFd, pty: true });
  const onTerminal = `${restoreShell}; stty rows ${rows} cols ${cols} || exit ${ptyToolsExit}; exec ${wrapped.map(shellQuote).join(' ')}`;
  return ['/bin/sh', '-c', ptyOuterScript, 'sandport-pty', execId, onTerminal];
}

/**
 * The argv that resizes the terminal at `ptyPath` (the start report's `ptyPath`), to run as a
 * plain exec in the same sandbox; it exits non-zero when the terminal is gone. Only resize a
 * terminal whose command still runs: a path can be reused by a later terminal once it exited.
 */
export function resizeArgv(ptyPath: string, size: PtySize): string[] {
  return ['stty', '-F', ptyPath, 'rows', String(size.rows), 'cols', String(size.cols)];
}
