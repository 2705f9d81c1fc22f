/**
 * How a Kubernetes exec that fails without an exit status is reported: as the sandbox's end
 * when its pod is seen ending within the grace (`settleEnd`), which is what happens when a
 * command runs while the entrypoint exits and takes the pod with it; as a provider failure
 * otherwise. The session is a stand-in for the exec client's (its streams and Status promise).
 */
import { describe, expect, it } from 'vitest';
import type { ExecSession, KubernetesConnection } from '../../adapters/kubernetes/kubernetes-exec-client.js';
import { KubernetesSandboxProcess, type KubernetesExecContext } from '../../adapters/kubernetes/kubernetes-process.js';
import { ProcessOutcome, SandboxEmitter, SandboxLifecycle, SandboxNotFoundError, SandboxProviderError } from '../../src/kit/index.js';

/** A process whose exec ends with `status`; `settleEnd` is the sandbox's, here a stand-in. */
function failingExec(settleEnd: (lifecycle: SandboxLifecycle) => Promise<void>) {
  const events = new SandboxEmitter();
  const lifecycle = new SandboxLifecycle({ provider: 'kubernetes', sandboxId: 'sbx-1', events, teardown: async () => undefined });
  const context: KubernetesExecContext = {
    connection: {} as KubernetesConnection,
    namespace: 'default',
    pod: 'sbx-1',
    lifecycle,
    events,
    workdir: undefined,
    settleEnd: () => settleEnd(lifecycle),
  };
  const outcome = new ProcessOutcome({
    provider: 'kubernetes',
    sandboxId: 'sbx-1',
    events,
    command: ['sh', '-c', 'echo hi > /tmp/x'],
    lifecycle,
    kill: async () => undefined,
  });
  const empty = () => new ReadableStream<Uint8Array>({ start: (controller) => controller.close() });
  const session: ExecSession = {
    stdin: new WritableStream<Uint8Array>(),
    stdout: empty(),
    stderr: empty(),
    status: Promise.resolve({
      status: 'Failure',
      reason: 'InternalError',
      message: 'error executing command in container: the container is not running',
    }),
    close: () => undefined,
    drain: () => undefined,
  } as unknown as ExecSession;
  const process = new KubernetesSandboxProcess(context, outcome, session, session.stdout);
  outcome.started();
  return { process, lifecycle };
}

describe('a Kubernetes exec that fails without an exit status', () => {
  it('is the sandbox ending when the pod is seen ended meanwhile: SandboxNotFoundError', async () => {
    const { process, lifecycle } = failingExec(async (state) => {
      await state.end({ state: 'terminated', reason: 'entrypoint-exited', exitCode: 0 });
    });
    await expect(process.wait()).rejects.toSatisfy((error) => SandboxNotFoundError.isInstance(error));
    expect(lifecycle.isRunning()).toBe(false);
  });

  it('is a provider failure naming the Status when the pod keeps running', async () => {
    const { process, lifecycle } = failingExec(async () => undefined);
    const error = await process.wait().catch((caught: unknown) => caught);
    expect(SandboxProviderError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain('the container is not running');
    expect(lifecycle.isRunning()).toBe(true);
    await lifecycle.end({ state: 'terminated', reason: 'terminated' });
  });
});
