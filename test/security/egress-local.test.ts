/**
 * Every egress-allowlist bypass of issue 15 tried against the local provider (bubblewrap with no
 * network device but loopback, and the bridge to its egress proxy).
 */
import { createLocalSandboxProvider } from '../../adapters/local/index.js';
import { defineEgressAttacks } from './egress-attacks.js';

defineEgressAttacks('local', {
  makeProvider: (network) => createLocalSandboxProvider(network ? { egressNetwork: network } : {}),
});
