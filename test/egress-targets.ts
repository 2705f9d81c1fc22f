/**
 * The conformance suite's `networkTargets` on the test internet (`test/egress-internet.ts`): a
 * harness passes these with a provider whose `egressNetwork` is a started test internet.
 */
import type { NetworkTargets } from '../src/testing/index.js';
import { testInternetNames } from './egress-internet.js';

export const egressTargets: NetworkTargets = {
  // HTTPS, so the suite goes through CONNECT (and the SNI check) as most real clients do.
  allowedUrl: 'https://allowed.test/',
  allowedBody: `hello from ${testInternetNames['allowed.test']}`,
  deniedUrl: 'https://denied.test/',
  otherAllowedUrl: 'https://other.allowed.test/',
  allowedAddress: testInternetNames['allowed.test'],
};
