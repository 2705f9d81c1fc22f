/**
 * Small sh programs run inside the sandbox. They run as the sandbox's own (capability-less)
 * root, inside its mount namespace, so every path resolves in the sandbox's view: a symlink
 * pointing at a host path reaches the sandbox's copy of that path, never the host's.
 */

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

/** Exit codes the file scripts use to say what went wrong. */
export const fileExit = { notFound: 44, isDirectory: 45, notDirectory: 48 } as const;

const missing = `[ -e "$1" ] || [ -L "$1" ] || exit ${fileExit.notFound}`;

export const fileScripts = {
  /** Prints a marker byte once the file is known to be readable, then the file. */
  // -e follows symlinks: a dangling link (one pointing at a host-only path, say) is not found.
  read: `[ -e "$1" ] || exit ${fileExit.notFound}; [ -d "$1" ] && exit ${fileExit.isDirectory}; [ -r "$1" ] || { cat -- "$1"; exit 1; }; printf R; exec cat -- "$1"`,
  write: `dir=$(dirname -- "$1"); mkdir -p -- "$dir" || exit 1; [ -d "$1" ] && exit ${fileExit.isDirectory}; cat > "$1" || exit 1; if [ -n "$2" ]; then chmod -- "$2" "$1" || exit 1; fi`,
  stat: `${missing}; find "$1" -maxdepth 0 -printf '%y\\0%s\\0%m\\0%T@\\0%l\\0%p\\0'`,
  list: `[ -d "$1" ] || { [ -e "$1" ] && exit ${fileExit.notDirectory}; exit ${fileExit.notFound}; }; find -H "$1" -mindepth 1 -maxdepth 1 -printf '%y\\0%s\\0%m\\0%T@\\0%l\\0%p\\0'`,
  exists: '[ -e "$1" ] || [ -L "$1" ]',
  mkdir: 'mkdir -p -- "$1"',
  remove: `${missing}; if [ -d "$1" ] && [ ! -L "$1" ]; then if [ "$2" = recursive ]; then rm -rf -- "$1"; else rmdir -- "$1"; fi; else rm -f -- "$1"; fi`,
} as const;
