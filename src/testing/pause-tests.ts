import { SandboxNotFoundError, SandboxPausedError } from '../errors/index.js';
import type { Sandbox } from '../spec/sandbox.js';
import { eventually, sleep, type SuiteContext } from './context.js';

/**
 * A heartbeat in the background of the sandbox: every 0.1 s it appends `<count> <epoch seconds>`
 * to `log`, and it wrote its own pid to `pidFile` first. It is its own session, so it outlives
 * the exec that started it. The timestamps are the sandbox's own clock, never compared with the
 * host's (a cloud sandbox's clock may be off): only the gaps between two heartbeats are read.
 */
function heartbeatArgv(log: string, pidFile: string): string[] {
  const loop = `echo $$ > ${pidFile}; i=0; while :; do i=$((i + 1)); echo "$i $(date +%s)" >> ${log}; sleep 0.1; done`;
  return ['/bin/sh', '-c', `(setsid /bin/sh -c '${loop}' > /dev/null 2>&1 < /dev/null &); exit 0`];
}

interface Heartbeat {
  count: number;
  second: number;
}

async function readHeartbeats(sandbox: Sandbox, log: string): Promise<Heartbeat[]> {
  const text = await sandbox.files.readText(log);
  return text
    .split('\n')
    .filter((line) => /^\d+ \d+$/.test(line))
    .map((line) => {
      const [count, second] = line.split(' ').map(Number);
      return { count: count!, second: second! };
    });
}

/** How long the tests hold a sandbox paused, in ms: longer than the short timeouts they create. */
const pauseHoldMs = 3_000;

export function pauseTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  const caps = context.capabilities;
  const unsupported = caps.pause ? undefined : 'provider has no pause';
  describe('pause and resume', () => {
    context.test(
      'pause.processes-and-files',
      'a background process and a file survive pause and resume; the process stands still while paused',
      async () => {
        const sandbox = await context.create();
        const log = '/tmp/pause-heartbeat.log';
        const pidFile = '/tmp/pause-heartbeat.pid';
        await sandbox.files.write('/tmp/pause-file.txt', 'kept across the pause');
        await sandbox.run(heartbeatArgv(log, pidFile));
        expect(
          await eventually(async () => (await sandbox.files.exists(log)) && (await readHeartbeats(sandbox, log)).length >= 3, 30_000),
        ).toBe(true);
        const pid = (await sandbox.files.readText(pidFile)).trim();
        await sandbox.pause!();
        expect(await sandbox.poll()).toEqual({ state: 'paused' });
        await sleep(pauseHoldMs);
        expect(await sandbox.poll()).toEqual({ state: 'paused' });
        await sandbox.resume!();
        expect(await sandbox.poll()).toEqual({ state: 'running' });
        const atResume = (await readHeartbeats(sandbox, log)).length;
        // It makes progress after the resume: the same process (same pid, alive), counting on.
        expect(await eventually(async () => (await readHeartbeats(sandbox, log)).length > atResume + 2, 30_000)).toBe(true);
        expect((await sandbox.files.readText(pidFile)).trim()).toBe(pid);
        expect((await sandbox.run(['/bin/sh', '-c', `kill -0 ${pid} && echo alive`])).stdout).toBe('alive\n');
        const beats = await readHeartbeats(sandbox, log);
        // Never restarted: the counts run 1, 2, 3, ... without a reset or a hole.
        expect(beats.every((beat, index) => beat.count === index + 1)).toBe(true);
        // It stood still while paused: a running loop beats every 0.1 s, so a gap of seconds
        // between two consecutive beats is the pause (the sandbox's own clock, whole seconds).
        const widestGap = Math.max(...beats.slice(1).map((beat, index) => beat.second - beats[index]!.second));
        expect(widestGap, 'the widest gap between two heartbeats, in seconds').toBeGreaterThanOrEqual(Math.floor(pauseHoldMs / 1000) - 1);
        expect(await sandbox.files.readText('/tmp/pause-file.txt')).toBe('kept across the pause');
        await sandbox.terminate();
      },
      unsupported,
      { minTimeoutMs: 180_000 },
    );

    context.test(
      'pause.refused-while-paused',
      'while paused, exec, run, files and tunnels reject with SandboxPausedError; poll, wait and tags still work',
      async () => {
        const sandbox = await context.create(caps.tags ? { tags: { suite: context.runId, role: 'paused' } } : {});
        await sandbox.files.write('/tmp/before-pause.txt', 'x');
        await sandbox.pause!();
        expect(await sandbox.poll()).toEqual({ state: 'paused' });
        const paused = async (promise: Promise<unknown>) => {
          const error = await context.expectError(promise, SandboxPausedError);
          expect(error.sandboxId).toBe(sandbox.id);
        };
        await paused(sandbox.exec(['true']));
        await paused(sandbox.run(['true']));
        await paused(sandbox.files.read('/tmp/before-pause.txt'));
        await paused(sandbox.files.readText('/tmp/before-pause.txt'));
        await paused(sandbox.files.write('/tmp/during-pause.txt', 'y'));
        await paused(sandbox.files.list('/tmp'));
        await paused(sandbox.files.exists('/tmp/before-pause.txt'));
        if (caps.tunnels) await paused(sandbox.tunnels());
        if (caps.tags) {
          expect(await sandbox.getTags()).toEqual({ suite: context.runId, role: 'paused' });
          await sandbox.setTags({ suite: context.runId, role: 'tagged-while-paused' });
          expect(await sandbox.getTags()).toEqual({ suite: context.runId, role: 'tagged-while-paused' });
        }
        // wait() neither resolves nor rejects because of the pause: only its own signal stops it.
        const controller = new AbortController();
        const waiting = sandbox.wait({ signal: controller.signal });
        const outcome = await Promise.race([
          waiting.then(
            () => 'settled',
            () => 'settled',
          ),
          sleep(500).then(() => 'waiting'),
        ]);
        expect(outcome).toBe('waiting');
        const reason = new Error('stop waiting');
        controller.abort(reason);
        expect(
          await waiting.then(
            () => 'resolved',
            (error: unknown) => error,
          ),
        ).toBe(reason);
        await sandbox.resume!();
        expect((await sandbox.run(['cat', '/tmp/before-pause.txt'])).stdout).toBe('x');
        expect(await sandbox.files.exists('/tmp/during-pause.txt')).toBe(false);
        await sandbox.terminate();
      },
      unsupported,
    );

    context.test(
      'pause.idempotent',
      'pause and resume are idempotent, and a sandbox can be paused again after a resume',
      async () => {
        const sandbox = await context.create();
        await sandbox.resume!();
        expect(await sandbox.poll()).toEqual({ state: 'running' });
        await sandbox.pause!();
        await sandbox.pause!();
        await Promise.all([sandbox.pause!(), sandbox.pause!()]);
        expect(await sandbox.poll()).toEqual({ state: 'paused' });
        await sandbox.resume!();
        await sandbox.resume!();
        expect(await sandbox.poll()).toEqual({ state: 'running' });
        expect((await sandbox.run(['echo', 'once'])).stdout).toBe('once\n');
        await sandbox.pause!();
        expect(await sandbox.poll()).toEqual({ state: 'paused' });
        await Promise.all([sandbox.resume!(), sandbox.resume!()]);
        expect((await sandbox.run(['echo', 'twice'])).stdout).toBe('twice\n');
        await sandbox.terminate();
      },
      unsupported,
    );

    context.test(
      'pause.exec-waits',
      "a running command's wait() and stdout wait across the pause and finish after the resume",
      async () => {
        const sandbox = await context.create();
        // Its stdin gates it, so nothing here depends on how long anything takes.
        const process = await sandbox.exec(['/bin/sh', '-c', 'echo started; read line; echo "got $line"; exit 7']);
        const reader = process.stdout.getReader();
        const first = await reader.read();
        expect(new TextDecoder().decode(first.value)).toBe('started\n');
        const exit = process.wait();
        const rest = (async () => {
          let text = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return text;
            text += new TextDecoder().decode(value);
          }
        })();
        await sandbox.pause!();
        const early = await Promise.race([
          exit.then(
            () => 'settled',
            () => 'settled',
          ),
          sleep(500).then(() => 'waiting'),
        ]);
        expect(early, 'wait() while paused').toBe('waiting');
        // A kill needs the sandbox to run, like everything else.
        await context.expectError(process.kill(), SandboxPausedError);
        await sandbox.resume!();
        const writer = process.stdin.getWriter();
        await writer.write(new TextEncoder().encode('go\n'));
        await writer.close();
        expect(await exit).toEqual({ exitCode: 7, signal: undefined });
        expect(await rest).toBe('got go\n');
        await sandbox.terminate();
      },
      unsupported ?? (context.capabilities.exec.streaming ? undefined : 'it reads output before the command exits (exec.streaming false)'),
    );

    context.test(
      'pause.idle-timeout',
      'a paused sandbox does not reach its idle timeout; after the resume the idle clock runs afresh',
      async () => {
        const sandbox = await context.create({ idleTimeoutMs: 1_500 });
        await sandbox.pause!();
        // Paused for twice the idle timeout: still there, and still paused.
        await sleep(pauseHoldMs);
        expect(await sandbox.poll()).toEqual({ state: 'paused' });
        await sandbox.resume!();
        expect((await sandbox.run(['echo', 'awake'])).stdout).toBe('awake\n');
        expect((await sandbox.wait()).reason).toBe('idle-timeout');
      },
      unsupported ?? (caps.timeouts.idle ? undefined : 'provider has no idle timeout'),
    );

    context.test(
      'pause.lifetime-kept',
      'a pause stops the lifetime clock: a sandbox paused past its deadline runs on after the resume, then its lifetime ends it',
      async () => {
        // The lifetime (6 s) is shorter than create + pause + hold together: had the clock run
        // while paused, the sandbox would be gone at the resume. What was left of it (a few
        // seconds, less the time pause() itself took) is kept, so it ends by its lifetime later.
        const sandbox = await context.create({ timeoutMs: 6_000 });
        await sandbox.pause!();
        await sleep(6_500);
        expect(await sandbox.poll()).toEqual({ state: 'paused' });
        await sandbox.resume!();
        expect((await sandbox.run(['echo', 'still here'])).stdout).toBe('still here\n');
        expect((await sandbox.wait()).reason).toBe('lifetime-timeout');
        await context.expectError(sandbox.run(['true']), SandboxNotFoundError);
      },
      unsupported ?? (caps.timeouts.lifetime ? undefined : 'provider has no lifetime timeout'),
    );

    context.test(
      'pause.terminate',
      'a paused sandbox can be terminated; pause and resume after the end are SandboxNotFoundError',
      async () => {
        const sandbox = await context.create();
        const process = await sandbox.exec(['sleep', '600']);
        await sandbox.pause!();
        const ended = sandbox.wait();
        await sandbox.terminate();
        expect(await ended).toEqual({ state: 'terminated', reason: 'terminated' });
        expect((await sandbox.poll()).state).toBe('terminated');
        await context.expectError(process.wait(), SandboxNotFoundError);
        await context.expectError(sandbox.pause!(), SandboxNotFoundError);
        await context.expectError(sandbox.resume!(), SandboxNotFoundError);
        await context.expectError(sandbox.run(['true']), SandboxNotFoundError);
        await context.expectError(context.provider.fromId(sandbox.id), SandboxNotFoundError);
      },
      unsupported,
    );

    context.test(
      'pause.lookup',
      'fromId finds a paused sandbox, which reports paused and can be resumed through it; list still shows it',
      async () => {
        const sandbox = await context.create(caps.tags ? { tags: { suite: context.runId, role: 'lookup-paused' } } : {});
        await sandbox.files.write('/tmp/marker', 'same sandbox');
        await sandbox.pause!();
        const found = await context.provider.fromId(sandbox.id);
        expect(found.id).toBe(sandbox.id);
        expect(await found.poll()).toEqual({ state: 'paused' });
        if (caps.list && caps.tags) {
          const listed = await context.provider.list!({ tags: { suite: context.runId, role: 'lookup-paused' } });
          expect(listed.map((info) => info.id)).toEqual([sandbox.id]);
        }
        await context.expectError(found.run(['true']), SandboxPausedError);
        await found.resume!();
        expect(await found.files.readText('/tmp/marker')).toBe('same sandbox');
        expect(await eventually(async () => (await sandbox.poll()).state === 'running', 10_000)).toBe(true);
        expect((await sandbox.run(['echo', 'resumed elsewhere'])).stdout).toBe('resumed elsewhere\n');
        await sandbox.terminate();
      },
      unsupported,
    );
  });
}
