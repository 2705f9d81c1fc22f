/** Unit tests of the process service's wire shapes and the launcher's report, without a sandbox. */
import { describe, expect, it } from 'vitest';
import { ConnectError } from './e2b-connect.js';
import { launcherArgv, parseLaunchReport } from './e2b-process-launch.js';
import { endEvent, events, parseSendInput, parseSendSignal, parseStart } from './e2b-process-wire.js';

const bytes = (text: string) => new TextEncoder().encode(text);

function connectError(call: () => unknown): ConnectError {
  try {
    call();
  } catch (error) {
    if (error instanceof ConnectError) return error;
    throw error;
  }
  throw new Error('no error');
}

describe('end events', () => {
  it('word exits and signals as Go does, leaving defaults out of the JSON', () => {
    expect(events.end(endEvent({ code: 0 }))).toEqual({ event: { end: { exited: true, status: 'exit status 0' } } });
    expect(endEvent({ code: 2 })).toEqual({ exitCode: 2, exited: true, status: 'exit status 2', error: 'exit status 2' });
    expect(endEvent({ signal: 'SIGKILL' })).toEqual({ exitCode: -1, exited: false, status: 'signal: killed', error: 'signal: killed' });
    expect(endEvent({ signal: 'SIGTERM' }).status).toBe('signal: terminated');
  });

  it('carry output as standard base64', () => {
    expect(events.stdout(bytes('hi\n'))).toEqual({ event: { data: { stdout: 'aGkK' } } });
    expect(events.pty(new Uint8Array([0xff, 0x00]))).toEqual({ event: { data: { pty: '/wA=' } } });
  });
});

describe('requests', () => {
  it('read a StartRequest with its defaults, and refuse one without a command', () => {
    expect(parseStart({ process: { cmd: '/bin/bash', args: ['-l', '-c', 'true'] }, stdin: false })).toEqual({
      process: { cmd: '/bin/bash', args: ['-l', '-c', 'true'], envs: {} },
      stdin: false,
    });
    expect(connectError(() => parseStart({ process: { args: [] } })).code).toBe('invalid_argument');
  });

  it('read input bytes from base64 (URL-safe too) and pids from numbers or strings', () => {
    expect(parseSendInput({ process: { pid: '12' }, input: { stdin: 'aGk' } })).toEqual({
      selector: { pid: 12 },
      input: { stdin: bytes('hi') },
    });
    expect(parseSendInput({ process: { tag: 't' }, input: { pty: '_w' } }).input).toEqual({ pty: new Uint8Array([0xff]) });
    expect(connectError(() => parseSendInput({ process: {}, input: { stdin: '' } })).code).toBe('invalid_argument');
  });

  it('take signals by name or number, and only SIGTERM and SIGKILL', () => {
    expect(parseSendSignal({ process: { pid: 1 }, signal: 'SIGNAL_SIGKILL' }).signal).toBe('SIGKILL');
    expect(parseSendSignal({ process: { pid: 1 }, signal: 15 }).signal).toBe('SIGTERM');
    expect(connectError(() => parseSendSignal({ process: { pid: 1 } })).code).toBe('unimplemented');
  });
});

describe('the launcher', () => {
  it('passes the argv through untouched after its own arguments', () => {
    const argv = launcherArgv({
      user: undefined,
      cwd: undefined,
      stdin: false,
      pty: false,
      envs: { HOME: '/x' },
      argv: ['/bin/bash', '-l', '-c', "a 'b'\n"],
    });
    expect(argv.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(argv.slice(3)).toEqual(['e2b-envd', '', 'user', '', '', 'null', '', 'HOME', '/bin/bash', '-l', '-c', "a 'b'\n"]);
  });

  it("reports are told apart from output, a terminal's \\r dropped and paths normalized", () => {
    expect(parseLaunchReport(bytes('\0E2B:pid:42\r'))).toEqual({ kind: 'pid', pid: 42 });
    expect(parseLaunchReport(bytes('\0E2B:cwd:/home/user/../x'))).toEqual({ kind: 'cwd', path: '/home/x' });
    expect(parseLaunchReport(bytes('\0E2B:user'))).toEqual({ kind: 'user' });
    expect(parseLaunchReport(bytes('pid:42')).kind).toBe('none');
  });
});
