/**
 * The resources the emulator serves and the discovery documents that list them (`/api`,
 * `/api/v1`, `/apis`, `/apis/<group>/<version>`, `/version`), which kubectl reads before any
 * call. Only what is listed here is served; everything else is a loud 404.
 */

export interface ResourceType {
  /** Plural, lower case: `pods`. */
  readonly resource: string;
  readonly kind: string;
  readonly listKind: string;
  /** `''` for the core group. */
  readonly group: string;
  readonly version: string;
  readonly namespaced: boolean;
  readonly singular: string;
  readonly shortNames?: readonly string[];
  /** Selectable fields beyond `metadata.name` and `metadata.namespace`. */
  readonly fields: readonly string[];
  readonly verbs: readonly string[];
  readonly subresources?: ReadonlyArray<{ name: string; kind: string; verbs: readonly string[] }>;
}

const crud = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'] as const;

export const pods: ResourceType = {
  resource: 'pods',
  kind: 'Pod',
  listKind: 'PodList',
  group: '',
  version: 'v1',
  namespaced: true,
  singular: 'pod',
  shortNames: ['po'],
  fields: [
    'status.phase',
    'spec.nodeName',
    'spec.restartPolicy',
    'spec.schedulerName',
    'spec.serviceAccountName',
    'status.podIP',
    'status.nominatedNodeName',
  ],
  verbs: crud,
  subresources: [
    { name: 'exec', kind: 'PodExecOptions', verbs: ['create', 'get'] },
    { name: 'portforward', kind: 'PodPortForwardOptions', verbs: ['create', 'get'] },
    { name: 'log', kind: 'Pod', verbs: ['get'] },
    { name: 'status', kind: 'Pod', verbs: ['get', 'patch', 'update'] },
  ],
};

export const secrets: ResourceType = {
  resource: 'secrets',
  kind: 'Secret',
  listKind: 'SecretList',
  group: '',
  version: 'v1',
  namespaced: true,
  singular: 'secret',
  fields: ['type'],
  verbs: crud,
};

export const configMaps: ResourceType = {
  resource: 'configmaps',
  kind: 'ConfigMap',
  listKind: 'ConfigMapList',
  group: '',
  version: 'v1',
  namespaced: true,
  singular: 'configmap',
  shortNames: ['cm'],
  fields: [],
  verbs: crud,
};

export const services: ResourceType = {
  resource: 'services',
  kind: 'Service',
  listKind: 'ServiceList',
  group: '',
  version: 'v1',
  namespaced: true,
  singular: 'service',
  shortNames: ['svc'],
  fields: [],
  verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
};

export const events: ResourceType = {
  resource: 'events',
  kind: 'Event',
  listKind: 'EventList',
  group: '',
  version: 'v1',
  namespaced: true,
  singular: 'event',
  shortNames: ['ev'],
  fields: ['involvedObject.kind', 'involvedObject.name', 'involvedObject.namespace', 'involvedObject.uid', 'reason', 'type'],
  verbs: crud,
};

export const namespaces: ResourceType = {
  resource: 'namespaces',
  kind: 'Namespace',
  listKind: 'NamespaceList',
  group: '',
  version: 'v1',
  namespaced: false,
  singular: 'namespace',
  shortNames: ['ns'],
  fields: ['status.phase'],
  verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
};

export const networkPolicies: ResourceType = {
  resource: 'networkpolicies',
  kind: 'NetworkPolicy',
  listKind: 'NetworkPolicyList',
  group: 'networking.k8s.io',
  version: 'v1',
  namespaced: true,
  singular: 'networkpolicy',
  shortNames: ['netpol'],
  fields: [],
  verbs: crud,
};

export const runtimeClasses: ResourceType = {
  resource: 'runtimeclasses',
  kind: 'RuntimeClass',
  listKind: 'RuntimeClassList',
  group: 'node.k8s.io',
  version: 'v1',
  namespaced: false,
  singular: 'runtimeclass',
  fields: [],
  verbs: crud,
};

export const allResources: readonly ResourceType[] = [
  pods,
  secrets,
  configMaps,
  services,
  events,
  namespaces,
  networkPolicies,
  runtimeClasses,
];

/** `v1` or `networking.k8s.io/v1`. */
export function apiVersionOf(type: ResourceType): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

/** The Kubernetes version the emulator reports: that of the machine's kubectl (its gcloud dispatcher picks the client matching the server's minor version); v5 exec is on by default from 1.30. */
export const emulatedVersion = { major: '1', minor: '32', gitVersion: 'v1.32.0-sandport-emulator', platform: 'linux/amd64' };

export function versionDocument(): Record<string, unknown> {
  return {
    ...emulatedVersion,
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2026-12-01T00:00:00Z',
    goVersion: 'go1.22.0',
    compiler: 'gc',
  };
}

function resourceEntries(types: readonly ResourceType[]): unknown[] {
  return types.flatMap((type) => [
    {
      name: type.resource,
      singularName: type.singular,
      namespaced: type.namespaced,
      kind: type.kind,
      verbs: type.verbs,
      ...(type.shortNames ? { shortNames: type.shortNames } : {}),
    },
    ...(type.subresources ?? []).map((sub) => ({
      name: `${type.resource}/${sub.name}`,
      singularName: '',
      namespaced: type.namespaced,
      kind: sub.kind,
      verbs: sub.verbs,
    })),
  ]);
}

/** `GET /api`. */
export function coreVersions(serverAddress: string): Record<string, unknown> {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

/** `GET /api/v1` or `GET /apis/<group>/<version>`; undefined for a group version not served. */
export function resourceList(group: string, version: string): Record<string, unknown> | undefined {
  const types = allResources.filter((type) => type.group === group && type.version === version);
  if (types.length === 0) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group ? `${group}/${version}` : version,
    resources: resourceEntries(types),
  };
}

function groupsServed(): Array<{ name: string; version: string }> {
  const seen = new Map<string, string>();
  for (const type of allResources) if (type.group) seen.set(type.group, type.version);
  return [...seen].map(([name, version]) => ({ name, version }));
}

/** `GET /apis/<group>`; undefined for a group not served. */
export function groupDocument(name: string): Record<string, unknown> | undefined {
  const group = groupsServed().find((entry) => entry.name === name);
  if (!group) return undefined;
  const version = { groupVersion: `${group.name}/${group.version}`, version: group.version };
  return { kind: 'APIGroup', apiVersion: 'v1', name: group.name, versions: [version], preferredVersion: version };
}

/** `GET /apis`. */
export function groupList(): Record<string, unknown> {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: groupsServed().map((entry) => groupDocument(entry.name)),
  };
}
