/**
 * Readiness probes: `readinessProbe` at create (`Probe.withTcp(port)` / `Probe.withExec(argv)`)
 * and the router's `SandboxWaitUntilReady`, which `sb.waitUntilReady(timeoutMs)` calls.
 *
 * How the emulator differs from Modal (also in the README's emulator section):
 * - a TCP probe is ready once a socket LISTENs on the port in the sandbox's network namespace
 *   (read from /proc/net/tcp and tcp6 with `cat`), not once a connect succeeds;
 * - probes run as execs in the sandbox until the first success, and stop there; with the local
 *   provider an exec counts as activity, so probing holds off an idle timeout until then;
 * - a sandbox created without a probe answers FAILED_PRECONDITION naming the call; one that
 *   ends before it is ready answers NOT_FOUND. A wait that runs out answers DEADLINE_EXCEEDED,
 *   which the SDK retries until its own deadline and then raises as `TimeoutError`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import type { LocalSandbox } from '../../../adapters/local/index.js';
import { RpcError, type Json, type RpcHandlers } from './modal-rpc.js';
import type { EmulatedSandbox, ModalState } from './modal-state.js';

/** How long one SandboxWaitUntilReady call holds before it answers DEADLINE_EXCEEDED. */
const maxWaitMs = 50_000;

interface Readiness {
  /** Seconds since the epoch, once a probe succeeded. */
  readyAt?: number;
  readonly ready: Promise<number>;
}

const readinessOf = new WeakMap<EmulatedSandbox, Readiness>();

/** Starts probing `found` with the definition's probe, if it has one. Never throws. */
export function startReadinessProbe(found: EmulatedSandbox, probe: Json | null | undefined): void {
  const argv: string[] = probe?.execCommand?.argv ?? [];
  if (!probe || (!probe.tcpPort && argv.length === 0)) return;
  const intervalMs = Math.max(probe.intervalMs || 100, 10);
  let markReady!: (at: number) => void;
  const readiness: Readiness = { ready: new Promise<number>((resolve) => (markReady = resolve)) };
  readinessOf.set(found, readiness);
  void (async () => {
    while (!found.end) {
      const ok = await probeOnce(found.local, probe.tcpPort, argv).catch(() => false);
      if (ok) {
        readiness.readyAt = Date.now() / 1000;
        markReady(readiness.readyAt);
        return;
      }
      await Promise.race([sleep(intervalMs), found.ended]);
    }
  })();
}

async function probeOnce(local: LocalSandbox, tcpPort: number, argv: string[]): Promise<boolean> {
  if (tcpPort) {
    const result = await local.run(['cat', '/proc/net/tcp', '/proc/net/tcp6']);
    return listensOn(result.stdout, tcpPort);
  }
  return (await local.run(argv)).exitCode === 0;
}

/** Whether a /proc/net/tcp table has a socket in state LISTEN (0A) on `port`. */
function listensOn(table: string, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return table.split('\n').some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A';
  });
}

export function probeHandlers(state: ModalState): Pick<RpcHandlers, 'sandboxWaitUntilReady'> {
  return {
    async sandboxWaitUntilReady(request) {
      const found = state.runningTask(request.taskId);
      const readiness = readinessOf.get(found);
      if (!readiness) {
        throw new RpcError(
          grpc.status.FAILED_PRECONDITION,
          'SandboxWaitUntilReady: the sandbox was created without a readinessProbe (pass Probe.withTcp or Probe.withExec to sandboxes.create)',
        );
      }
      if (readiness.readyAt !== undefined) return { readyAt: readiness.readyAt };
      const waitMs = Math.min(Math.max(Number(request.timeout) || 0, 0) * 1000, maxWaitMs);
      const cancel = new AbortController();
      const outcome = await Promise.race([
        readiness.ready.then((readyAt) => ({ readyAt })),
        found.ended.then(() => 'ended' as const),
        sleep(waitMs, 'timeout' as const, { signal: cancel.signal }).catch(() => 'timeout' as const),
      ]);
      cancel.abort();
      if (outcome === 'ended')
        throw new RpcError(grpc.status.NOT_FOUND, `SandboxWaitUntilReady: sandbox ${found.id} ended before it was ready`);
      if (outcome === 'timeout')
        throw new RpcError(grpc.status.DEADLINE_EXCEEDED, 'SandboxWaitUntilReady: the readiness probe has not succeeded yet');
      return outcome;
    },
  };
}
