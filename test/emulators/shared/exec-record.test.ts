import { describe, expect, it } from 'vitest';
import type { SandboxProcess } from '../../../src/kit/index.js';
import { ExecRecord } from './exec-record.js';
import { OutputPipe } from './output-pipe.js';

function sink(): { stream: WritableStream<Uint8Array>; text: () => string; closed: () => boolean } {
  let received = '';
  let closed = false;
  const decoder = new TextDecoder();
  const stream = new WritableStream<Uint8Array>({
    write: (chunk) => void (received += decoder.decode(chunk)),
    close: () => void (closed = true),
  });
  return { stream, text: () => received, closed: () => closed };
}

const bytes = (value: string) => new TextEncoder().encode(value);

describe('ExecRecord', () => {
  it('writes stdin by offset: a retried write is not written twice, EOF closes stdin once', async () => {
    const stdin = sink();
    const record = new ExecRecord({
      stdout: new OutputPipe(),
      stderr: new OutputPipe(),
      exited: new Promise(() => undefined),
      stdin: stdin.stream,
    });
    await record.writeStdin(0, bytes('hello'), false);
    await record.writeStdin(0, bytes('hello'), false); // the client retried
    await record.writeStdin(3, bytes('lo world'), false); // overlaps what was written
    await record.writeStdin(11, new Uint8Array(), true);
    await record.writeStdin(11, bytes('late'), true); // after EOF: dropped
    expect(stdin.text()).toBe('hello world');
    expect(stdin.closed()).toBe(true);
    expect(record.stdinStatus).toEqual({ numBytesWritten: 11, closed: true });
  });

  it('a finished record has its output and exit at once, and stdin closed', async () => {
    const record = ExecRecord.finished(bytes('out'), bytes('err'), 3);
    expect(new TextDecoder().decode((await record.stdout.take(0))!)).toBe('out');
    expect(new TextDecoder().decode((await record.stderr.take(0))!)).toBe('err');
    expect(await record.exited).toEqual({ code: 3 });
    expect(record.exit).toEqual({ code: 3 });
    expect(record.stdinStatus.closed).toBe(true);
  });

  it('reports a signal by number and a lost sandbox as gone', async () => {
    const fake = (wait: () => Promise<{ exitCode: number; signal?: string }>): SandboxProcess =>
      ({ stdout: new Blob([]).stream(), stderr: new Blob([]).stream(), stdin: new WritableStream(), wait }) as unknown as SandboxProcess;
    const killed = ExecRecord.running(
      fake(async () => ({ exitCode: 137, signal: 'SIGKILL' })),
      { stdout: true, stderr: true },
    );
    expect(await killed.exited).toEqual({ signal: 9 });
    const lost = ExecRecord.running(
      fake(() => Promise.reject(new Error('sandbox ended'))),
      { stdout: false, stderr: false },
    );
    expect(await lost.exited).toEqual({ gone: 'sandbox ended' });
  });
});
