/**
 * The Vercel emulator's network plans (vercel-network.ts) as pure functions: what of Vercel's
 * policy forms the local sandbox's allowlist honours, the answer shape, and the 400s and 501s.
 */
import { describe, expect, it } from 'vitest';
import { HttpError } from './vercel-http.js';
import { apiPolicy, fromApiPolicy, openAllowlist, planLocalNetwork, readPolicy } from './vercel-network.js';

const call = 'the test call';

function refusal(run: () => unknown): HttpError {
  try {
    run();
  } catch (error) {
    if (error instanceof HttpError) return error;
    throw error;
  }
  throw new Error('it did not throw');
}

describe('Vercel network policies on the local allowlist', () => {
  it('maps allow-all to the open allowlist and deny-all to the empty one (both changeable later)', () => {
    expect(planLocalNetwork(readPolicy({ mode: 'allow-all' }, 'networkPolicy', call), call)).toEqual(openAllowlist);
    expect(planLocalNetwork(readPolicy({ mode: 'deny-all' }, 'networkPolicy', call), call)).toEqual({ allowCidrs: [], allowDomains: [] });
  });

  it('maps domains and allowed subnets to the allowlist, and answers them in the legacy custom shape', () => {
    const policy = readPolicy({ allow: ['example.com', '*.npmjs.org'], subnets: { allow: ['10.0.0.0/8'] } }, 'networkPolicy', call);
    expect(planLocalNetwork(policy, call)).toEqual({ allowCidrs: ['10.0.0.0/8'], allowDomains: ['example.com', '*.npmjs.org'] });
    expect(apiPolicy(policy)).toEqual({ mode: 'custom', allowedDomains: ['example.com', '*.npmjs.org'], allowedCIDRs: ['10.0.0.0/8'] });
    expect(fromApiPolicy(apiPolicy(policy))).toEqual(policy);
  });

  it('reads the legacy custom form and the record form without rules', () => {
    expect(readPolicy({ mode: 'custom', allowedDomains: ['a.test'], deniedCIDRs: ['10.1.0.0/16'] }, 'networkPolicy', call)).toEqual({
      mode: 'custom',
      allowDomains: ['a.test'],
      allowCidrs: [],
      denyCidrs: ['10.1.0.0/16'],
    });
    expect(readPolicy({ allow: { 'a.test': [], 'b.test': [] } }, 'networkPolicy', call).allowDomains).toEqual(['a.test', 'b.test']);
  });

  it('lets a denied subnet remove an allowed one it covers, IPv4 and IPv6', () => {
    const policy = readPolicy(
      { subnets: { allow: ['10.1.2.0/24', '192.168.0.0/16', '2001:db8::/48'], deny: ['10.0.0.0/8', '2001:db8::/32'] } },
      'networkPolicy',
      call,
    );
    expect(planLocalNetwork(policy, call)).toEqual({ allowCidrs: ['192.168.0.0/16'], allowDomains: [] });
  });

  it('refuses a denied subnet that cuts a hole in an allowed one (501, naming the block)', () => {
    const policy = readPolicy({ subnets: { allow: ['10.0.0.0/8'], deny: ['10.1.0.0/16'] } }, 'networkPolicy', call);
    const error = refusal(() => planLocalNetwork(policy, call));
    expect(error.status).toBe(501);
    expect(error.message).toContain('10.0.0.0/8');
  });

  it('takes "*" as every domain, unless subnets are denied too', () => {
    expect(planLocalNetwork(readPolicy({ allow: ['*'] }, 'networkPolicy', call), call)).toEqual(openAllowlist);
    const error = refusal(() =>
      planLocalNetwork(readPolicy({ allow: ['*'], subnets: { deny: ['10.0.0.0/8'] } }, 'networkPolicy', call), call),
    );
    expect(error.status).toBe(501);
  });

  it('refuses per-domain rules with a 501 naming the domains', () => {
    const error = refusal(() => readPolicy({ allow: { 'api.test': [{ forwardURL: 'https://elsewhere.test' }] } }, 'networkPolicy', call));
    expect(error.status).toBe(501);
    expect(error.message).toContain('api.test');
    const legacy = refusal(() => readPolicy({ mode: 'custom', injectionRules: [{ domain: 'inj.test' }] }, 'networkPolicy', call));
    expect(legacy.message).toContain('inj.test');
  });

  it('refuses malformed entries with a 400 naming the field', () => {
    expect(refusal(() => readPolicy({ allow: ['not a domain'] }, 'networkPolicy', call)).message).toContain('networkPolicy.allow.0');
    expect(refusal(() => readPolicy({ subnets: { allow: ['10.0.0.0/33'] } }, 'networkPolicy', call)).message).toContain(
      'networkPolicy.subnets.allow.0',
    );
    expect(refusal(() => readPolicy({ mode: 'open' }, 'networkPolicy', call)).message).toContain('networkPolicy.mode');
    expect(refusal(() => readPolicy('allow-all', 'networkPolicy', call)).status).toBe(400);
  });
});
