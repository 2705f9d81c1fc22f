/**
 * Typed events. Every provider owns one emitter (`provider.events`) and emits the events of all
 * its sandboxes on it. Listeners run synchronously; a throwing listener does not affect the
 * sandbox operation.
 */
import { EventEmitter } from 'eventemitter3';

/** A setting the provider could not honour exactly, and that is not security-relevant. */
export type SandboxWarning =
  | { readonly type: 'unsupported-setting'; readonly setting: string; readonly details: string }
  | { readonly type: 'other'; readonly message: string };

export interface SandboxEvents {
  'sandbox-created': [event: { provider: string; sandboxId: string; name: string | undefined; durationMs: number }];
  'sandbox-terminated': [event: { provider: string; sandboxId: string; reason: string }];
  'exec-start': [event: { provider: string; sandboxId: string; execId: string; command: readonly string[] | string }];
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
  retry: [event: { provider: string; operation: string; attempt: number; error: unknown }];
  warning: [event: { provider: string; sandboxId: string | undefined; warning: SandboxWarning }];
}

export class SandboxEmitter extends EventEmitter<SandboxEvents> {}
