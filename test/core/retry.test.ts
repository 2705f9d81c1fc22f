import { describe, expect, it } from 'vitest';
import { SandboxEmitter, SandboxNotFoundError, SandboxProviderError, retryIdempotent } from '../../src/kit/index.js';

describe('retryIdempotent', () => {
  it('retries retryable errors and reports each retry', async () => {
    const events = new SandboxEmitter();
    const seen: number[] = [];
    events.on('retry', (event) => seen.push(event.attempt));
    let calls = 0;
    const value = await retryIdempotent(
      'getTags',
      async () => {
        calls++;
        if (calls < 3) throw new SandboxProviderError({ message: '503', retryable: true, statusCode: 503 });
        return 'ok';
      },
      { provider: 'test', events },
    );
    expect(value).toBe('ok');
    expect(calls).toBe(3);
    expect(seen).toEqual([1, 2]);
  });

  it('does not retry errors that are not retryable', async () => {
    let calls = 0;
    await expect(
      retryIdempotent(
        'fromId',
        async () => {
          calls++;
          throw new SandboxNotFoundError({ message: 'gone' });
        },
        { provider: 'test' },
      ),
    ).rejects.toThrow('gone');
    expect(calls).toBe(1);
  });

  it('stops when the signal aborts', async () => {
    const controller = new AbortController();
    const reason = new Error('stopped');
    let calls = 0;
    const failing = retryIdempotent(
      'poll',
      async () => {
        calls++;
        controller.abort(reason);
        throw new SandboxProviderError({ message: 'flaky', retryable: true });
      },
      { provider: 'test', signal: controller.signal },
    );
    // The contract: an abort rejects with `signal.reason` itself, not with the call's last error.
    await expect(failing).rejects.toBe(reason);
    expect(calls).toBe(1);
  });
});
