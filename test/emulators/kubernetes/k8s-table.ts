/**
 * Server-side printing: the `Table` kubectl asks for (`Accept: application/json;as=Table;…`) on
 * get and list, so `kubectl get pods` shows READY / STATUS / RESTARTS / AGE as against a cluster.
 * Pods get kubectl's pod columns; every other resource gets Name and Created At. Watches are not
 * served as tables (`kubectl get -w` falls back to printing objects itself).
 */
import type { IncomingMessage } from 'node:http';
import type { ResourceType } from './k8s-resources.js';
import type { KubeObject } from './k8s-store.js';

/** True when the client asked for a Table (and accepts one of the versions served). */
export function wantsTable(headers: IncomingMessage['headers']): boolean {
  return /as=Table/.test(headers.accept ?? '') && /g=meta\.k8s\.io/.test(headers.accept ?? '');
}

function age(created: string | undefined): string {
  if (!created) return '<unknown>';
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(created)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h`;
}

type ContainerStatus = {
  ready?: boolean;
  restartCount?: number;
  state?: { waiting?: { reason?: string }; terminated?: { reason?: string } };
};

/** What kubectl prints in a pod's STATUS column. */
export function podStatusWord(pod: KubeObject): string {
  const status = (pod.status ?? {}) as {
    phase?: string;
    reason?: string;
    conditions?: Array<{ reason?: string }>;
    containerStatuses?: ContainerStatus[];
  };
  if (pod.metadata.deletionTimestamp) return 'Terminating';
  if (status.reason) return status.reason;
  const container = status.containerStatuses?.[0];
  if (container?.state?.waiting?.reason) return container.state.waiting.reason;
  if (container?.state?.terminated?.reason) return container.state.terminated.reason;
  if (status.conditions?.[0]?.reason === 'SchedulingGated') return 'SchedulingGated';
  return status.phase ?? 'Unknown';
}

function cellsFor(type: ResourceType, object: KubeObject): unknown[] {
  if (type.resource !== 'pods') return [object.metadata.name, object.metadata.creationTimestamp];
  const status = (object.status ?? {}) as { containerStatuses?: ContainerStatus[]; podIP?: string };
  const containers = ((object.spec as { containers?: unknown[] }).containers ?? []).length;
  const statuses = status.containerStatuses ?? [];
  const ready = statuses.filter((each) => each.ready).length;
  const restarts = statuses.reduce((total, each) => total + (each.restartCount ?? 0), 0);
  return [
    object.metadata.name,
    `${ready}/${containers}`,
    podStatusWord(object),
    restarts,
    age(object.metadata.creationTimestamp),
    status.podIP ?? '<none>',
    (object.spec as { nodeName?: string }).nodeName ?? '<none>',
  ];
}

function columnsFor(type: ResourceType): unknown[] {
  const column = (name: string, kind: string, priority = 0, format = '') => ({ name, type: kind, format, description: name, priority });
  if (type.resource !== 'pods') return [column('Name', 'string', 0, 'name'), column('Created At', 'date')];
  return [
    column('Name', 'string', 0, 'name'),
    column('Ready', 'string'),
    column('Status', 'string'),
    column('Restarts', 'integer'),
    column('Age', 'string'),
    column('IP', 'string', 1),
    column('Node', 'string', 1),
  ];
}

/** A `meta.k8s.io/v1` Table of `objects`; row objects as `includeObject` asks (`Metadata` by default, `Object`, `None`). */
export function tableOf(
  type: ResourceType,
  objects: KubeObject[],
  resourceVersion: string,
  includeObject: string | null,
): Record<string, unknown> {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: columnsFor(type),
    rows: objects.map((object) => ({
      cells: cellsFor(type, object),
      object:
        includeObject === 'None'
          ? undefined
          : includeObject === 'Object'
            ? object
            : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: object.metadata },
    })),
  };
}
