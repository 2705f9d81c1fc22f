/**
 * What the API server does to a pod on its way in: defaults (restart policy, grace period, DNS
 * policy, pull policy, `status.phase: Pending`), validation (422 `Invalid` naming the field), and
 * the update rule: a running pod's spec may change only in container images,
 * `activeDeadlineSeconds` (set, or lowered: never raised or unset), removed `schedulingGates` and
 * added tolerations.
 */
import { invalid } from './k8s-status.js';
import type { KubeObject } from './k8s-store.js';

type Spec = Record<string, unknown> & {
  containers?: Array<Record<string, unknown>>;
  activeDeadlineSeconds?: number;
  schedulingGates?: Array<{ name: string }>;
  tolerations?: unknown[];
};

export function defaultPod(pod: KubeObject): void {
  const spec = (pod.spec ?? {}) as Spec;
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.schedulerName ??= 'default-scheduler';
  spec.serviceAccountName ??= 'default';
  spec.securityContext ??= {};
  spec.enableServiceLinks ??= true;
  for (const container of spec.containers ?? []) {
    const image = String(container.image ?? '');
    container.imagePullPolicy ??= image.endsWith(':latest') || !/:[^/]+$/.test(image) ? 'Always' : 'IfNotPresent';
    container.terminationMessagePath ??= '/dev/termination-log';
    container.terminationMessagePolicy ??= 'File';
    container.resources ??= {};
    const resources = container.resources as { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
    // Requests default to limits, as the API server defaults them.
    if (resources.limits && !resources.requests) resources.requests = { ...resources.limits };
  }
  pod.spec = spec;
  pod.status = { phase: 'Pending', qosClass: 'BestEffort' };
}

export function validatePod(pod: KubeObject): void {
  const name = pod.metadata.name || pod.metadata.generateName || '';
  const spec = pod.spec as Spec;
  const causes: Array<{ field: string; message: string }> = [];
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) causes.push({ field: 'spec.containers', message: 'Required value' });
  const seen = new Set<string>();
  (spec.containers ?? []).forEach((container, index) => {
    const containerName = container.name;
    if (typeof containerName !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(containerName) || containerName.length > 63) {
      causes.push({
        field: `spec.containers[${index}].name`,
        message:
          containerName === undefined
            ? 'Required value'
            : `Invalid value: "${String(containerName)}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'`,
      });
    } else if (seen.has(containerName))
      causes.push({ field: `spec.containers[${index}].name`, message: `Duplicate value: "${containerName}"` });
    else seen.add(containerName);
    if (typeof container.image !== 'string' || container.image.trim() === '')
      causes.push({ field: `spec.containers[${index}].image`, message: 'Required value' });
    for (const key of ['command', 'args'] as const) {
      const value = container[key];
      if (value !== undefined && (!Array.isArray(value) || value.some((part) => typeof part !== 'string')))
        causes.push({ field: `spec.containers[${index}].${key}`, message: 'Invalid value: must be a list of strings' });
    }
  });
  if (spec.activeDeadlineSeconds !== undefined && (!Number.isInteger(spec.activeDeadlineSeconds) || spec.activeDeadlineSeconds <= 0)) {
    causes.push({
      field: 'spec.activeDeadlineSeconds',
      message: `Invalid value: ${String(spec.activeDeadlineSeconds)}: must be between 1 and 2147483647, inclusive`,
    });
  }
  if (!['Always', 'OnFailure', 'Never'].includes(String(spec.restartPolicy))) {
    causes.push({
      field: 'spec.restartPolicy',
      message: `Unsupported value: "${String(spec.restartPolicy)}": supported values: "Always", "OnFailure", "Never"`,
    });
  }
  if (causes.length > 0) throw invalid('Pod', name, causes);
}

/** Throws 422 for a pod update the API server refuses. */
export function checkPodUpdate(previous: KubeObject, next: KubeObject): void {
  const name = previous.metadata.name;
  const before = previous.spec as Spec;
  const after = (next.spec ?? {}) as Spec;
  const causes: Array<{ field: string; message: string }> = [];
  if (before.activeDeadlineSeconds !== undefined) {
    if (after.activeDeadlineSeconds === undefined || after.activeDeadlineSeconds === null) {
      causes.push({
        field: 'spec.activeDeadlineSeconds',
        message: 'Invalid value: "null": must not update from a positive integer to nil value',
      });
    } else if (after.activeDeadlineSeconds > before.activeDeadlineSeconds) {
      causes.push({
        field: 'spec.activeDeadlineSeconds',
        message: `Invalid value: ${after.activeDeadlineSeconds}: must be less than or equal to previous value`,
      });
    }
  }
  if (
    after.activeDeadlineSeconds !== undefined &&
    after.activeDeadlineSeconds !== null &&
    (!Number.isInteger(after.activeDeadlineSeconds) || after.activeDeadlineSeconds <= 0)
  ) {
    causes.push({
      field: 'spec.activeDeadlineSeconds',
      message: `Invalid value: ${String(after.activeDeadlineSeconds)}: must be between 1 and 2147483647, inclusive`,
    });
  }
  const gatesBefore = (before.schedulingGates ?? []).map((gate) => gate.name);
  const gatesAfter = (after.schedulingGates ?? []).map((gate) => gate.name);
  if (gatesAfter.some((gate) => !gatesBefore.includes(gate)))
    causes.push({ field: 'spec.schedulingGates', message: 'Forbidden: only deletion is allowed, but found new scheduling gate' });
  if (gatesBefore.length === 0 && gatesAfter.length > 0)
    causes.push({ field: 'spec.schedulingGates', message: 'Forbidden: only deletion is allowed' });
  const masked = (spec: Spec) =>
    JSON.stringify({
      ...spec,
      activeDeadlineSeconds: undefined,
      schedulingGates: undefined,
      tolerations: undefined,
      containers: (spec.containers ?? []).map((container) => ({ ...container, image: undefined })),
    });
  if (masked(before) !== masked(after)) {
    causes.push({
      field: 'spec',
      message:
        'Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
    });
  }
  if (causes.length > 0) throw invalid('Pod', name, causes);
}
