/**
 * Typed events. Every provider owns one emitter (`provider.events`) and emits the events of all
 * its sandboxes on it. Listeners run synchronously; a throwing listener does not affect the
 * sandbox operation. Secrets never appear in a payload.
 */
import { EventEmitter } from 'eventemitter3';
import type { Command } from './options.js';
import type { SandboxEndReason } from './sandbox.js';

/** A setting the provider could not honour exactly, and that is not security-relevant. */
export type SandboxWarning =
  | {
      readonly type: 'unsupported-setting';
      /** The option, as a dotted path: `'timeoutMs'`, `'ports.encrypted'`. */
      readonly setting: string;
      /** What the provider did instead, for a person to read. */
      readonly details: string;
    }
  | { readonly type: 'other'; readonly message: string };

export interface SandboxEvents {
  /** A sandbox is ready (`create` is about to resolve). `durationMs`: milliseconds `create` took. */
  'sandbox-created': [event: { provider: string; sandboxId: string; name: string | undefined; durationMs: number }];
  /** A sandbox ended, once per sandbox, whatever ended it. */
  'sandbox-terminated': [event: { provider: string; sandboxId: string; reason: SandboxEndReason }];
  /** A command started (`exec`, and `run` through it). `execId` pairs it with its `exec-end`. */
  'exec-start': [event: { provider: string; sandboxId: string; execId: string; command: Command }];
  /**
   * A command ended: `exitCode` and `signal` as in `ExitStatus` (both `undefined` when it ended
   * with an error, a timeout or the sandbox), `durationMs` in milliseconds since `exec-start`.
   */
  'exec-end': [
    event: {
      provider: string;
      sandboxId: string;
      execId: string;
      exitCode: number | undefined;
      signal: string | undefined;
      durationMs: number;
    },
  ];
  /** A line of an image build's log (providers that build `{ base, commands }` images). */
  'image-build': [event: { provider: string; image: string; line: string }];
  /**
   * An idempotent call failed with a transient error and is about to be retried. `attempt` is
   * the number of the attempt that failed, from 1. `error` is what it failed with: usually a
   * `SandboxError` with `retryable: true`, typed `unknown` because it comes from the provider.
   */
  retry: [event: { provider: string; operation: string; attempt: number; error: unknown }];
  /**
   * One outbound connection of a sandbox whose network is an allowlist, as its egress proxy
   * decided it (providers that filter through a proxy of ours: `capabilities.network.allowlistViaProxy`).
   * A denied connection is reported at once, and so is a `failed` one (the policy allowed it but
   * the destination could not be reached: refused, not resolving, timed out); an allowed one
   * when it closes, with the bytes it carried. `host` is what the program asked for (a name or an
   * address); `address` the address dialled or refused, when there was one. `reason` says why a
   * connection was denied or failed, for a person.
   */
  egress: [event: EgressEvent];
  /** A setting was adjusted (also in `sandbox.warnings`); `sandboxId` is `undefined` before the sandbox exists. */
  warning: [event: { provider: string; sandboxId: string | undefined; warning: SandboxWarning }];
}

/** How a sandbox's program reached its egress proxy. */
export type EgressProtocol = 'http' | 'connect' | 'socks5';

/** The payload of the `egress` event. */
export interface EgressEvent {
  readonly provider: string;
  readonly sandboxId: string;
  readonly decision: 'allowed' | 'denied' | 'failed';
  /** The destination as the program named it: a host name, or an IPv4/IPv6 address. */
  readonly host: string;
  readonly port: number;
  /** The address dialled (allowed connections), or the one that was refused. */
  readonly address: string | undefined;
  readonly protocol: EgressProtocol;
  /** Why the connection was denied or failed, for a person to read; `undefined` when allowed. */
  readonly reason: string | undefined;
  /** Bytes from the sandbox to the destination (0 unless allowed). */
  readonly bytesSent: number;
  /** Bytes from the destination to the sandbox (0 unless allowed). */
  readonly bytesReceived: number;
  /** Milliseconds the connection was open (0 unless allowed). */
  readonly durationMs: number;
}

/** The emitter type of `SandboxProvider.events`. */
export class SandboxEmitter extends EventEmitter<SandboxEvents> {}
