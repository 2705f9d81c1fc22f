/**
 * What the NetworkPolicies of a namespace mean for one pod's backing sandbox. The local provider
 * enforces three things (`'allow'`, a CIDR allowlist, nothing), so egress rules map onto them:
 *
 * - no policy with `policyTypes` Egress selects the pod: `'allow'` (outbound; the host's loopback
 *   services are never reachable, as with the local provider's own `'allow'`);
 * - an egress rule with no `to` (every destination): `'allow'`;
 * - an `ipBlock` of `0.0.0.0/0` or `::/0` with `except` entries (outbound only, the cluster's
 *   internal ranges excepted): `'allow'`: the emulator has no cluster ranges to except;
 * - other `ipBlock`s: their CIDRs as an allowlist; one with `except` entries is left out
 *   altogether (fail closed: the local provider cannot subtract ranges);
 * - `podSelector` / `namespaceSelector` peers (kube-dns, other pods): no destination exists in
 *   the emulator, so they allow nothing;
 * - ports are not mapped (an allowed CIDR is allowed on every port).
 *
 * A selected pod whose rules allow nothing gets an empty allowlist: no network but loopback, like
 * `'block'`, and unlike `'block'` still updatable when a policy changes later. Ingress rules are
 * stored and not enforced (port-forward enters inside the pod's network namespace on a cluster too).
 */
import type { KubeObject } from './k8s-store.js';
import { matchesSelectorObject, type LabelSelectorObject } from './k8s-selectors.js';

export type PodNetwork = 'allow' | { allowCidrs: string[]; allowDomains: string[] };

interface PolicyPeer {
  ipBlock?: { cidr: string; except?: string[] };
  podSelector?: LabelSelectorObject;
  namespaceSelector?: LabelSelectorObject;
}

interface PolicySpec {
  podSelector?: LabelSelectorObject;
  policyTypes?: string[];
  egress?: Array<{ to?: PolicyPeer[]; ports?: unknown[] }>;
}

/** `policyTypes` as the API server defaults it: Ingress always, Egress when `egress` is present. */
export function policyTypesOf(spec: PolicySpec): string[] {
  if (spec.policyTypes && spec.policyTypes.length > 0) return spec.policyTypes;
  return spec.egress ? ['Ingress', 'Egress'] : ['Ingress'];
}

/** The backing sandbox's network for `pod` under `policies` (those of its namespace). */
export function networkForPod(pod: KubeObject, policies: readonly KubeObject[]): PodNetwork {
  const labels = pod.metadata.labels;
  const selecting = policies
    .map((policy) => (policy.spec ?? {}) as PolicySpec)
    .filter((spec) => policyTypesOf(spec).includes('Egress') && matchesSelectorObject(spec.podSelector, labels));
  if (selecting.length === 0) return 'allow';
  const cidrs = new Set<string>();
  for (const spec of selecting) {
    for (const rule of spec.egress ?? []) {
      if (!rule.to || rule.to.length === 0) return 'allow';
      for (const peer of rule.to) {
        const block = peer.ipBlock;
        if (!block) continue;
        const everything = block.cidr === '0.0.0.0/0' || block.cidr === '::/0';
        if (everything && (block.except?.length ?? 0) > 0) return 'allow';
        if ((block.except?.length ?? 0) > 0) continue;
        cidrs.add(block.cidr);
      }
    }
  }
  if (cidrs.has('0.0.0.0/0') && cidrs.has('::/0')) return 'allow';
  return { allowCidrs: [...cidrs], allowDomains: [] };
}

export function sameNetwork(a: PodNetwork, b: PodNetwork): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
