/**
 * The JSON shapes of envd's process service (package `process`), written from the message
 * descriptors the `e2b` SDK bundles: requests are validated with zod (protobuf JSON: camelCase
 * names, bytes as base64, uint32 as a number or a decimal string, enums by name or number),
 * events are built the way protobuf JSON writes them (default values left out).
 */
import { z } from 'zod';
import { ConnectError } from './e2b-connect.js';

const uint32 = z.union([z.number().int().min(0).max(0xffffffff), z.string().regex(/^\d+$/).transform(Number)]);
/** protobuf JSON accepts standard and URL-safe base64, padded or not; Buffer reads both. */
const bytes = z.string().transform((text) => new Uint8Array(Buffer.from(text, 'base64')));

/** `ProcessSelector`: a oneof of `pid` and `tag`. */
const selectorSchema = z.object({ pid: uint32.optional(), tag: z.string().optional() });
export type ProcessSelector = { readonly pid: number } | { readonly tag: string };

const ptySchema = z.object({ size: z.object({ cols: uint32.default(0), rows: uint32.default(0) }).optional() });

/** `ProcessConfig`: what List reports back, as the request gave it. */
const configSchema = z.object({
  cmd: z.string().default(''),
  args: z.array(z.string()).default([]),
  envs: z.record(z.string(), z.string()).default({}),
  cwd: z.string().optional(),
});
export type ProcessConfig = z.output<typeof configSchema>;

const startSchema = z.object({
  process: configSchema.optional(),
  pty: ptySchema.optional(),
  tag: z.string().optional(),
  stdin: z.boolean().optional(),
});
export type StartRequest = z.output<typeof startSchema>;

const selectedSchema = z.object({ process: selectorSchema.optional() });
const inputSchema = z.object({ stdin: bytes.optional(), pty: bytes.optional() });
const sendInputSchema = z.object({ process: selectorSchema.optional(), input: inputSchema.optional() });
const updateSchema = z.object({ process: selectorSchema.optional(), pty: ptySchema.optional() });

/** `Signal`: by name or number; only SIGTERM and SIGKILL exist. */
const signalNames: Record<string, 'SIGTERM' | 'SIGKILL' | undefined> = {
  SIGNAL_SIGTERM: 'SIGTERM',
  '15': 'SIGTERM',
  SIGNAL_SIGKILL: 'SIGKILL',
  '9': 'SIGKILL',
};
const sendSignalSchema = z.object({
  process: selectorSchema.optional(),
  signal: z.union([z.string(), z.number().int()]).default('SIGNAL_UNSPECIFIED'),
});

/** Validates `message` against `schema`; a mismatch is `invalid_argument` naming the field. */
function parse<T extends z.ZodType>(schema: T, message: unknown, what: string): z.output<T> {
  const result = schema.safeParse(message ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.join('.') || 'message';
  throw new ConnectError('invalid_argument', `invalid ${what}: ${field}: ${issue.message}`);
}

/** A selector as envd reads it: exactly one of pid and tag. */
function selectorOf(selector: z.output<typeof selectorSchema> | undefined): ProcessSelector {
  if (selector?.pid !== undefined) return { pid: selector.pid };
  if (selector?.tag !== undefined) return { tag: selector.tag };
  throw new ConnectError('invalid_argument', 'invalid process selector: neither pid nor tag is set');
}

export function parseStart(message: unknown): StartRequest & { process: ProcessConfig } {
  const request = parse(startSchema, message, 'StartRequest');
  if (!request.process || request.process.cmd === '')
    throw new ConnectError('invalid_argument', 'invalid StartRequest: process.cmd is empty');
  return { ...request, process: request.process };
}

export function parseSelected(message: unknown, what: string): ProcessSelector {
  return selectorOf(parse(selectedSchema, message, what).process);
}

export function parseSendInput(message: unknown): { selector: ProcessSelector; input: { stdin: Uint8Array } | { pty: Uint8Array } } {
  const request = parse(sendInputSchema, message, 'SendInputRequest');
  const selector = selectorOf(request.process);
  if (request.input?.stdin !== undefined) return { selector, input: { stdin: request.input.stdin } };
  if (request.input?.pty !== undefined) return { selector, input: { pty: request.input.pty } };
  throw new ConnectError('invalid_argument', 'invalid SendInputRequest: input has neither stdin nor pty');
}

export function parseUpdate(message: unknown): { selector: ProcessSelector; size: { cols: number; rows: number } | undefined } {
  const request = parse(updateSchema, message, 'UpdateRequest');
  const size = request.pty ? { cols: request.pty.size?.cols ?? 0, rows: request.pty.size?.rows ?? 0 } : undefined;
  return { selector: selectorOf(request.process), size };
}

export function parseSendSignal(message: unknown): { selector: ProcessSelector; signal: 'SIGTERM' | 'SIGKILL' } {
  const request = parse(sendSignalSchema, message, 'SendSignalRequest');
  const selector = selectorOf(request.process);
  const signal = signalNames[String(request.signal)];
  if (!signal) throw new ConnectError('unimplemented', `invalid signal: ${String(request.signal)} (envd sends SIGTERM and SIGKILL only)`);
  return { selector, signal };
}

/** `EndEvent`, as Go's `os.ProcessState` describes an exit. */
export interface EndEvent {
  readonly exitCode: number;
  readonly exited: boolean;
  readonly status: string;
  readonly error?: string;
}

/** Go's names of the signals (`syscall.Signal.String()`), which envd's status strings use. */
const goSignalNames: Record<string, string> = {
  SIGHUP: 'hangup',
  SIGINT: 'interrupt',
  SIGQUIT: 'quit',
  SIGILL: 'illegal instruction',
  SIGTRAP: 'trace/breakpoint trap',
  SIGABRT: 'aborted',
  SIGBUS: 'bus error',
  SIGFPE: 'floating point exception',
  SIGKILL: 'killed',
  SIGUSR1: 'user defined signal 1',
  SIGSEGV: 'segmentation fault',
  SIGUSR2: 'user defined signal 2',
  SIGPIPE: 'broken pipe',
  SIGALRM: 'alarm clock',
  SIGTERM: 'terminated',
  SIGXCPU: 'CPU time limit exceeded',
  SIGXFSZ: 'file size limit exceeded',
};

/** The end of a command that exited with `code` or was killed by `signal` (a Node signal name). */
export function endEvent(exit: { code: number } | { signal: string }): EndEvent {
  if ('code' in exit) {
    const status = `exit status ${exit.code}`;
    return exit.code === 0 ? { exitCode: 0, exited: true, status } : { exitCode: exit.code, exited: true, status, error: status };
  }
  const status = `signal: ${goSignalNames[exit.signal] ?? exit.signal}`;
  // Go reports -1 as the exit code of a signalled process.
  return { exitCode: -1, exited: false, status, error: status };
}

/** The JSON of a `ProcessEvent` inside `StartResponse` / `ConnectResponse`. */
export const events = {
  start: (pid: number) => ({ event: { start: { pid } } }),
  stdout: (data: Uint8Array) => ({ event: { data: { stdout: Buffer.from(data).toString('base64') } } }),
  stderr: (data: Uint8Array) => ({ event: { data: { stderr: Buffer.from(data).toString('base64') } } }),
  pty: (data: Uint8Array) => ({ event: { data: { pty: Buffer.from(data).toString('base64') } } }),
  end: (end: EndEvent) => {
    // protobuf JSON leaves default values out.
    const json: Record<string, unknown> = {};
    if (end.exitCode !== 0) json.exitCode = end.exitCode;
    if (end.exited) json.exited = true;
    if (end.status !== '') json.status = end.status;
    if (end.error !== undefined) json.error = end.error;
    return { event: { end: json } };
  },
  keepalive: () => ({ event: { keepalive: {} } }),
};

/** The JSON of a `ProcessInfo` in `ListResponse`. */
export function processInfo(pid: number, tag: string | undefined, config: ProcessConfig): unknown {
  const json: Record<string, unknown> = { cmd: config.cmd, args: config.args, envs: config.envs };
  if (config.cwd !== undefined) json.cwd = config.cwd;
  return tag === undefined ? { config: json, pid } : { config: json, pid, tag };
}
