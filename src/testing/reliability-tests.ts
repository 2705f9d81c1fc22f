import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandboxError, SandboxInvalidArgumentError, SandboxNotFoundError } from '../errors/index.js';
import type { ExitStatus, SandboxProcess } from '../spec/sandbox.js';
import { readText } from '../streams/index.js';
import { eventually, sandboxProcesses, sleep, type SuiteContext } from './context.js';
import { MemoryGrowth, expectBoundedGrowth } from './memory.js';

/**
 * Faults and bad input that must end in a typed error, a bounded wait or bounded memory, never in a
 * hang, an early end, a raw error or input accepted by mistake (issue 18). Every wait on the
 * provider is raced against a generous timer, so a regression fails a test instead of hanging the run.
 */
export function reliabilityTests(context: SuiteContext): void {
  const { describe, expect } = context.options;
  const { capabilities } = context;
  const MiB = 1024 * 1024;

  /** Rejects invalid input for a test: the value is deliberately outside the declared types. */
  // biome-ignore lint/suspicious/noExplicitAny: bad input the types forbid, to test the runtime checks
  const bad = (value: unknown): any => value;

  /** A call whose synchronous throw counts as a rejection (the sync-throw defect has its own test). */
  const attempt = <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return Promise.resolve(call());
    } catch (error) {
      return Promise.reject(error);
    }
  };

  const expectInvalid = async (promise: Promise<unknown>, argument?: string) => {
    const error = await context.expectError(promise, SandboxInvalidArgumentError);
    if (argument !== undefined && !error.argument.startsWith(argument) && !error.message.includes(argument)) {
      throw new Error(`expected the error to name "${argument}", got argument "${error.argument}": ${error.message}`);
    }
    return error;
  };

  /** Like `context.test`, with a longer time limit, for tests made of many bounded rounds. */
  const longTest = (id: string, title: string, body: () => Promise<void>, timeoutMs: number, unsupportedReason?: string) =>
    context.test(id, title, body, unsupportedReason, { minTimeoutMs: timeoutMs });
  /** How long an aborted call may take to settle: generous next to the milliseconds it needs. */
  const abortSettleMs = 8_000;

  /** Sandboxes carrying a tag, by id; a `list` that never answers fails the test instead of hanging it. */
  const listedWith = async (tags: Record<string, string>) =>
    (await within(context.provider.list!({ tags }), 15_000, 'list')).map((info) => info.id);

  describe('reliability', () => {
    // Outlives the longest test here, even at a provider's default lifetime of a few minutes.
    const sandbox = context.sharedSandbox(
      capabilities.timeouts.lifetime ? { timeoutMs: Math.min(capabilities.timeouts.maxLifetimeMs, 60 * 60_000) } : {},
    );

    describe('timers beyond 2^31-1 ms never end anything early', () => {
      context.test(
        'reliability.idle-timeout-overflow',
        'create({ idleTimeoutMs: 2**31 }) is an invalid argument or keeps the sandbox running',
        async () => {
          const outcome = await settle(attempt(() => context.create({ idleTimeoutMs: 2 ** 31 })));
          if (!outcome.ok) {
            await expectInvalid(Promise.reject(outcome.error), 'idleTimeoutMs');
            return;
          }
          await sleep(3_000); // the overflow ended it after about a second
          expect(await outcome.value.poll()).toEqual({ state: 'running' });
          expect((await within(outcome.value.run(['true']), 30_000, 'run')).exitCode).toBe(0);
          await outcome.value.terminate();
        },
        capabilities.timeouts.idle ? undefined : 'provider has no idle timeout',
      );

      context.test(
        'reliability.run-timeout-overflow',
        'run(cmd, { timeoutMs: 2**31 }) is an invalid argument or lets the command complete',
        async () => {
          const outcome = await settle(attempt(() => sandbox().run(['sleep', '2'], { timeoutMs: 2 ** 31 })));
          if (!outcome.ok) {
            await expectInvalid(Promise.reject(outcome.error), 'timeoutMs');
            return;
          }
          expect(outcome.value.exitCode).toBe(0);
        },
      );

      context.test(
        'reliability.extend-timeout-overflow',
        'extendTimeout(3e9) is an invalid argument or keeps the sandbox running',
        async () => {
          const extended = await context.create({ timeoutMs: 60_000 });
          const outcome = await settle(attempt(() => extended.extendTimeout!(3e9)));
          if (!outcome.ok) {
            await expectInvalid(Promise.reject(outcome.error), 'timeoutMs');
          } else {
            await sleep(2_500); // the overflow ended it at once
          }
          expect(await extended.poll()).toEqual({ state: 'running' });
          expect((await within(extended.run(['true']), 30_000, 'run')).exitCode).toBe(0);
          await extended.terminate();
        },
        capabilities.extendTimeout ? undefined : 'provider cannot extend the lifetime',
      );
    });

    describe('unknown option keys are rejected', () => {
      const hostVolumes = capabilities.volumes === 'host-path' || capabilities.volumes === 'host-path-or-named';
      context.test(
        'reliability.volume-unknown-key',
        'a misspelt volume key (readonly for readOnly) is SandboxInvalidArgumentError, never a read-write mount',
        async () => {
          const source = mkdtempSync(join(tmpdir(), 'sandport-suite-volume-'));
          // Writable by any sandbox user, so that only the misspelt key can make the create fail.
          chmodSync(source, 0o777);
          try {
            const outcome = await settle(attempt(() => context.create({ volumes: { '/mnt/v': bad({ source, readonly: true }) } })));
            if (outcome.ok) await outcome.value.terminate();
            await expectInvalid(outcome.ok ? Promise.resolve('accepted') : Promise.reject(outcome.error), 'volumes');
          } finally {
            rmSync(source, { recursive: true, force: true });
          }
        },
        hostVolumes ? undefined : 'provider has no host-path volumes',
      );

      context.test(
        'reliability.unknown-keys',
        'an unknown key in exec, run, create, list, port and network options is SandboxInvalidArgumentError',
        async () => {
          const cases = new Cases();
          await cases.check('exec options', () => expectInvalid(attempt(() => sandbox().exec(['true'], bad({ bogus: 1 })))));
          await cases.check('run options', () => expectInvalid(attempt(() => sandbox().run(['true'], bad({ bogus: 1 })))));
          await cases.check('create options', () => expectInvalid(attempt(() => context.create(bad({ bogus: 1 })))));
          if (context.provider.list) {
            await cases.check('list options', () => expectInvalid(attempt(() => context.provider.list!(bad({ bogus: 1 })))));
          }
          await cases.check('a port object', () =>
            expectInvalid(
              attempt(() => context.create({ ports: [bad({ port: 8080, bogus: true })] })),
              'ports',
            ),
          );
          await cases.check('a network object', () =>
            expectInvalid(
              attempt(() => context.create({ network: bad({ allowCidrs: ['10.0.0.0/8'], bogus: true }) })),
              'network',
            ),
          );
          expect(cases.failures).toEqual([]);
        },
      );
    });

    const streamMiB = Math.max(256, context.options.scale?.largeFileMiB ?? 1024);
    longTest(
      'reliability.streamed-write-memory',
      `a ${streamMiB} MiB write from a generator-backed stream keeps host memory bounded (< 64 MiB growth)`,
      async () => {
        // Sampled after full collections (MemoryGrowth): slices already written are garbage that
        // every measure counts until the collector runs; what is still held after a collection is
        // what the write buffers.
        const growth = new MemoryGrowth();
        const sample = (index: number) => {
          if (index % 4 === 0) growth.sample();
        };
        await within(
          sandbox().files.write('/tmp/generated.bin', generatedStream(streamMiB * MiB, { onChunk: sample })),
          240_000,
          'the streamed write',
        );
        expect((await sandbox().files.stat('/tmp/generated.bin')).size).toBe(streamMiB * MiB);
        await sandbox().files.remove('/tmp/generated.bin');
        expectBoundedGrowth(growth, `writing ${streamMiB} MiB`);
      },
      300_000,
    );

    describe('early aborts reject with signal.reason', () => {
      const delays = ['sync', 0, 1, 5] as const;
      /** Aborts `delay` after `start` is called, and checks how the call ended. */
      const abortEarly = async <T>(
        label: string,
        delay: (typeof delays)[number] | number,
        start: (signal: AbortSignal) => Promise<T>,
        afterResolve?: (value: T, reason: unknown, abortedFirst: boolean) => Promise<void>,
      ) => {
        const controller = new AbortController();
        const reason = new Error(`early abort: ${label} after ${delay}`);
        const call = attempt(() => start(controller.signal));
        if (delay === 'sync') controller.abort(reason);
        else setTimeout(() => controller.abort(reason), delay);
        const outcome = await within(settleNoting(call, controller.signal), abortSettleMs, label);
        if (!controller.signal.aborted) controller.abort(reason);
        if (outcome.ok) {
          if (afterResolve) return afterResolve(outcome.value, reason, outcome.abortedFirst);
          if (outcome.abortedFirst) throw new Error(`${label}: resolved after its signal fired (${delay} ms)`);
          return;
        }
        if (outcome.error !== reason)
          throw new Error(`${label} (${delay} ms): rejected with ${describeError(outcome.error)}, not signal.reason`);
      };

      context.test(
        'reliability.early-abort-exec',
        'exec and run aborted 0, 1 and 5 ms after the call reject with exactly signal.reason',
        async () => {
          const cases = new Cases();
          for (const delay of delays) {
            await cases.check(`exec ${delay}`, () =>
              abortEarly(
                'exec',
                delay,
                (signal) => sandbox().exec(['sleep', '30'], { signal }),
                async (started: SandboxProcess, reason) => {
                  // Started before the abort: the command itself must end with the reason.
                  void started.stdout.cancel().catch(() => undefined);
                  void started.stderr.cancel().catch(() => undefined);
                  const exit: Settled<ExitStatus> = await settle(within(started.wait(), abortSettleMs, 'wait after an aborted exec'));
                  await started.kill().catch(() => undefined);
                  if (exit.ok) throw new Error(`exec ${delay}: the command ran to exit ${exit.value.exitCode} although its signal fired`);
                  if (exit.error !== reason)
                    throw new Error(`exec ${delay}: wait rejected with ${describeError(exit.error)}, not signal.reason`);
                },
              ),
            );
            await cases.check(`run ${delay}`, () => abortEarly('run', delay, (signal) => sandbox().run(['sleep', '30'], { signal })));
          }
          expect(cases.failures).toEqual([]);
          expect((await within(sandbox().run(['true']), 30_000, 'run after the aborts')).exitCode).toBe(0);
        },
      );

      context.test(
        'reliability.early-abort-files',
        'files.write (bytes and stream) and files.read aborted 0, 1 and 5 ms after the call reject with exactly signal.reason',
        async () => {
          await sandbox().files.write('/tmp/readable.bin', new Uint8Array(4 * MiB).fill(7));
          const cases = new Cases();
          for (const delay of delays) {
            await cases.check(`write bytes ${delay}`, () =>
              abortEarly('files.write(bytes)', delay, (signal) =>
                sandbox().files.write('/tmp/early-bytes.bin', new Uint8Array(8 * MiB), { signal }),
              ),
            );
            await cases.check(`write stream ${delay}`, () =>
              abortEarly('files.write(stream)', delay, (signal) =>
                sandbox().files.write('/tmp/early-stream.bin', generatedStream(64 * MiB), { signal }),
              ),
            );
            await cases.check(`read ${delay}`, () =>
              abortEarly('files.read', delay, (signal) => sandbox().files.read('/tmp/readable.bin', { signal })),
            );
          }
          expect(cases.failures).toEqual([]);
          expect((await within(sandbox().run(['true']), 30_000, 'run after the aborts')).exitCode).toBe(0);
        },
      );

      longTest(
        'reliability.early-abort-create',
        'create aborted early or at random moments rejects with signal.reason and leaves no sandbox',
        async () => {
          const cases = new Cases();
          const rounds: Array<(typeof delays)[number] | number> = [
            ...delays,
            ...Array.from({ length: 6 }, () => Math.floor(Math.random() * 31)),
          ];
          for (const [index, delay] of rounds.entries()) {
            const tag = `${context.runId}-abort-${index}`;
            await cases.check(`create ${delay}`, async () => {
              await abortEarly(
                'create',
                delay,
                (signal) => context.create({ tags: { abort: tag }, signal }),
                async (made, _reason, abortedFirst) => {
                  // Only a create that finished before its signal fired may resolve.
                  await within(made.terminate(), 30_000, 'terminate');
                  if (abortedFirst) throw new Error(`create ${delay}: resolved with a running sandbox after its signal fired`);
                },
              );
              if (context.provider.list) {
                const gone = await eventually(async () => (await listedWith({ abort: tag })).length === 0, 5_000);
                if (!gone)
                  throw new Error(`create ${delay}: an aborted create left sandbox(es) ${(await listedWith({ abort: tag })).join(', ')}`);
              }
            });
          }
          expect(cases.failures).toEqual([]);
        },
        300_000,
      );
    });

    context.test(
      'reliability.write-bad-data',
      'files.write with a number, null, an object or an array is SandboxInvalidArgumentError(data) and starts nothing',
      async () => {
        const before = await sandboxProcesses(sandbox());
        const cases = new Cases();
        for (const [label, data] of [
          ['a number', 5],
          ['null', null],
          ['a plain object', { a: 1 }],
          ['an array', [1, 2, 3]],
        ] as const) {
          await cases.check(label, () =>
            expectInvalid(
              within(
                attempt(() => sandbox().files.write('/tmp/bad-data', bad(data))),
                10_000,
                `write of ${label}`,
              ),
              'data',
            ),
          );
        }
        const buffer = new Uint8Array([1, 2, 3, 250]).buffer;
        await cases.check('an ArrayBuffer', async () => {
          const outcome = await settle(
            within(
              attempt(() => sandbox().files.write('/tmp/array-buffer.bin', bad(buffer))),
              10_000,
              'write of an ArrayBuffer',
            ),
          );
          if (!outcome.ok) {
            await expectInvalid(Promise.reject(outcome.error), 'data');
            return;
          }
          expect([...(await sandbox().files.read('/tmp/array-buffer.bin'))]).toEqual([1, 2, 3, 250]);
        });
        let left: string[] = [];
        await eventually(async () => (left = newLines(before, await sandboxProcesses(sandbox()))).length === 0, 3_000);
        cases.failures.push(...left.map((line) => `left running in the sandbox: ${line}`));
        expect(cases.failures).toEqual([]);
      },
    );

    context.test(
      'reliability.typed-errors',
      'raw failures are typed: long path, stream to a directory, a non-signal, pidsLimit 2**31',
      async () => {
        const cases = new Cases();
        const longPath = `/tmp/${'a'.repeat(200_000)}`;
        await cases.check('read of a 200 KB path', () =>
          expectInvalid(
            within(
              attempt(() => sandbox().files.read(longPath)),
              30_000,
              'read',
            ),
            'path',
          ),
        );
        await cases.check('write to a 200 KB path', () =>
          expectInvalid(
            within(
              attempt(() => sandbox().files.write(longPath, 'x')),
              30_000,
              'write',
            ),
            'path',
          ),
        );
        await sandbox().files.mkdir('/tmp/a-directory');
        await cases.check('a stream written to a directory', () =>
          expectInvalid(
            within(
              attempt(() => sandbox().files.write('/tmp/a-directory', generatedStream(4 * MiB))),
              60_000,
              'a stream written to a directory',
            ),
          ),
        );
        await cases.check('a string written to a directory', () =>
          expectInvalid(
            within(
              attempt(() => sandbox().files.write('/tmp/a-directory', 'x')),
              60_000,
              'a write to a directory',
            ),
          ),
        );
        const notASignal = bad({});
        await cases.check('exec signal {}', () =>
          expectInvalid(
            attempt(() => sandbox().exec(['true'], { signal: notASignal })),
            'signal',
          ),
        );
        await cases.check('run signal {}', () =>
          expectInvalid(
            attempt(() => sandbox().run(['true'], { signal: notASignal })),
            'signal',
          ),
        );
        await cases.check('files.read signal {}', () =>
          expectInvalid(
            attempt(() => sandbox().files.read('/tmp/readable.bin', { signal: notASignal })),
            'signal',
          ),
        );
        await cases.check('files.write signal {}', () =>
          expectInvalid(
            attempt(() => sandbox().files.write('/tmp/x', 'x', { signal: notASignal })),
            'signal',
          ),
        );
        await cases.check('create signal {}', () =>
          expectInvalid(
            attempt(() => context.create({ signal: notASignal })),
            'signal',
          ),
        );
        await cases.check('pidsLimit 2**31', () =>
          expectInvalid(
            attempt(() => context.create({ pidsLimit: 2 ** 31 })),
            'pidsLimit',
          ),
        );
        expect(cases.failures).toEqual([]);
      },
    );

    context.test(
      'reliability.run-rejects-not-throws',
      'run option errors (maxOutputBytes: 0, stdin: 5) reject the promise instead of throwing',
      async () => {
        const cases = new Cases();
        for (const [label, options] of [
          ['maxOutputBytes: 0', { maxOutputBytes: 0 }],
          ['stdin: 5', { stdin: bad(5) }],
        ] as const) {
          await cases.check(label, async () => {
            let promise: Promise<unknown>;
            try {
              promise = sandbox().run(['true'], options);
            } catch (error) {
              throw new Error(`threw synchronously: ${describeError(error)}`);
            }
            await expectInvalid(promise, Object.keys(options)[0]);
          });
        }
        expect(cases.failures).toEqual([]);
      },
    );

    context.test(
      'reliability.kill-invalid-signal',
      "kill with 'SIGFOO', '', 'sigterm', 'KILL', 9 or {} is SandboxInvalidArgumentError and leaves the command alone",
      async () => {
        const running = await sandbox().exec(['sleep', '30']);
        void running.stdout.cancel().catch(() => undefined);
        void running.stderr.cancel().catch(() => undefined);
        const cases = new Cases();
        for (const signal of ['SIGFOO', '', 'sigterm', 'KILL', 9, {}]) {
          await cases.check(`kill(${JSON.stringify(signal)})`, () =>
            expectInvalid(
              within(
                attempt(() => running.kill(bad(signal))),
                30_000,
                'kill',
              ),
              'signal',
            ),
          );
        }
        // None of them may have ended it: a valid signal now decides how it ends.
        await running.kill(capabilities.exec.signals ? 'SIGTERM' : undefined);
        const exit = await within(running.wait(), 30_000, 'wait');
        expect(exit.signal).toBe(capabilities.exec.signals ? 'SIGTERM' : 'SIGKILL');
        expect(cases.failures).toEqual([]);
      },
      capabilities.exec.kill ? undefined : 'provider cannot kill commands',
    );

    context.test(
      'reliability.kill-sigterm',
      "kill('SIGTERM') ends sleep 30 with SIGTERM",
      async () => {
        const running = await sandbox().exec(['sleep', '30']);
        void running.stdout.cancel().catch(() => undefined);
        void running.stderr.cancel().catch(() => undefined);
        await running.kill('SIGTERM');
        const exit = await within(running.wait(), 30_000, 'wait');
        expect(exit.signal).toBe('SIGTERM');
        expect(exit.exitCode).toBe(143);
      },
      capabilities.exec.signals ? undefined : 'provider delivers no named signals',
    );

    context.test(
      'reliability.set-tags-validation',
      'setTags with bad keys, values or types is SandboxInvalidArgumentError and changes nothing',
      async () => {
        const tagged = await context.create({ tags: { keep: 'me' } });
        const cases = new Cases();
        for (const [label, tags] of [
          ['an empty key', { '': 'x' }],
          ['a 64-char key', { ['k'.repeat(64)]: 'x' }],
          ['a 256-char value', { a: 'v'.repeat(256) }],
          ['a null value', { a: null }],
          ['a number value', { a: 5 }],
          ['a string', 'a=b'],
          ['an array', ['a']],
          ['null', null],
          ['undefined', undefined],
        ] as const) {
          await cases.check(label, () => expectInvalid(attempt(() => tagged.setTags(bad(tags)))));
        }
        expect(await tagged.getTags()).toEqual({ keep: 'me' });
        expect(cases.failures).toEqual([]);
        await tagged.terminate();
      },
      capabilities.tags ? undefined : 'provider has no tags',
    );

    context.test(
      'reliability.relative-paths',
      'relative paths and NUL bytes are SandboxInvalidArgumentError(path) in every files method',
      async () => {
        const cases = new Cases();
        const { files } = sandbox();
        const methods: Array<[string, (path: string) => Promise<unknown>]> = [
          ['read', (path) => files.read(path)],
          ['readText', (path) => files.readText(path)],
          ['readStream', (path) => files.readStream(path)],
          ['write', (path) => files.write(path, 'x')],
          ['list', (path) => files.list(path)],
          ['stat', (path) => files.stat(path)],
          ['exists', (path) => files.exists(path)],
          ['mkdir', (path) => files.mkdir(path)],
          ['remove', (path) => files.remove(path)],
        ];
        for (const path of ['tmp/x', '../etc/hostname', '/tmp/nul\0byte']) {
          for (const [name, call] of methods) {
            await cases.check(`${name}(${JSON.stringify(path)})`, () =>
              expectInvalid(
                within(
                  attempt(() => call(path)),
                  30_000,
                  name,
                ),
                'path',
              ),
            );
          }
        }
        expect(cases.failures).toEqual([]);
      },
    );

    context.test(
      'reliability.terminate-during-write',
      'terminate during a large streamed write rejects the write with SandboxNotFoundError; nothing hangs',
      async () => {
        const doomed = await context.create();
        let terminateCalled!: () => void;
        const called = new Promise<void>((resolve) => (terminateCalled = resolve));
        let pulling!: () => void;
        const started = new Promise<void>((resolve) => (pulling = resolve));
        // After 8 MiB the source waits for terminate to be called, so the write cannot finish first.
        const source = generatedStream(1024 * MiB, {
          onChunk: async (index) => {
            if (index === 8) {
              pulling();
              await called;
            }
          },
        });
        const writing = settle(doomed.files.write('/tmp/doomed.bin', source));
        await within(started, 30_000, 'the write to start');
        const terminating = doomed.terminate();
        terminateCalled();
        const outcome = await within(writing, 60_000, 'the write after terminate');
        await within(terminating, 60_000, 'terminate');
        if (outcome.ok) throw new Error('the write resolved although the sandbox was terminated during it');
        if (!SandboxNotFoundError.isInstance(outcome.error))
          throw new Error(`expected SandboxNotFoundError, got ${describeError(outcome.error)}`);
      },
    );

    context.test(
      'reliability.stdin-after-exit',
      'stdin written and closed after the process exited settles, with a SandboxError if it rejects',
      async () => {
        const exited = await sandbox().exec(['true']);
        void exited.stdout.cancel().catch(() => undefined);
        void exited.stderr.cancel().catch(() => undefined);
        expect((await within(exited.wait(), 30_000, 'wait')).exitCode).toBe(0);
        const writer = exited.stdin.getWriter();
        const cases = new Cases();
        for (const [label, call] of [
          ['write', () => writer.write(new TextEncoder().encode('too late\n'))],
          ['close', () => writer.close()],
        ] as const) {
          await cases.check(label, async () => {
            const outcome = await settle(within(attempt(call), 30_000, `stdin ${label} after exit`));
            if (!outcome.ok && !SandboxError.isInstance(outcome.error))
              throw new Error(`rejected with a raw ${describeError(outcome.error)}`);
          });
        }
        expect(cases.failures).toEqual([]);
      },
      capabilities.exec.stdin ? undefined : 'provider has no stdin',
    );

    describe('nothing hangs', () => {
      const hang = 30_000;
      context.test(
        'reliability.hang-kill-blocked',
        'wait() after kill() of a command blocked on a full stdout pipe settles, and the sandbox still runs commands',
        async () => {
          const own = await context.create();
          const blocked = await own.exec(['yes']);
          void blocked.stderr.cancel().catch(() => undefined);
          await sleep(1_000); // nobody reads: the pipe fills and `yes` blocks
          await within(blocked.kill(), hang, 'kill');
          await within(blocked.wait(), hang, 'wait after kill');
          expect((await within(own.run(['true']), hang, 'a later run')).exitCode).toBe(0);
          await blocked.stdout.cancel().catch(() => undefined);
          await own.terminate();
        },
        capabilities.exec.kill ? undefined : 'provider cannot kill commands',
      );

      context.test(
        'reliability.hang-cancel-stdout',
        'cancelling the stdout of `yes` mid-stream lets stderr end and wait() resolve',
        async () => {
          const own = await context.create();
          // Endless output: only a closed pipe (or a signal) ends it, never draining what is left.
          const streaming = await own.exec(['yes']);
          const reader = streaming.stdout.getReader();
          await within(reader.read(), hang, 'the first chunk');
          await reader.cancel();
          // What stderr says (head may report the closed pipe) does not matter; that it ends does.
          await within(readText(streaming.stderr), hang, 'stderr to end');
          await within(streaming.wait(), hang, 'wait after cancelling stdout');
          await own.terminate();
        },
        context.capabilities.exec.streaming
          ? undefined
          : 'it cancels the output of a command that never exits, which comes only at the exit (exec.streaming false)',
      );

      context.test(
        'reliability.hang-closed-stdout',
        'a process that closes stdout and keeps running, then exits 3, gives exit 3',
        async () => {
          const process = await sandbox().exec(['sh', '-c', 'exec >&-; sleep 1; exit 3']);
          const [stdout, stderr, exit] = await within(
            Promise.all([readText(process.stdout), readText(process.stderr), process.wait()]),
            hang,
            'the streams and wait',
          );
          expect([stdout, stderr]).toEqual(['', '']);
          expect(exit.exitCode).toBe(3);
        },
      );

      context.test(
        'reliability.hang-stdin-exited',
        'writing 1 MiB of stdin to a process that exits without reading, or has exited, settles; wait() gives its exit',
        async () => {
          // The race between the exit and the write decides where a hang shows: a few rounds of each.
          for (const [round, waitFirst] of [false, true, false, true, false, true].entries()) {
            const process = await sandbox().exec(['sh', '-c', 'exit 0']);
            void process.stdout.cancel().catch(() => undefined);
            void process.stderr.cancel().catch(() => undefined);
            if (waitFirst) expect((await within(process.wait(), hang, 'wait')).exitCode).toBe(0);
            const writer = process.stdin.getWriter();
            const what = `round ${round}: ${waitFirst ? 'after the exit' : 'while it exits'}`;
            await settleUnlessHung(writer.write(new Uint8Array(MiB).fill(120)), hang, `${what}, a 1 MiB stdin write`);
            await settleUnlessHung(
              attempt(() => writer.close()),
              hang,
              `${what}, closing stdin`,
            );
            expect((await within(process.wait(), hang, `${what}, wait`)).exitCode).toBe(0);
          }
        },
        capabilities.exec.stdin ? undefined : 'provider has no stdin',
      );
    });

    context.test(
      'reliability.from-id-hostile',
      'fromId with a path-like, empty or 10 KB id is a typed error and raises nothing uncaught',
      async () => {
        const cases = new Cases();
        const stray = await catchStray(async () => {
          for (const id of ['../x', 'a/../b', '..%2fx', '', 'a'.repeat(10_000)]) {
            await cases.check(`fromId(${JSON.stringify(id.length > 20 ? `${id.slice(0, 8)}…(${id.length})` : id)})`, async () => {
              const outcome = await settle(
                within(
                  attempt(() => context.provider.fromId(id)),
                  30_000,
                  'fromId',
                ),
              );
              if (outcome.ok) throw new Error(`attached to sandbox ${outcome.value.id}`);
              if (!SandboxNotFoundError.isInstance(outcome.error) && !SandboxInvalidArgumentError.isInstance(outcome.error)) {
                throw new Error(`expected SandboxNotFoundError or SandboxInvalidArgumentError, got ${describeError(outcome.error)}`);
              }
            });
          }
        });
        expect([...cases.failures, ...stray]).toEqual([]);
      },
    );

    longTest(
      'reliability.abort-random',
      'aborting streamed writes, bytes writes and reads at random moments rejects with signal.reason, nothing uncaught',
      async () => {
        const cases = new Cases();
        await sandbox().files.write('/tmp/abort-source.bin', generatedStream(50 * MiB));
        const rounds: Array<[string, number, (signal: AbortSignal) => Promise<unknown>]> = [];
        for (let round = 0; round < 6; round++)
          rounds.push([
            'streamed write',
            300,
            (signal) => sandbox().files.write('/tmp/abort-stream.bin', generatedStream(50 * MiB), { signal }),
          ]);
        for (let round = 0; round < 4; round++)
          rounds.push([
            'bytes write',
            200,
            (signal) => sandbox().files.write('/tmp/abort-bytes.bin', new Uint8Array(16 * MiB), { signal }),
          ]);
        for (let round = 0; round < 4; round++)
          rounds.push(['read', 200, (signal) => sandbox().files.read('/tmp/abort-source.bin', { signal })]);
        for (let round = 0; round < 3; round++) {
          rounds.push([
            'readStream and consume',
            200,
            async (signal) => {
              let total = 0;
              for await (const chunk of await sandbox().files.readStream('/tmp/abort-source.bin', { signal })) total += chunk.byteLength;
              return total;
            },
          ]);
        }
        const stray = await catchStray(async () => {
          for (const [index, [label, spreadMs, start]] of rounds.entries()) {
            const delay = Math.floor(Math.random() * spreadMs);
            await cases.check(`${label} #${index} aborted at ${delay} ms`, async () => {
              const controller = new AbortController();
              const reason = new Error(`random abort ${index}`);
              const call = attempt(() => start(controller.signal));
              setTimeout(() => controller.abort(reason), delay);
              const outcome = await within(settleNoting(call, controller.signal), abortSettleMs, label);
              if (outcome.ok) {
                if (outcome.abortedFirst) throw new Error('resolved after its signal fired');
                return;
              }
              if (outcome.error !== reason) throw new Error(`rejected with ${describeError(outcome.error)}, not signal.reason`);
            });
          }
        });
        expect([...cases.failures, ...stray]).toEqual([]);
        expect((await within(sandbox().run(['true']), 30_000, 'run after the aborts')).exitCode).toBe(0);
      },
      300_000,
    );

    context.test(
      'reliability.duplicate-ports',
      'duplicate ports are rejected or deduped',
      async () => {
        const outcome = await settle(attempt(() => context.create({ ports: [8080, 8080] })));
        if (!outcome.ok) {
          await expectInvalid(Promise.reject(outcome.error), 'ports');
          return;
        }
        expect(Object.keys(await outcome.value.tunnels())).toEqual(['8080']);
        await outcome.value.terminate();
      },
      capabilities.tunnels ? undefined : 'provider has no tunnels',
    );

    context.test(
      'reliability.missing-entrypoint',
      'a create whose entrypoint program is missing is SandboxInvalidArgumentError and leaves no sandbox',
      async () => {
        const tag = `${context.runId}-missing-entrypoint`;
        await expectInvalid(
          attempt(() => context.create({ command: ['definitely-not-a-program-xyz'], tags: { probe: tag } })),
          'command',
        );
        if (context.provider.list) {
          const gone = await eventually(async () => (await listedWith({ probe: tag })).length === 0, 10_000);
          expect(gone ? [] : await listedWith({ probe: tag })).toEqual([]);
        }
      },
    );
  });
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** Like `settle`, noting whether `signal` had fired by the time the call settled. */
function settleNoting<T>(promise: Promise<T>, signal: AbortSignal): Promise<Settled<T> & { abortedFirst: boolean }> {
  return settle(promise).then((outcome) => ({ ...outcome, abortedFirst: signal.aborted }));
}

/** What `within` rejects with; a test that tolerates a rejection must still fail on this. */
class HangError extends Error {
  override name = 'HangError';
}

/** Settles `promise` (within `timeoutMs`), rethrowing only a hang. */
async function settleUnlessHung<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<Settled<T>> {
  const outcome = await settle(within(promise, timeoutMs, what));
  if (!outcome.ok && outcome.error instanceof HangError) throw outcome.error;
  return outcome;
}

/** Races `promise` with a timer: a call that never settles fails the test instead of hanging it. */
async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HangError(`hang: ${what} did not settle within ${timeoutMs} ms`)), timeoutMs);
  });
  // A call abandoned by the timer may still reject later; that is not an unhandled error of the test.
  promise.catch(() => undefined);
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A pull-based stream of `totalBytes` from a generator of fresh 1 MiB chunks (nothing retained). */
function generatedStream(
  totalBytes: number,
  hooks: { onChunk?: (index: number) => void | Promise<void> } = {},
): ReadableStream<Uint8Array> {
  async function* chunks() {
    const size = 1024 * 1024;
    for (let index = 0, sent = 0; sent < totalBytes; index++, sent += size) {
      await hooks.onChunk?.(index);
      yield new Uint8Array(Math.min(size, totalBytes - sent)).fill(index & 0xff);
    }
  }
  const iterator = chunks();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await iterator.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      async cancel() {
        await iterator.return(undefined);
      },
    },
    { highWaterMark: 1 },
  );
}

/** Collects every failing case of a test, so one run reports them all. */
class Cases {
  readonly failures: string[] = [];
  async check(label: string, body: () => Promise<unknown>): Promise<void> {
    try {
      await body();
    } catch (error) {
      this.failures.push(`${label}: ${describeError(error)}`);
    }
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message.slice(0, 300)}`;
  return String(error);
}

/** Lines of `after` that were not in `before` (as multisets), ignoring the lister's own processes. */
function newLines(before: readonly string[], after: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const line of before) counts.set(line, (counts.get(line) ?? 0) + 1);
  const added: string[] = [];
  for (const line of after) {
    const left = counts.get(line) ?? 0;
    if (left > 0) counts.set(line, left - 1);
    else if (!line.includes('/proc/[0-9]*') && !line.startsWith('tr ')) added.push(line);
  }
  return added;
}

/**
 * Runs `body` with listeners for uncaught exceptions and unhandled rejections, then waits a moment
 * for late ones (an error raised from a socket callback arrives after the call settled).
 */
async function catchStray(body: () => Promise<void>): Promise<string[]> {
  const stray: string[] = [];
  const onError = (error: unknown) => stray.push(`uncaught: ${describeError(error)}`);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  try {
    await body();
    await sleep(500);
  } finally {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  }
  return stray;
}
