/** Modal's outbound settings as the local sandbox's network, and which live changes the emulator makes (pure). */
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { allowlistNetwork, createNetwork, networkAccessType, planNetworkChange, type LocalNetwork } from './modal-network.js';
import { RpcError } from './modal-rpc.js';

function refusal(run: () => unknown): RpcError {
  try {
    run();
  } catch (error) {
    if (error instanceof RpcError) return error;
    throw error;
  }
  throw new Error('no refusal');
}

const allowlist = (allowedCidrs: string[], allowedDomains: string[]) => ({
  networkAccess: { networkAccessType: networkAccessType.allowlist, allowedCidrs, allowedDomains },
});

describe('createNetwork', () => {
  it('is open by default and with OPEN, blocked with blockNetwork or BLOCKED', () => {
    expect(createNetwork({})).toBe('allow');
    expect(createNetwork({ networkAccess: { networkAccessType: networkAccessType.open } })).toBe('allow');
    expect(createNetwork({ blockNetwork: true })).toBe('block');
    expect(createNetwork({ networkAccess: { networkAccessType: networkAccessType.blocked } })).toBe('block');
  });

  it('keeps an allowlist’s CIDRs and domains (empty lists allow nothing); a wildcard entry allows everything', () => {
    expect(createNetwork(allowlist(['10.0.0.0/8'], ['*.example.com']))).toEqual({
      allowCidrs: ['10.0.0.0/8'],
      allowDomains: ['*.example.com'],
    });
    expect(createNetwork(allowlist([], []))).toEqual({ allowCidrs: [], allowDomains: [] });
    expect(createNetwork(allowlist(['0.0.0.0/0'], []))).toBe('allow');
    expect(allowlistNetwork({ allowedCidrs: [], allowedDomains: ['*'] })).toBe('allow');
  });
});

describe('planNetworkChange', () => {
  const list: LocalNetwork = { allowCidrs: [], allowDomains: ['allowed.test'] };
  const other = { allowCidrs: ['198.51.100.0/24'], allowDomains: [] };

  it('updates an allowlisted sandbox to another list, an empty one included', () => {
    expect(planNetworkChange(list, other)).toEqual({ kind: 'update', policy: other });
    expect(planNetworkChange(list, { allowCidrs: [], allowDomains: [] })).toEqual({
      kind: 'update',
      policy: { allowCidrs: [], allowDomains: [] },
    });
  });

  it('keeps an open sandbox asked to allow everything', () => {
    expect(planNetworkChange('allow', 'allow')).toEqual({ kind: 'keep' });
  });

  it('refuses with UNIMPLEMENTED naming the call what Modal does and a local sandbox cannot', () => {
    const cases: Array<[LocalNetwork, LocalNetwork, string]> = [
      [list, 'allow', 'to everything'],
      ['allow', list, 'keeps its route out'],
      ['block', list, 'blockNetwork has no network'],
      ['block', 'allow', 'blockNetwork has no network'],
    ];
    for (const [current, next, why] of cases) {
      const error = refusal(() => planNetworkChange(current, next));
      expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
      expect(error.message).toContain('TaskSetNetworkAccess (Sandbox.updateNetworkPolicy) is not emulated');
      expect(error.message).toContain(why);
    }
  });
});
