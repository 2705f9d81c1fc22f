import type { SandboxEvents } from '../spec/events.js';
import { eventually, type SuiteContext } from './context.js';

type EventName = 'sandbox-created' | 'sandbox-terminated' | 'exec-start' | 'exec-end';
type Recorded = { [Name in EventName]: Array<SandboxEvents[Name][0]> };

/** How long an event may trail the call that caused it (events are emitted as things happen). */
const eventDelayMs = 10_000;

/** Records the lifecycle and exec events of `provider.events` from now until `stop()`. */
function record(context: SuiteContext): Recorded & { stop(): void } {
  const events = context.provider.events;
  const recorded: Recorded = { 'sandbox-created': [], 'sandbox-terminated': [], 'exec-start': [], 'exec-end': [] };
  const onCreated = (event: Recorded['sandbox-created'][number]) => recorded['sandbox-created'].push(event);
  const onTerminated = (event: Recorded['sandbox-terminated'][number]) => recorded['sandbox-terminated'].push(event);
  const onStart = (event: Recorded['exec-start'][number]) => recorded['exec-start'].push(event);
  const onEnd = (event: Recorded['exec-end'][number]) => recorded['exec-end'].push(event);
  events.on('sandbox-created', onCreated).on('sandbox-terminated', onTerminated).on('exec-start', onStart).on('exec-end', onEnd);
  return {
    ...recorded,
    stop() {
      events.off('sandbox-created', onCreated).off('sandbox-terminated', onTerminated).off('exec-start', onStart).off('exec-end', onEnd);
    },
  };
}

export function eventsTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  const caps = context.capabilities;
  describe('events', () => {
    context.test('events.create-terminate', 'sandbox-created and sandbox-terminated fire once per sandbox, with its id', async () => {
      const events = record(context);
      try {
        const sandbox = await context.create();
        const created = () => events['sandbox-created'].filter((event) => event.sandboxId === sandbox.id);
        expect(await eventually(() => created().length > 0, eventDelayMs)).toBe(true);
        await sandbox.terminate();
        await sandbox.terminate();
        await sandbox.wait();
        const terminated = () => events['sandbox-terminated'].filter((event) => event.sandboxId === sandbox.id);
        expect(await eventually(() => terminated().length > 0, eventDelayMs)).toBe(true);
        expect(created()).toHaveLength(1);
        expect(created()[0]!.provider).toBe(context.provider.id);
        expect(terminated()).toHaveLength(1);
        expect(terminated()[0]!.reason).toBe('terminated');
        expect(terminated()[0]!.provider).toBe(context.provider.id);
      } finally {
        events.stop();
      }
    });

    context.test(
      'events.lifetime-terminated',
      'sandbox-terminated fires once when the lifetime timeout ends the sandbox',
      async () => {
        const events = record(context);
        try {
          const sandbox = await context.create({ timeoutMs: 2_000 });
          expect((await sandbox.wait()).reason).toBe('lifetime-timeout');
          const terminated = () => events['sandbox-terminated'].filter((event) => event.sandboxId === sandbox.id);
          expect(await eventually(() => terminated().length > 0, eventDelayMs), 'no sandbox-terminated after the lifetime ended').toBe(
            true,
          );
          // A terminate after the end is a no-op and must not report a second end.
          await sandbox.terminate();
          expect(terminated()).toHaveLength(1);
          expect(terminated()[0]!.reason).toBe('lifetime-timeout');
        } finally {
          events.stop();
        }
      },
      caps.timeouts.lifetime ? undefined : 'provider has no lifetime timeout',
    );

    context.test('events.exec', 'exec-start and exec-end fire once per exec, with the same execId and the exit code', async () => {
      const events = record(context);
      try {
        const sandbox = await context.create();
        // Unique markers find our commands among any the adapter runs for itself (file operations).
        const marker = `events-${context.runId}`;
        const commands = [
          { command: ['/bin/sh', '-c', 'exit 3', `${marker}-argv`], exitCode: 3, run: true },
          { command: `exit 0 # ${marker}-string`, exitCode: 0, run: true },
          { command: ['/bin/sh', '-c', 'exit 5', `${marker}-exec`], exitCode: 5, run: false },
        ];
        for (const { command, run } of commands) {
          if (run) await sandbox.run(command);
          else await (await sandbox.exec(command)).wait();
        }
        for (const { command, exitCode } of commands) {
          const tag = JSON.stringify(command);
          const starts = events['exec-start'].filter((event) => event.sandboxId === sandbox.id && JSON.stringify(event.command) === tag);
          expect(starts, `exec-start of ${tag}`).toHaveLength(1);
          const execId = starts[0]!.execId;
          expect(typeof execId).toBe('string');
          const ends = () => events['exec-end'].filter((event) => event.execId === execId);
          expect(await eventually(() => ends().length > 0, eventDelayMs), `no exec-end for ${tag}`).toBe(true);
          expect(ends()).toHaveLength(1);
          expect(ends()[0]!.sandboxId).toBe(sandbox.id);
          expect(ends()[0]!.exitCode).toBe(exitCode);
        }
        const ids = events['exec-start'].filter((event) => event.sandboxId === sandbox.id).map((event) => event.execId);
        expect(new Set(ids).size, 'every exec has its own execId').toBe(ids.length);
        await sandbox.terminate();
      } finally {
        events.stop();
      }
    });
  });
}
