/**
 * The outside world as an egress proxy sees it: how a host name resolves and how a TCP
 * connection is opened. The system one is the default; tests hand the proxy their own (names
 * such as `allowed.test` resolving to documentation addresses that dial servers the test
 * opened on loopback), so no test traffic leaves the machine and the policy code under test is
 * the real one.
 */
import type { Socket } from 'node:net';

/** How an egress proxy resolves names and opens connections. */
export interface EgressNetwork {
  /**
   * The addresses `hostname` resolves to (IPv4 and IPv6, as text), in the order to try them.
   * Rejects when the name does not resolve. Never called for an address literal.
   */
  resolve(hostname: string, signal: AbortSignal): Promise<string[]>;
  /** Opens a TCP connection to `address` (an address literal the policy allowed) and `port`. */
  dial(address: string, port: number, signal: AbortSignal): Promise<Socket>;
}

/** The host's resolver (`dns.lookup`, all addresses) and `net.connect`. */
export declare const systemEgressNetwork: EgressNetwork;
