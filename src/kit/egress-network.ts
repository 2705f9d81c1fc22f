/**
 * The outside world as an egress proxy sees it: how a host name resolves and how a TCP
 * connection is opened. The system one is the default; tests hand the proxy their own (names
 * such as `allowed.test` resolving to documentation addresses that dial servers the test
 * opened on loopback), so no test traffic leaves the machine and the policy code under test is
 * the real one.
 */
import { lookup } from 'node:dns/promises';
import { type Socket, connect } from 'node:net';
import { raceWithSignal } from './signals.js';

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

/**
 * The host's resolver (`dns.lookup`, all addresses, in the resolver's order) and `net.connect`.
 * `dns.lookup` runs on libuv's thread pool and cannot be cancelled: an abort settles the call at
 * once and the lookup's late answer is dropped.
 */
export const systemEgressNetwork: EgressNetwork = {
  async resolve(hostname, signal) {
    const answers = await raceWithSignal(lookup(hostname, { all: true, verbatim: true }), { signal, operation: 'resolve' });
    return answers.map((answer) => answer.address);
  },
  dial(address, port, signal) {
    return new Promise<Socket>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const socket = connect({ host: address, port });
      const onAbort = (): void => {
        socket.destroy();
        reject(signal.reason);
      };
      const onError = (error: Error): void => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once('error', onError);
      socket.once('connect', () => {
        signal.removeEventListener('abort', onAbort);
        socket.removeListener('error', onError);
        resolve(socket);
      });
    });
  },
};
