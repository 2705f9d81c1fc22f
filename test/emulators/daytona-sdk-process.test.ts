/**
 * The emulator's daemon process API as a user of the real `@daytonaio/sdk` sees it, through the
 * SDK's own calls as Daytona's docs show them (no sandport adapter): `process.executeCommand`
 * (merged output, exit codes, cwd, env, timeout), sessions (create, async commands, exit codes,
 * logs buffered and followed with stdout and stderr told apart, input, the session's shell
 * state, delete), the default image's userland, and the daemon's error classes.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  Daytona,
  DaytonaCommandAlreadyCompletedError,
  DaytonaConflictError,
  DaytonaNotFoundError,
  DaytonaProcessExecutionTimeoutError,
  type Sandbox,
} from '@daytonaio/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaytonaEmulator, type DaytonaEmulator } from './daytona/index.js';
import { daytonaImagesDir } from './daytona/daytona-images.js';

const imageBuilt = existsSync(join(daytonaImagesDir(), 'default', '.sandport-complete')) && process.getuid?.() === 0;
const needsImage = imageBuilt ? '' : ' (skipped: needs root and the default rootfs of scripts/build-daytona-images.sh)';

let emulator: DaytonaEmulator;
let daytona: Daytona;
let sandbox: Sandbox;

beforeAll(async () => {
  if (!imageBuilt) return;
  emulator = await startDaytonaEmulator({ apiKey: 'dtn_test' });
  daytona = new Daytona({ apiUrl: emulator.url, apiKey: 'dtn_test', target: 'us' });
  sandbox = await daytona.create();
}, 120_000);

afterAll(async () => {
  await sandbox?.delete().catch(() => undefined);
  await daytona?.[Symbol.asyncDispose]();
  await emulator?.close();
});

async function failure(call: Promise<unknown>): Promise<Error> {
  const outcome = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call succeeded');
  return outcome;
}

/** Polls until `check` holds (each poll is a real call; no timing is asserted). */
async function eventually<T>(probe: () => Promise<T>, check: (value: T) => boolean, what: string): Promise<T> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const value = await probe();
    if (check(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`never saw ${what}`);
}

describe.skipIf(!imageBuilt)(`Daytona emulator: process through the SDK${needsImage}`, () => {
  it('executeCommand merges stdout and stderr, and gives the exit code', async () => {
    const response = await sandbox.process.executeCommand('echo out; echo err >&2; exit 3');
    expect(response.exitCode).toBe(3);
    expect(response.result).toBe('out\nerr\n');
    expect(response.artifacts?.stdout).toBe(response.result);
  });

  it('executeCommand runs in cwd (relative to the working directory) with env', async () => {
    await sandbox.process.executeCommand('mkdir -p project/src');
    const response = await sandbox.process.executeCommand('pwd; echo "$GREETING"', 'project/src', { GREETING: 'hi there' });
    expect(response.exitCode).toBe(0);
    expect(response.result).toBe(`${await sandbox.getWorkDir()}/project/src\nhi there\n`);
  });

  it('executeCommand past its timeout (seconds) is a DaytonaProcessExecutionTimeoutError', async () => {
    const error = await failure(sandbox.process.executeCommand('sleep 30', undefined, undefined, 1));
    expect(error).toBeInstanceOf(DaytonaProcessExecutionTimeoutError);
  });

  it('the default image has Python, git and the non-root user daytona with sudo, whose home is the working directory', async () => {
    const python = await sandbox.process.executeCommand('python --version && python3 -c "print(6*7)" && git --version');
    expect(python.exitCode).toBe(0);
    expect(python.result).toMatch(/^Python 3\.\d+\.\d+\n42\ngit version /);
    const user = await sandbox.process.executeCommand('id -u daytona; getent passwd daytona | cut -d: -f6; sudo -n true && echo sudo-ok');
    expect(user.result).toBe('1000\n/home/daytona\nsudo-ok\n');
    expect(await sandbox.getUserHomeDir()).toBe('/home/daytona');
    expect(await sandbox.getWorkDir()).toBe('/home/daytona');
  });

  it('a session runs async commands whose exit codes and logs (stdout and stderr apart) the SDK reads', async () => {
    await sandbox.process.createSession('async-one');
    const started = await sandbox.process.executeSessionCommand('async-one', {
      command: 'echo one; echo two >&2; sleep 0.2; echo three; exit 4',
      runAsync: true,
    });
    expect(started.cmdId).toEqual(expect.any(String));
    const done = await eventually(
      () => sandbox.process.getSessionCommand('async-one', started.cmdId!),
      (command) => command.exitCode !== undefined && command.exitCode !== null,
      'the command exit',
    );
    expect(done.exitCode).toBe(4);
    const logs = await sandbox.process.getSessionCommandLogs('async-one', started.cmdId!);
    expect(logs.stdout).toBe('one\nthree\n');
    expect(logs.stderr).toBe('two\n');
    expect(logs.output).toContain('two\n');
    const session = await sandbox.process.getSession('async-one');
    expect(session.commands?.map((command) => command.exitCode)).toEqual([4]);
  });

  it('followed logs stream stdout and stderr apart while the command runs, and end when it exits', async () => {
    await sandbox.process.createSession('follow');
    const started = await sandbox.process.executeSessionCommand('follow', {
      command: 'for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; sleep 0.1; done',
      runAsync: true,
    });
    let stdout = '';
    let stderr = '';
    await sandbox.process.getSessionCommandLogs(
      'follow',
      started.cmdId!,
      (chunk) => (stdout += chunk),
      (chunk) => (stderr += chunk),
    );
    expect(stdout).toBe('out 1\nout 2\nout 3\n');
    expect(stderr).toBe('err 1\nerr 2\nerr 3\n');
    const command = await sandbox.process.getSessionCommand('follow', started.cmdId!);
    expect(command.exitCode).toBe(0);
  });

  it('a synchronous session command answers with its output; the session keeps cd and exports', async () => {
    await sandbox.process.createSession('shell-state');
    await sandbox.process.executeSessionCommand('shell-state', {
      command: 'mkdir -p /tmp/state-dir && cd /tmp/state-dir && export KEPT=yes',
    });
    const second = await sandbox.process.executeSessionCommand('shell-state', { command: 'pwd; echo "$KEPT"; echo oops >&2' });
    expect(second.exitCode).toBe(0);
    expect(second.stdout).toBe('/tmp/state-dir\nyes\n');
    expect(second.stderr).toBe('oops\n');
  });

  it('input reaches a running command; after it exits input is a DaytonaCommandAlreadyCompletedError', async () => {
    await sandbox.process.createSession('input');
    const started = await sandbox.process.executeSessionCommand('input', { command: 'read line; echo "got $line"', runAsync: true });
    await sandbox.process.sendSessionCommandInput('input', started.cmdId!, 'hello\n');
    await eventually(
      () => sandbox.process.getSessionCommand('input', started.cmdId!),
      (command) => command.exitCode === 0,
      'the reader to exit',
    );
    expect((await sandbox.process.getSessionCommandLogs('input', started.cmdId!)).stdout).toBe('got hello\n');
    expect(await failure(sandbox.process.sendSessionCommandInput('input', started.cmdId!, 'late\n'))).toBeInstanceOf(
      DaytonaCommandAlreadyCompletedError,
    );
  });

  it('sessions list, a duplicate is a DaytonaConflictError, delete kills what runs, an unknown one is not found', async () => {
    await sandbox.process.createSession('to-delete');
    expect(await failure(sandbox.process.createSession('to-delete'))).toBeInstanceOf(DaytonaConflictError);
    const started = await sandbox.process.executeSessionCommand('to-delete', { command: 'sleep 300', runAsync: true });
    expect((await sandbox.process.listSessions()).map((session) => session.sessionId)).toContain('to-delete');
    await sandbox.process.deleteSession('to-delete');
    expect((await sandbox.process.listSessions()).map((session) => session.sessionId)).not.toContain('to-delete');
    expect(await failure(sandbox.process.getSession('to-delete'))).toBeInstanceOf(DaytonaNotFoundError);
    expect(await failure(sandbox.process.getSessionCommand('to-delete', started.cmdId!))).toBeInstanceOf(DaytonaNotFoundError);
    const left = await sandbox.process.executeCommand('pgrep -f "sleep 30[0]" || echo none');
    expect(left.result.trim()).toBe('none');
  });

  it('codeRun runs Python code with argv and env, and gives its output and exit code', async () => {
    const response = await sandbox.process.codeRun('import os, sys\nprint(sys.argv[1:], os.environ["CODE_VAR"])\nsys.exit(2)', {
      argv: ['a b', 'c'],
      env: { CODE_VAR: 'from-env' },
    });
    expect(response.exitCode).toBe(2);
    expect(response.result).toBe("['a b', 'c'] from-env\n");
    expect(response.artifacts?.charts).toEqual([]);
  });

  it('the entrypoint logs and an unknown toolbox route are 501s naming the call', async () => {
    const error = await failure(sandbox.process.getEntrypointLogs());
    expect((error as { statusCode?: number }).statusCode).toBe(501);
    expect(error.message).toContain(`GET /toolbox/${sandbox.id}/process/session/entrypoint/logs`);
    const response = await fetch(`${emulator.toolboxProxyUrl}/${sandbox.id}/no/such/route`, {
      headers: { authorization: 'Bearer dtn_test' },
    });
    expect(response.status).toBe(501);
    expect(await response.json()).toMatchObject({
      message: `The Daytona emulator (toolbox) does not implement GET /toolbox/${sandbox.id}/no/such/route`,
      source: 'DAYTONA_DAEMON',
    });
  });

  it('updateEnv sets variables for later processes', async () => {
    await sandbox.updateEnv({ FROM_UPDATE: 'set' });
    expect((await sandbox.process.executeCommand('echo "$FROM_UPDATE"')).result).toBe('set\n');
    await sandbox.updateEnv({}, { unset: ['FROM_UPDATE'] });
    expect((await sandbox.process.executeCommand('echo "[$FROM_UPDATE]"')).result).toBe('[]\n');
  });
});
