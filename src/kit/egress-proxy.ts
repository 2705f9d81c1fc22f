/**
 * The egress proxy that enforces a sandbox's network allowlist on providers that give the
 * sandbox no route out (local, Docker). One listener speaks both HTTP proxy (CONNECT, and
 * absolute-form requests for plain HTTP) and SOCKS5 (told apart by the first byte), so the
 * sandbox needs one bridge. The proxy resolves names itself (the sandbox has no DNS), checks
 * each resolved address (no rebinding onto loopback or the metadata address), checks that a
 * TLS ClientHello sent through a CONNECT names the host that was allowed (SNI), and reports
 * each connection as an `egress` event.
 */
import type { SandboxEmitter } from '../spec/events.js';
import type { ParsedNetworkPolicy } from '../spec/options.js';
import type { EgressNetwork } from './egress-network.js';

/** Where the proxy listens: a unix socket (bridged into the sandbox) or a TCP address. */
export type EgressListen = { readonly path: string } | { readonly host: string; readonly port: number };

export interface EgressProxyOptions {
  readonly provider: string;
  readonly sandboxId: string;
  /** The allowlist, or `'block'` (every connection denied). */
  readonly policy: Exclude<ParsedNetworkPolicy, 'allow'>;
  readonly listen: EgressListen;
  /** Where `egress` events go. */
  readonly events: SandboxEmitter;
  /** @default systemEgressNetwork */
  readonly network?: EgressNetwork;
  /** Milliseconds to resolve and dial a destination before the connection is refused. @default 10 000 */
  readonly connectTimeoutMs?: number;
}

/** A running egress proxy, one per sandbox. */
export interface EgressProxy {
  /** Where it listens (the TCP port is the one the system chose for port 0). */
  readonly listen: EgressListen;
  /** Replaces the policy for connections opened from now on (`Sandbox.updateNetwork`). */
  setPolicy(policy: Exclude<ParsedNetworkPolicy, 'allow'>): void;
  /** Stops listening and destroys every connection through it. Idempotent. */
  close(): Promise<void>;
}

/** Starts a proxy; resolves once it listens. */
export declare function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy>;
