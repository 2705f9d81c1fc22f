/** E2B's egress rules as the local sandbox's network, and which live changes the emulator makes (pure). */
import { describe, expect, it } from 'vitest';
import { HttpError } from './e2b-http.js';
import { planEgress, planNetworkChange, type LocalNetwork } from './e2b-network.js';

function refusal(run: () => unknown): HttpError {
  try {
    run();
  } catch (error) {
    if (error instanceof HttpError) return error;
    throw error;
  }
  throw new Error('no refusal');
}

describe('planEgress', () => {
  it('is open without a deny of all traffic, whatever allowOut says (it only makes exceptions)', () => {
    expect(planEgress(undefined, undefined, 'network.')).toBe('allow');
    expect(planEgress(true, { allowOut: ['example.com'] }, 'network.')).toBe('allow');
  });

  it('blocks when all traffic is denied and nothing allowed out, by denyOut or allowInternetAccess: false', () => {
    expect(planEgress(undefined, { denyOut: ['0.0.0.0/0'] }, 'network.')).toBe('block');
    expect(planEgress(false, undefined, 'network.')).toBe('block');
    expect(planEgress(false, { allowOut: [] }, '')).toBe('block');
  });

  it('allows the allowOut list when all else is denied: CIDRs, addresses as single-address blocks, host names', () => {
    expect(
      planEgress(
        undefined,
        { denyOut: ['0.0.0.0/0'], allowOut: ['10.0.0.0/8', '1.1.1.1', '2001:db8::1', 'api.example.com', '*.example.org'] },
        '',
      ),
    ).toEqual({ allowCidrs: ['10.0.0.0/8', '1.1.1.1/32', '2001:db8::1/128'], allowDomains: ['api.example.com', '*.example.org'] });
    // allowInternetAccess: false is the same deny; other denyOut entries are covered by it.
    expect(planEgress(false, { allowOut: ['allowed.test'], denyOut: ['10.0.0.0/8'] }, '')).toEqual({
      allowCidrs: [],
      allowDomains: ['allowed.test'],
    });
  });

  it('is open again when allowOut lists all traffic (allowOut wins over denyOut)', () => {
    expect(planEgress(undefined, { denyOut: ['0.0.0.0/0'], allowOut: ['0.0.0.0/0', 'example.com'] }, '')).toBe('allow');
  });

  it('refuses a deny of some destinations only, naming denyOut', () => {
    const error = refusal(() => planEgress(undefined, { denyOut: ['10.0.0.0/8'], allowOut: ['10.1.0.0/16'] }, 'network.'));
    expect(error.status).toBe(400);
    expect(error.message).toContain('network.denyOut: denying single destinations (10.0.0.0/8)');
  });

  it('refuses a malformed allowOut entry by its index, egressProxy and rules', () => {
    for (const entry of ['10.0.0.0/33', 'not a host', '1.2.3.4/', 'exa mple.com']) {
      const error = refusal(() => planEgress(false, { allowOut: ['ok.example', entry] }, 'network.'));
      expect(error.status).toBe(400);
      expect(error.message).toContain(`network.allowOut.1: "${entry}"`);
    }
    expect(refusal(() => planEgress(false, { egressProxy: { address: 'p:1080' } }, 'network.')).message).toContain('network.egressProxy');
    expect(refusal(() => planEgress(false, { rules: { 'a.example': [{}] } }, '')).message).toMatch(/^rules:/);
  });
});

describe('planNetworkChange', () => {
  const list: LocalNetwork = { allowCidrs: [], allowDomains: ['allowed.test'] };
  const other = { allowCidrs: ['198.51.100.0/24'], allowDomains: [] };

  it('updates an allowlisted sandbox to another list or to block', () => {
    expect(planNetworkChange(list, other, 'sb')).toEqual({ kind: 'update', policy: other, state: other });
    // Blocked, it is still an allowlisted sandbox (an empty list), so a later list can be set again.
    const blocked = planNetworkChange(list, 'block', 'sb');
    expect(blocked).toEqual({ kind: 'update', policy: 'block', state: { allowCidrs: [], allowDomains: [] } });
    expect(planNetworkChange((blocked as { state: LocalNetwork }).state, list, 'sb')).toMatchObject({ kind: 'update', policy: list });
  });

  it('keeps a sandbox whose open or blocked network is asked for again', () => {
    expect(planNetworkChange('allow', 'allow', 'sb')).toEqual({ kind: 'keep' });
    expect(planNetworkChange('block', 'block', 'sb')).toEqual({ kind: 'keep' });
  });

  it('refuses with a 501 naming the call what E2B does and a local sandbox cannot', () => {
    const cases: Array<[LocalNetwork, LocalNetwork, string]> = [
      [list, 'allow', 'to all traffic'],
      ['block', 'allow', 'no route'],
      ['block', list, 'no route'],
      ['allow', 'block', 'keeps its route out'],
      ['allow', list, 'keeps its route out'],
    ];
    for (const [current, next, why] of cases) {
      const error = refusal(() => planNetworkChange(current, next, 'sb-1'));
      expect(error.status).toBe(501);
      expect(error.message).toContain('PUT /sandboxes/sb-1/network (updateNetwork) is not emulated');
      expect(error.message).toContain(why);
    }
  });
});
