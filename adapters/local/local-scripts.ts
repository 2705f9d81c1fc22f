/** Small sh programs around every exec of the local provider. */

/** Joins the exec's cgroups (args up to `--`), then execs the rest. Runs on the host. */
export const cgroupTrampoline = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"';

/**
 * Inside the sandbox: enter the working directory and check the program exists before exec, so
 * that these mistakes are typed errors of `exec()` instead of exit codes. Reports on fd 3,
 * which it closes before the program starts.
 */
export const execWrapper = [
  'cd -- "$1" 2>/dev/null || { echo cwd >&3; exit 126; }',
  'shift',
  'case "$1" in */*) [ -f "$1" ] && [ -x "$1" ] ;; *) command -v -- "$1" >/dev/null 2>&1 ;; esac || { echo command >&3; exit 127; }',
  'echo ok >&3',
  'exec 3>&-',
  'exec "$@"',
].join('\n');
