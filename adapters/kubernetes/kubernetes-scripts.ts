/**
 * The shell programs sandport runs inside a pod: the deadline keeper (the container's PID 1),
 * the prelude every exec runs under (secrets, then the exec's own environment, which Kubernetes'
 * exec has no field for), the entrypoint notifier, the network enforcement probe and the deadline
 * mover of `extendTimeout`.
 */
import { wrapArgv } from '../../src/kit/index.js';

/** Where the keeper keeps its state in the pod (the deadline, its pid, the entrypoint's exit). */
export const kubernetesStateDirectory = '/tmp/.sandport';
/** Where the sandbox's Secret is mounted (read-only, mode 0400). */
export const kubernetesSecretsDirectory = '/.sandport/secrets';
/** The key of the Secret that holds the secrets as sh `export` lines. */
export const kubernetesSecretsKey = 'env.sh';

const deadlineFile = `${kubernetesStateDirectory}/deadline`;

/**
 * PID 1 of the container: sleeps until the deadline (epoch seconds, `$0` at start, then the file
 * `extendTimeout` rewrites), then exits 0, which ends the pod by itself even when the creating
 * process is gone. `$1` is the working directory to create first (empty: none). PID 1 has no
 * default signal actions, so TERM is trapped to let the kubelet stop it; USR1 is the entrypoint
 * notifier saying its command ended: the keeper exits with that command's status.
 */
export const kubernetesKeeperScript = [
  `mkdir -p ${kubernetesStateDirectory} && echo "$0" > ${deadlineFile} && echo $$ > ${kubernetesStateDirectory}/keeper.pid || exit 1`,
  'if [ -n "$1" ]; then mkdir -p -- "$1" || exit 1; fi',
  `trap 'exit "$(cat ${kubernetesStateDirectory}/entrypoint-exit 2>/dev/null || echo 0)"' USR1`,
  "trap 'exit 143' TERM",
  'while :; do',
  `  d=$(cat ${deadlineFile} 2>/dev/null); case "$d" in ''|*[!0-9]*) d=0 ;; esac`,
  '  now=$(date +%s); [ "$now" -ge "$d" ] && exit 0',
  '  left=$((d - now)); [ "$left" -gt 5 ] && left=5',
  // In the background, so that the traps run at once instead of after the sleep.
  '  sleep "$left" & wait $!',
  'done',
].join('\n');

/** The container's `command`: the keeper, with the deadline (epoch seconds) and the workdir. */
export function kubernetesKeeperCommand(deadlineSeconds: number, workdir: string | undefined): string[] {
  return ['/bin/sh', '-c', kubernetesKeeperScript, String(deadlineSeconds), workdir ?? ''];
}

/**
 * Runs before the kit's wrapper in every exec: sources the mounted secrets, then exports the
 * exec's own variables (`$1` their count, then `NAME=value` words; names are validated by the
 * env schema), so that the exec's env wins over secrets, which win over the pod's env.
 */
export const kubernetesExecPrelude = [
  `if [ -r ${kubernetesSecretsDirectory}/${kubernetesSecretsKey} ]; then . ${kubernetesSecretsDirectory}/${kubernetesSecretsKey}; fi`,
  'sp_n=$1; shift',
  'while [ "$sp_n" -gt 0 ]; do export "$1"; shift; sp_n=$((sp_n - 1)); done',
  'unset sp_n',
].join('\n');

/**
 * Around the create `command` (itself under the wrapper): when it ends, its status goes to the
 * keeper, which exits with it, so the pod ends with the entrypoint even when the creating process
 * is gone. The notifier carries no exec marker, so killing the entrypoint's tree spares it.
 */
const entrypointNotifier = [
  '"$@"',
  'rc=$?',
  `echo "$rc" > ${kubernetesStateDirectory}/entrypoint-exit`,
  `kill -USR1 "$(cat ${kubernetesStateDirectory}/keeper.pid)" 2>/dev/null`,
  'exit "$rc"',
].join('\n');

export interface KubernetesExecArgvOptions {
  cwd?: string | undefined;
  env?: Readonly<Record<string, string>> | undefined;
  /** The create `command`: run under the notifier. */
  entrypoint?: boolean;
}

/**
 * The argv of one exec: the prelude, then the kit's wrapper (marker, cwd and program checks, the
 * report on stdout) in one shell, or an argv the kit already wrapped (`wrapped`, a terminal).
 */
export function kubernetesExecArgv(execId: string, argv: readonly string[], options: KubernetesExecArgvOptions = {}): string[] {
  return preludeAround(wrapArgv(execId, argv, { cwd: options.cwd }), options);
}

/** Puts the prelude (and the notifier for the entrypoint) in front of an already wrapped `/bin/sh -c` argv. */
export function preludeAround(wrapped: readonly string[], options: KubernetesExecArgvOptions = {}): string[] {
  const env = Object.entries(options.env ?? {}).map(([name, value]) => `${name}=${value}`);
  if (options.entrypoint) {
    return [
      '/bin/sh',
      '-c',
      `${kubernetesExecPrelude}\n${entrypointNotifier}`,
      'sandport-entrypoint',
      String(env.length),
      ...env,
      ...wrapped,
    ];
  }
  const [shell, flag, script, name, ...rest] = wrapped;
  return [shell!, flag!, `${kubernetesExecPrelude}\n${script!}`, name!, String(env.length), ...env, ...rest];
}

/** The Secret's one key: one `export NAME='value'` line per secret, single-quoted for sh. */
export function kubernetesSecretsScript(secrets: Readonly<Record<string, string>>): string {
  return Object.entries(secrets)
    .map(([name, value]) => `export ${name}='${value.replaceAll("'", "'\\''")}'\n`)
    .join('');
}

/**
 * Moves the keeper's deadline (`$1`, epoch seconds), atomically, and prints the one in force.
 * Never past `$2`, the hard cap the pod's `activeDeadlineSeconds` enforces anyway.
 */
export const kubernetesMoveDeadlineArgv = (deadlineSeconds: number, capSeconds: number): string[] => [
  '/bin/sh',
  '-c',
  `d=$1; [ "$d" -gt "$2" ] && d=$2; echo "$d" > ${deadlineFile}.new && mv -f ${deadlineFile}.new ${deadlineFile} && cat ${deadlineFile}`,
  'sandport-deadline',
  String(deadlineSeconds),
  String(capSeconds),
];

/** Prints the keeper's deadline (epoch seconds). */
export const kubernetesReadDeadlineArgv = ['/bin/sh', '-c', `cat ${deadlineFile}`];

/** Exit codes of the enforcement probe. */
export const kubernetesProbeExit = { blocked: 0, reached: 3, noTool: 4 } as const;

/**
 * The NetworkPolicy enforcement probe: tries to open a TCP connection from inside the pod to
 * the API server's in-cluster address (`KUBERNETES_SERVICE_HOST`/`_PORT`, else `$1`:`$2`), which
 * every pod reaches when no policy is enforced,
 * with the first tool the image has (bash's /dev/tcp, nc, python3, node, perl). Exits
 * `reached` when it connects (the policy is not enforced), `blocked` when it cannot, `noTool`
 * when the image has none of the tools (the caller fails closed).
 */
export const kubernetesProbeScript = [
  // The kubelet gives every pod the API server's service address, service links or not.
  'host=${KUBERNETES_SERVICE_HOST:-$1}; port=${KUBERNETES_SERVICE_PORT:-$2}',
  `if command -v bash >/dev/null 2>&1; then timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null && exit ${kubernetesProbeExit.reached}; exit ${kubernetesProbeExit.blocked}; fi`,
  `if command -v python3 >/dev/null 2>&1; then python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)' "$host" "$port" 2>/dev/null && exit ${kubernetesProbeExit.reached}; exit ${kubernetesProbeExit.blocked}; fi`,
  `if command -v node >/dev/null 2>&1; then node -e 'const s=require("net").connect(+process.argv[2],process.argv[1],()=>process.exit(0));s.on("error",()=>process.exit(1));setTimeout(()=>process.exit(1),5000)' "$host" "$port" 2>/dev/null && exit ${kubernetesProbeExit.reached}; exit ${kubernetesProbeExit.blocked}; fi`,
  `if command -v nc >/dev/null 2>&1; then nc -z -w 5 "$host" "$port" 2>/dev/null && exit ${kubernetesProbeExit.reached}; exit ${kubernetesProbeExit.blocked}; fi`,
  `exit ${kubernetesProbeExit.noTool}`,
].join('\n');

/** The probe's argv for a target. */
export function kubernetesProbeArgv(host: string, port: number): string[] {
  return ['/bin/sh', '-c', kubernetesProbeScript, 'sandport-probe', host, String(port)];
}
