import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type WebSocket from 'ws';
import { SandboxAuthenticationError, SandboxProviderError, SandboxTimeoutError } from '../../errors/index.js';
import { loadOptionalPeer } from '../../kit/optional-peer.js';
import { AgentSessionError } from '../agent-errors.js';
import type { SpawnOutcome } from '../sandbox-spawn.js';
import { agentHostCloseCodes, hostFrameSchema, type HostFrame, type HostHello } from './agent-host-protocol.js';

const stderrTailBytes = 4096;
/** Stream-json lines the Agent SDK keeps to itself instead of yielding them as messages. */
const unyielded = new Set(['control_request', 'control_response', 'control_cancel_request', 'keep_alive']);

/** Loads `ws` (an optional peer): Node 20 has no WebSocket client without a flag, and no server at all. */
export function loadWs(): Promise<typeof import('ws')> {
  return loadOptionalPeer('ws', { neededBy: 'the agent host (AgentSession.connect, startAgentHost)', load: () => import('ws') });
}

/** What opens an agent connection: the host's address and token, and the first frame. */
export interface AgentHostTarget {
  /** `ws://…` or `wss://…` address of the host (a tunnel of its port). */
  url: string;
  token: string;
  hello:
    | { type: 'start'; agent?: string; command: string; args: string[]; env: Record<string, string>; cwd?: string }
    | { type: 'attach'; agent: string; cursor?: number };
  provider: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * One agent on the agent host, in the Agent SDK's process shape (like `SandboxSpawnedProcess`):
 * stdin lines go out as `in` frames, `out` frames come back on stdout, `kill` is a `signal`
 * frame, the host's `exit` frame (or the socket closing) is the exit. Dropping the socket
 * detaches: the agent keeps running in the host.
 */
export class AgentHostConnection extends EventEmitter {
  readonly stdin = new PassThrough();
  readonly stdout = new PassThrough();
  killed = false;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly done: Promise<SpawnOutcome>;
  private settle!: (outcome: SpawnOutcome) => void;
  private stderrText = '';
  private partial = '';
  /** Sequence numbers of the lines handed to the SDK that it will yield as messages, oldest first. */
  private readonly yielded: Array<{ seq: number; type: string; uuid: string | undefined }> = [];
  private lastSeq = 0;

  /** The host's answer to the first frame; rejects when the connection could not be opened (wrong token: `SandboxAuthenticationError`). */
  readonly ready: Promise<HostHello>;
  /** Why opening failed, once `ready` rejected. */
  openError: unknown;
  private socket: WebSocket | undefined;
  private hello: HostHello | undefined;

  /**
   * Opens the WebSocket and sends the first frame at once (the SDK's spawn hook is synchronous);
   * stdin written before the host answered is held until then.
   */
  constructor(
    private readonly target: AgentHostTarget,
    private readonly onStderr?: (text: string) => void,
  ) {
    super();
    this.lastSeq = target.hello.type === 'attach' ? (target.hello.cursor ?? 0) : 0;
    this.done = new Promise((resolve) => (this.settle = resolve));
    this.on('error', () => undefined);
    this.stdin.setEncoding('utf8');
    this.stdin.pause();
    this.ready = this.open();
    this.ready.then(
      (hello) => {
        this.hello = hello;
        this.lastSeq = hello.cursor;
        this.stdin.on('data', (text: string) => this.write(text));
        this.stdin.on('end', () => this.frame({ type: 'end' }));
        this.stdin.resume();
      },
      (error: unknown) => {
        this.openError = error;
        this.finish(undefined, undefined, error);
        this.emit('error', error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  private async open(): Promise<HostHello> {
    const target = this.target;
    target.signal?.throwIfAborted();
    const { default: WebSocketClass } = await loadWs();
    const socket = new WebSocketClass(new URL(target.url), {
      headers: { authorization: `Bearer ${target.token}` },
      handshakeTimeout: target.timeoutMs,
    });
    this.socket = socket;
    const hello = await new Promise<HostHello>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (error: unknown, hello?: HostHello) => {
        clearTimeout(timer);
        target.signal?.removeEventListener('abort', onAbort);
        socket.removeAllListeners('unexpected-response').removeAllListeners('close').removeAllListeners('open');
        if (error) {
          socket.removeAllListeners('message');
          socket.terminate();
          reject(error);
        } else resolve(hello!);
      };
      const onAbort = () => done(target.signal!.reason);
      target.signal?.addEventListener('abort', onAbort, { once: true });
      timer = setTimeout(
        () =>
          done(
            new SandboxTimeoutError({
              message: `The agent host did not answer within ${target.timeoutMs} ms`,
              timeoutMs: target.timeoutMs,
              operation: 'agent-start',
              provider: target.provider,
            }),
          ),
        target.timeoutMs,
      );
      socket.on('error', (error) =>
        done(
          new SandboxProviderError({ message: `Cannot reach the agent host: ${error.message}`, provider: target.provider, cause: error }),
        ),
      );
      socket.on('unexpected-response', (_request, response) => {
        const status = response.statusCode ?? 0;
        response.resume();
        done(
          status === 401
            ? new SandboxAuthenticationError({ message: 'The agent host refused the token (HTTP 401)', provider: target.provider })
            : new SandboxProviderError({ message: `The agent host answered HTTP ${status} to the upgrade`, provider: target.provider }),
        );
      });
      socket.on('open', () => socket.send(JSON.stringify(target.hello)));
      socket.on('close', (code, reason) => done(closeError(code, String(reason), target)));
      // Frames after the answer arrive in order on the same listener, so none is lost in the hand-over.
      socket.on('message', (data) => {
        const frame = parseFrame(String(data));
        if (!frame) return;
        if (frame.type === 'started' || frame.type === 'attached') done(undefined, frame);
        else if (frame.type === 'error') return;
        else this.handle(frame);
      });
    });
    socket.on('close', (code, reason) =>
      this.finish(
        undefined,
        undefined,
        new SandboxProviderError({ message: `The agent host connection closed (${code} ${String(reason)})`, provider: target.provider }),
      ),
    );
    socket.on('error', () => undefined);
    return hello;
  }

  /** The agent's id on the host. */
  get agent(): string | undefined {
    return this.hello?.agent;
  }

  /** Last stderr of the CLI (about 4 KiB). */
  get stderrTail(): string {
    return this.stderrText;
  }

  /**
   * The transcript position of `message`, the latest message the SDK yielded: call once per
   * yielded message, in order. Lines the SDK drops are skipped by their type.
   */
  consumed(message: { type: string; uuid?: unknown }): number {
    // By uuid where the message has one (the SDK drops some lines of a yielded type), else by type.
    const uuid = typeof message.uuid === 'string' ? message.uuid : undefined;
    const at = this.yielded.findIndex((entry) => (uuid ? entry.uuid === uuid : entry.type === message.type));
    if (at >= 0) this.lastSeq = this.yielded.splice(0, at + 1).at(-1)!.seq;
    return this.lastSeq;
  }

  kill(signal: NodeJS.Signals): boolean {
    if (this.exitCode !== null || this.signalCode !== null) return false;
    this.killed = true;
    this.frame({ type: 'signal', signal });
    return true;
  }

  /** Drops the connection; the agent keeps running in the host. */
  detach(): void {
    this.socket?.close(1000, 'detached');
  }

  private write(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) this.frame({ type: 'in', line });
  }

  private frame(frame: object): void {
    if (this.socket?.readyState === 1) this.socket.send(JSON.stringify(frame));
  }

  private handle(frame: HostFrame): void {
    if (frame.type === 'out') {
      if (frame.seq !== undefined) {
        const { type, uuid } = lineKey(frame.line);
        if (!unyielded.has(type)) this.yielded.push({ seq: frame.seq, type, uuid });
      }
      this.stdout.write(`${frame.line}\n`);
    } else if (frame.type === 'stderr') {
      this.stderrText = (this.stderrText + frame.text).slice(-stderrTailBytes);
      this.onStderr?.(frame.text);
    } else if (frame.type === 'exit') {
      if (frame.stderrTail) this.stderrText = frame.stderrTail;
      this.finish(frame.exitCode, frame.signal, frame.error ? new Error(frame.error) : undefined);
      this.socket?.close(1000, 'agent ended');
    }
  }

  private finish(exitCode: number | undefined, signal: string | undefined, error: unknown): void {
    if (this.exitCode !== null || this.signalCode !== null) return;
    this.exitCode = exitCode ?? (signal ? null : 1);
    this.signalCode = (signal as NodeJS.Signals | undefined) ?? null;
    if (this.exitCode === null && this.signalCode === null) this.exitCode = 1;
    if (!this.stdout.writableEnded) this.stdout.end();
    this.stdin.destroy();
    this.settle({ exitCode, signal, error: exitCode === undefined && signal === undefined ? error : undefined });
    this.emit('exit', this.exitCode, this.signalCode);
  }
}

function parseFrame(text: string): HostFrame | undefined {
  try {
    const parsed = hostFrameSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function lineKey(line: string): { type: string; uuid: string | undefined } {
  try {
    const { type, uuid } = JSON.parse(line) as { type?: unknown; uuid?: unknown };
    return { type: typeof type === 'string' ? type : '', uuid: typeof uuid === 'string' ? uuid : undefined };
  } catch {
    return { type: '', uuid: undefined };
  }
}

function closeError(code: number, reason: string, target: AgentHostTarget): Error {
  const agent = target.hello.agent ?? '';
  if (code === agentHostCloseCodes.agentNotFound)
    return new AgentSessionError({
      reason: 'session-not-found',
      message: `The agent host has no agent ${agent}`,
      provider: target.provider,
    });
  if (code === agentHostCloseCodes.agentExists)
    return new AgentSessionError({
      reason: 'process-exited',
      message: `Agent ${agent} is already running on the host; attach to it instead`,
      provider: target.provider,
    });
  return new SandboxProviderError({
    message: `The agent host closed the connection (${code}${reason ? `: ${reason}` : ''})`,
    provider: target.provider,
  });
}
