/**
 * The emulator's scheduler and kubelet: each pod runs in one sandbox of the local provider, and
 * its phase, conditions and container state follow that sandbox.
 *
 * - Scheduling: a pod with `schedulingGates` waits (`PodScheduled=False`, `SchedulingGated`)
 *   until a patch removes them; one whose requests exceed the node (`nodeCapacity`; GPUs: none)
 *   stays Pending with `Unschedulable`, as no node fits.
 * - Start: the kubelet waits for the Secrets and ConfigMaps the pod mounts or reads env from
 *   (`ContainerCreating`), then "pulls" the image: a malformed reference is `InvalidImageName`; one
 *   whose registry host ends in `.invalid` is `ErrImagePull`, then `ImagePullBackOff`; any other
 *   maps to a local image (`images`, else the host image). Then the sandbox starts with the pod's
 *   env, working directory, limits (`cpu`, `memory`), declared container ports (for port-forward)
 *   and the network its NetworkPolicies give (k8s-network.ts), the secret and config-map volumes
 *   are written into it, and the container's `command` + `args` run as its main process.
 *   `startDelayMs` (default 200 ms) passes between the create and the start, as a kubelet takes a
 *   moment to see a pod: policies created right after the pod apply from its start.
 * - Running: Ready once the main process runs (a container without `command` or `args` idles, as
 *   an image whose entrypoint never exits).
 * - End: the main process's exit ends the pod (`Succeeded` on 0, `Failed` otherwise, with the
 *   container `terminated` `Completed`/`Error` and its exit code); a memory kill of the main
 *   process or of any exec ends it `OOMKilled` (cgroup v2 kills the whole container, as Kubernetes
 *   ≥ 1.28 sets `memory.oom.group`); `activeDeadlineSeconds` from the start ends it `Failed` with
 *   reason `DeadlineExceeded`. `restartPolicy` is read as `Never` whatever it says.
 * - Delete: SIGTERM to the main process, SIGKILL after the grace period, then the sandbox goes and
 *   the object is removed (DELETED on watches).
 */
import { chmod, chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { localMaxTimeoutMs, type LocalSandbox, type LocalSandboxProvider } from '../../../adapters/local/index.js';
import type { ExitStatus, SandboxProcess, Tunnel } from '../../../src/kit/index.js';
import { memoryMiBOf, parseQuantity } from './k8s-quantity.js';
import { networkForPod, sameNetwork, type PodNetwork } from './k8s-network.js';
import { configMaps, networkPolicies, pods, secrets } from './k8s-resources.js';
import type { KubeObject, KubeStore } from './k8s-store.js';

/** The node every pod lands on. */
export const nodeName = 'sandport-emulator-node';

export interface KubeletOptions {
  readonly store: KubeStore;
  readonly provider: LocalSandboxProvider;
  /** Kubernetes image reference → local image (`'host'` or an absolute rootfs directory). Unlisted images run on `defaultImage`. */
  readonly images: Readonly<Record<string, string>>;
  readonly defaultImage: string;
  /** Allocatable cores and MiB of the one node. */
  readonly nodeCapacity: { cpu: number; memoryMiB: number };
  readonly startDelayMs: number;
  /** False: NetworkPolicies are stored and not enforced (a cluster whose network plugin ignores them). */
  readonly enforceNetworkPolicy: boolean;
  /** Host directory under which each PersistentVolumeClaim (by namespace and claim name) is a directory, made on first use. */
  readonly claimRoot: string;
  /** What `'allow'` means for a pod's sandbox (the test internet's allowlist); the local provider's open network when undefined. */
  readonly openNetwork?: PodNetwork;
}

/** A running pod's backing sandbox and what the kubelet keeps about it. */
export interface PodRuntime {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  local: LocalSandbox | undefined;
  init: SandboxProcess | undefined;
  network: PodNetwork | undefined;
  tunnels: Record<number, Tunnel>;
  /** The main process's output, the last `logBytes` of it (for `pods/log`). */
  log: Buffer[];
  logSize: number;
  /** Followers of the log (`pods/log?follow=true`): each new chunk, then null at its end. */
  logFollowers: Set<(chunk: Buffer | null) => void>;
  logEnded: boolean;
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  deleting: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Set once the pod ended or was deleted: no further status writes. */
  done: boolean;
}

const logBytes = 1024 * 1024;
const referencePattern =
  /^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

type Container = {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: Array<{ name: string; value?: string; valueFrom?: Record<string, Record<string, string>> }>;
  envFrom?: Array<{
    secretRef?: { name: string; optional?: boolean };
    configMapRef?: { name: string; optional?: boolean };
    prefix?: string;
  }>;
  resources?: { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
  ports?: Array<{ containerPort: number }>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string }>;
};

type Volume = {
  name: string;
  secret?: { secretName: string; defaultMode?: number; items?: Array<{ key: string; path: string; mode?: number }>; optional?: boolean };
  configMap?: { name: string; defaultMode?: number; items?: Array<{ key: string; path: string; mode?: number }>; optional?: boolean };
  emptyDir?: Record<string, unknown>;
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  [other: string]: unknown;
};

type PodSpec = {
  containers: Container[];
  volumes?: Volume[];
  activeDeadlineSeconds?: number;
  terminationGracePeriodSeconds?: number;
  schedulingGates?: Array<{ name: string }>;
  [other: string]: unknown;
};

function specOf(pod: KubeObject): PodSpec {
  return pod.spec as PodSpec;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function condition(type: string, status: 'True' | 'False', reason?: string, message?: string): Record<string, unknown> {
  return { type, status, lastProbeTime: null, lastTransitionTime: now(), ...(reason ? { reason } : {}), ...(message ? { message } : {}) };
}

/** What a waiting container reports. */
function waiting(container: Container, reason: string, message?: string): Record<string, unknown> {
  return {
    name: container.name,
    image: container.image ?? '',
    imageID: '',
    ready: false,
    started: false,
    restartCount: 0,
    state: { waiting: { reason, ...(message ? { message } : {}) } },
  };
}

let nextPodIp = 2;

export class Kubelet {
  private readonly runtimes = new Map<string, PodRuntime>();
  private closed = false;

  constructor(private readonly options: KubeletOptions) {}

  /** The runtime of the pod with this uid. */
  runtime(uid: string): PodRuntime | undefined {
    return this.runtimes.get(uid);
  }

  /** Called after a pod is stored: schedules it and starts it in the background. */
  podCreated(pod: KubeObject): void {
    const runtime: PodRuntime = {
      uid: pod.metadata.uid,
      namespace: pod.metadata.namespace!,
      name: pod.metadata.name,
      local: undefined,
      init: undefined,
      network: undefined,
      tunnels: {},
      log: [],
      logSize: 0,
      logFollowers: new Set(),
      logEnded: false,
      phase: 'Pending',
      deleting: false,
      timer: undefined,
      done: false,
    };
    this.runtimes.set(runtime.uid, runtime);
    void this.admit(runtime).catch((error: unknown) => console.error(`[kubernetes emulator] pod ${runtime.name}:`, error));
  }

  /** Called after a user update of a pod (gates removed, deadline lowered). */
  podUpdated(pod: KubeObject, previous: KubeObject): void {
    const runtime = this.runtimes.get(pod.metadata.uid);
    if (!runtime || runtime.done) return;
    const gatesBefore = specOf(previous).schedulingGates?.length ?? 0;
    if (gatesBefore > 0 && (specOf(pod).schedulingGates?.length ?? 0) === 0 && runtime.phase === 'Pending') {
      void this.admit(runtime).catch((error: unknown) => console.error(`[kubernetes emulator] pod ${runtime.name}:`, error));
    }
    if (specOf(pod).activeDeadlineSeconds !== specOf(previous).activeDeadlineSeconds && runtime.phase === 'Running')
      this.armDeadline(runtime, pod);
  }

  /** Writes the pod's status through `change`, unless the pod is gone or is another pod of the same name. */
  private setStatus(runtime: PodRuntime, change: (status: Record<string, unknown>, pod: KubeObject) => void): void {
    try {
      this.options.store.update(pods, runtime.namespace, runtime.name, (pod) => {
        if (pod.metadata.uid !== runtime.uid) return pod;
        const status = (pod.status ?? {}) as Record<string, unknown>;
        change(status, pod);
        pod.status = status;
        return pod;
      });
    } catch {
      // The pod was deleted meanwhile.
    }
  }

  private current(runtime: PodRuntime): KubeObject | undefined {
    const pod = this.options.store.find(pods, runtime.namespace, runtime.name);
    return pod && pod.metadata.uid === runtime.uid ? pod : undefined;
  }

  private async admit(runtime: PodRuntime): Promise<void> {
    const pod = this.current(runtime);
    if (!pod || this.closed) return;
    const spec = specOf(pod);
    const container = spec.containers[0]!;
    if ((spec.schedulingGates?.length ?? 0) > 0) {
      this.setStatus(runtime, (status) => {
        status.conditions = [
          condition('PodScheduled', 'False', 'SchedulingGated', 'Scheduling is blocked due to non-empty scheduling gates'),
        ];
      });
      return;
    }
    const unfit = this.unfit(spec);
    if (unfit) {
      this.setStatus(runtime, (status) => {
        status.conditions = [
          condition(
            'PodScheduled',
            'False',
            'Unschedulable',
            `0/1 nodes are available: 1 Insufficient ${unfit}. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.`,
          ),
        ];
      });
      return;
    }
    try {
      this.options.store.update(pods, runtime.namespace, runtime.name, (stored) => {
        if (stored.metadata.uid !== runtime.uid) return stored;
        (stored.spec as PodSpec).nodeName = nodeName;
        stored.status = {
          phase: 'Pending',
          conditions: [condition('PodScheduled', 'True')],
          hostIP: '127.0.0.1',
          hostIPs: [{ ip: '127.0.0.1' }],
          startTime: now(),
          qosClass: qosClassOf(spec),
          containerStatuses: spec.containers.map((each) => waiting(each, 'ContainerCreating')),
        };
        return stored;
      });
    } catch {
      return;
    }
    runtime.timer = undefined;
    await this.waitForReferences(runtime, spec);
    if (!this.current(runtime) || runtime.deleting || this.closed) return;
    const image = container.image ?? '';
    if (!referencePattern.test(image)) {
      this.setStatus(runtime, (status) => {
        status.containerStatuses = [
          waiting(
            container,
            'InvalidImageName',
            `Failed to apply default image tag "${image}": couldn't parse image name "${image}": invalid reference format`,
          ),
        ];
      });
      return;
    }
    const registry = image.includes('/') ? image.split('/')[0]! : '';
    if (registry.endsWith('.invalid') || registry.split(':')[0]!.endsWith('.invalid')) {
      const message = `failed to pull and unpack image "${image}": failed to resolve reference "${image}": failed to do request: dial tcp: lookup ${registry}: no such host`;
      this.setStatus(runtime, (status) => {
        status.containerStatuses = [waiting(container, 'ErrImagePull', message)];
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      this.setStatus(runtime, (status) => {
        status.containerStatuses = [waiting(container, 'ImagePullBackOff', `Back-off pulling image "${image}": ErrImagePull: ${message}`)];
      });
      return;
    }
    if (this.options.startDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.options.startDelayMs));
    const latest = this.current(runtime);
    if (!latest || runtime.deleting || this.closed) return;
    await this.start(runtime, latest);
  }

  /** The first resource the pod asks for more of than the node has, or undefined. */
  private unfit(spec: PodSpec): string | undefined {
    let cpu = 0;
    let memory = 0;
    for (const container of spec.containers) {
      const requests = { ...container.resources?.limits, ...container.resources?.requests };
      cpu += parseQuantity(requests.cpu) ?? 0;
      memory += (parseQuantity(requests.memory) ?? 0) / 2 ** 20;
      for (const [name, value] of Object.entries(requests)) {
        if (name !== 'cpu' && name !== 'memory' && name !== 'ephemeral-storage' && (parseQuantity(value) ?? 0) > 0) return name;
      }
    }
    if (cpu > this.options.nodeCapacity.cpu) return 'cpu';
    if (memory > this.options.nodeCapacity.memoryMiB) return 'memory';
    return undefined;
  }

  /** Names of the Secrets and ConfigMaps the pod needs before it can start. */
  private references(spec: PodSpec): { secrets: Set<string>; configMaps: Set<string> } {
    const wanted = { secrets: new Set<string>(), configMaps: new Set<string>() };
    for (const volume of spec.volumes ?? []) {
      if (volume.secret && !volume.secret.optional) wanted.secrets.add(volume.secret.secretName);
      if (volume.configMap && !volume.configMap.optional) wanted.configMaps.add(volume.configMap.name);
    }
    for (const container of spec.containers) {
      for (const entry of container.env ?? []) {
        const secretRef = entry.valueFrom?.secretKeyRef;
        if (secretRef && !secretRef.optional) wanted.secrets.add(secretRef.name!);
        const configRef = entry.valueFrom?.configMapKeyRef;
        if (configRef && !configRef.optional) wanted.configMaps.add(configRef.name!);
      }
      for (const from of container.envFrom ?? []) {
        if (from.secretRef && !from.secretRef.optional) wanted.secrets.add(from.secretRef.name);
        if (from.configMapRef && !from.configMapRef.optional) wanted.configMaps.add(from.configMapRef.name);
      }
    }
    return wanted;
  }

  /** Waits until every Secret and ConfigMap the pod needs exists (or the pod goes away). */
  private async waitForReferences(runtime: PodRuntime, spec: PodSpec): Promise<void> {
    const wanted = this.references(spec);
    const missing = () =>
      [...wanted.secrets].some((name) => !this.options.store.find(secrets, runtime.namespace, name)) ||
      [...wanted.configMaps].some((name) => !this.options.store.find(configMaps, runtime.namespace, name));
    if (!missing()) return;
    await new Promise<void>((resolve) => {
      const stops: Array<() => void> = [];
      const check = () => {
        if (!missing() || !this.current(runtime) || runtime.deleting || this.closed) {
          for (const stop of stops) stop();
          resolve();
        }
      };
      const since = Number(this.options.store.resourceVersion);
      stops.push(this.options.store.watch('secrets', since, check));
      stops.push(this.options.store.watch('configmaps', since, check));
      stops.push(this.options.store.watch('pods', since, check));
      check();
    });
  }

  /** The network policies of the pod's namespace mean this for it (enforced or not). */
  private networkOf(pod: KubeObject): PodNetwork {
    const open = this.options.openNetwork ?? 'allow';
    if (!this.options.enforceNetworkPolicy) return open;
    const network = networkForPod(pod, this.options.store.list(networkPolicies, pod.metadata.namespace));
    return network === 'allow' ? open : network;
  }

  private env(pod: KubeObject, container: Container, runtimeIp: string): Record<string, string> {
    const env: Record<string, string> = { HOSTNAME: pod.metadata.name };
    const namespace = pod.metadata.namespace;
    const dataOf = (kind: 'secret' | 'configMap', name: string): Record<string, string> => {
      if (kind === 'secret') {
        const secret = this.options.store.find(secrets, namespace, name);
        return Object.fromEntries(
          Object.entries((secret?.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
        );
      }
      const map = this.options.store.find(configMaps, namespace, name);
      return { ...((map?.data ?? {}) as Record<string, string>) };
    };
    for (const from of container.envFrom ?? []) {
      const data = from.secretRef
        ? dataOf('secret', from.secretRef.name)
        : from.configMapRef
          ? dataOf('configMap', from.configMapRef.name)
          : {};
      for (const [key, value] of Object.entries(data))
        if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(`${from.prefix ?? ''}${key}`)) env[`${from.prefix ?? ''}${key}`] = value;
    }
    for (const entry of container.env ?? []) {
      if (entry.value !== undefined)
        env[entry.name] = entry.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole);
      else if (entry.valueFrom?.secretKeyRef) {
        const value = dataOf('secret', entry.valueFrom.secretKeyRef.name!)[entry.valueFrom.secretKeyRef.key!];
        if (value !== undefined) env[entry.name] = value;
      } else if (entry.valueFrom?.configMapKeyRef) {
        const value = dataOf('configMap', entry.valueFrom.configMapKeyRef.name!)[entry.valueFrom.configMapKeyRef.key!];
        if (value !== undefined) env[entry.name] = value;
      } else if (entry.valueFrom?.fieldRef) {
        const path = entry.valueFrom.fieldRef.fieldPath;
        const fields: Record<string, string | undefined> = {
          'metadata.name': pod.metadata.name,
          'metadata.namespace': namespace,
          'metadata.uid': pod.metadata.uid,
          'spec.nodeName': nodeName,
          'status.podIP': runtimeIp,
          'status.hostIP': '127.0.0.1',
        };
        const value = path ? fields[path] : undefined;
        if (value !== undefined) env[entry.name] = value;
      }
    }
    return env;
  }

  private async start(runtime: PodRuntime, pod: KubeObject): Promise<void> {
    const spec = specOf(pod);
    const container = spec.containers[0]!;
    const unsupported = (spec.volumes ?? []).find(
      (volume) => !volume.secret && !volume.configMap && !volume.emptyDir && !volume.persistentVolumeClaim,
    );
    if (unsupported) {
      const kind = Object.keys(unsupported).find((key) => key !== 'name') ?? 'unknown';
      this.setStatus(runtime, (status) => {
        status.containerStatuses = [
          waiting(
            container,
            'CreateContainerConfigError',
            `the Kubernetes emulator does not serve ${kind} volumes (volume "${unsupported.name}")`,
          ),
        ];
      });
      return;
    }
    const podIp = `10.244.0.${nextPodIp++ % 250 || 2}`;
    const limits = container.resources?.limits ?? {};
    const cpu = parseQuantity(limits.cpu);
    const memoryMiB = memoryMiBOf(limits.memory);
    runtime.network = this.networkOf(pod);
    const workdir = container.workingDir ?? '/';
    const ports = [...new Set(spec.containers.flatMap((each) => (each.ports ?? []).map((port) => port.containerPort)))];
    let local: LocalSandbox;
    try {
      const volumes = await this.claimMounts(pod, container);
      local = await this.options.provider.create({
        ...(Object.keys(volumes).length > 0 ? { volumes } : {}),
        image: this.options.images[container.image!] ?? this.options.defaultImage,
        env: this.env(pod, container, podIp),
        workdir,
        ...(cpu ? { cpu } : {}),
        ...(memoryMiB ? { memoryMiB } : {}),
        network: runtime.network,
        ...(ports.length > 0 ? { ports } : {}),
        timeoutMs: localMaxTimeoutMs,
      });
    } catch (error) {
      this.setStatus(runtime, (status) => {
        status.containerStatuses = [waiting(container, 'CreateContainerError', (error as Error).message)];
      });
      return;
    }
    runtime.local = local;
    if (runtime.deleting || this.closed || !this.current(runtime)) {
      await local.terminate().catch(() => undefined);
      return;
    }
    try {
      await this.writeVolumes(local, pod, container);
      runtime.tunnels = ports.length > 0 ? await local.tunnels() : {};
      const argv = [...(container.command ?? []), ...(container.args ?? [])];
      if (argv.length > 0) runtime.init = await local.exec(argv, { cwd: workdir });
    } catch (error) {
      await local.terminate().catch(() => undefined);
      runtime.local = undefined;
      this.setStatus(runtime, (status) => {
        status.containerStatuses = [waiting(container, 'RunContainerError', (error as Error).message)];
      });
      return;
    }
    const startedAt = now();
    runtime.phase = 'Running';
    this.setStatus(runtime, (status) => {
      status.phase = 'Running';
      status.podIP = podIp;
      status.podIPs = [{ ip: podIp }];
      status.conditions = [
        condition('PodReadyToStartContainers', 'True'),
        condition('Initialized', 'True'),
        condition('Ready', 'True'),
        condition('ContainersReady', 'True'),
        condition('PodScheduled', 'True'),
      ];
      status.containerStatuses = [
        {
          name: container.name,
          image: container.image,
          imageID: `sandport-emulator://${container.image}`,
          containerID: `sandport://${local.id}`,
          ready: true,
          started: true,
          restartCount: 0,
          state: { running: { startedAt } },
        },
      ];
    });
    this.armDeadline(runtime, pod);
    if (runtime.init) this.follow(runtime, runtime.init, container, startedAt);
    void local.wait().then(() => this.finish(runtime, { exitCode: 137, reason: 'Error', message: 'the backing sandbox ended' }, startedAt));
  }

  /**
   * PersistentVolumeClaim mounts as local volumes: each claim is a host directory made on first use
   * (a dynamic provisioner that binds any claim name; no PersistentVolumeClaim object is needed),
   * shared by every pod that mounts it; read-only when the mount or the claim says so.
   */
  private async claimMounts(pod: KubeObject, container: Container): Promise<Record<string, { source: string; readOnly: boolean }>> {
    const volumes = new Map((specOf(pod).volumes ?? []).map((volume) => [volume.name, volume]));
    const mounts: Record<string, { source: string; readOnly: boolean }> = {};
    for (const mount of container.volumeMounts ?? []) {
      const claim = volumes.get(mount.name)?.persistentVolumeClaim;
      if (!claim) continue;
      const source = join(this.options.claimRoot, pod.metadata.namespace!, claim.claimName);
      await mkdir(source, { recursive: true, mode: 0o755 });
      // The sandbox's unprivileged host uid must be able to write there.
      if (process.getuid?.() === 0) await chown(source, this.options.provider.sandboxUid, this.options.provider.sandboxUid);
      else await chmod(source, 0o777);
      mounts[mount.mountPath] = { source, readOnly: mount.readOnly === true || claim.readOnly === true };
    }
    return mounts;
  }

  /** Writes secret and config-map volumes into the sandbox, makes emptyDir mount points. */
  private async writeVolumes(local: LocalSandbox, pod: KubeObject, container: Container): Promise<void> {
    const volumes = new Map((specOf(pod).volumes ?? []).map((volume) => [volume.name, volume]));
    for (const mount of container.volumeMounts ?? []) {
      const volume = volumes.get(mount.name);
      if (!volume) continue;
      if (volume.emptyDir) {
        await local.run(['mkdir', '-p', mount.mountPath]);
        continue;
      }
      const source = volume.secret ?? volume.configMap;
      if (!source) continue;
      const data = volume.secret
        ? Object.fromEntries(
            Object.entries(
              (this.options.store.find(secrets, pod.metadata.namespace, volume.secret.secretName)?.data ?? {}) as Record<string, string>,
            ).map(([k, v]) => [k, Buffer.from(v, 'base64')]),
          )
        : Object.fromEntries(
            Object.entries(
              (this.options.store.find(configMaps, pod.metadata.namespace, volume.configMap!.name)?.data ?? {}) as Record<string, string>,
            ).map(([k, v]) => [k, Buffer.from(v)]),
          );
      const items = source.items ?? Object.keys(data).map((key) => ({ key, path: key, mode: undefined as number | undefined }));
      await local.run(['mkdir', '-p', mount.mountPath]);
      for (const item of items) {
        const bytes = data[item.key];
        if (!bytes) continue;
        const path = `${mount.mountPath.replace(/\/$/, '')}/${item.path}`;
        await local.files.write(path, bytes);
        const mode = (item.mode ?? source.defaultMode ?? 0o644).toString(8);
        await local.run(['chmod', mode, path]);
      }
      if (mount.readOnly || volume.secret) await local.run(['chmod', 'a-w', mount.mountPath]);
    }
  }

  private follow(runtime: PodRuntime, init: SandboxProcess, container: Container, startedAt: string): void {
    const keep = (chunk: Uint8Array) => {
      for (const follower of runtime.logFollowers) follower(Buffer.from(chunk));
      runtime.log.push(Buffer.from(chunk));
      runtime.logSize += chunk.byteLength;
      while (runtime.logSize > logBytes && runtime.log.length > 1) runtime.logSize -= runtime.log.shift()!.byteLength;
    };
    const streams = [init.stdout, init.stderr].map((stream) => stream.pipeTo(new WritableStream({ write: keep })).catch(() => undefined));
    void Promise.all(streams).then(() => {
      runtime.logEnded = true;
      for (const follower of runtime.logFollowers) follower(null);
      runtime.logFollowers.clear();
    });
    void init.wait().then(
      (exit) => this.finish(runtime, terminatedOf(exit), startedAt),
      () => this.finish(runtime, { exitCode: 137, reason: 'Error', message: 'the backing sandbox ended' }, startedAt),
    );
    void container;
  }

  /** An exec in the pod ended; a memory kill takes the whole container down (cgroup v2 group OOM kill). */
  execEnded(runtime: PodRuntime, exit: ExitStatus): void {
    if (exit.oomKilled) void this.finish(runtime, { exitCode: 137, reason: 'OOMKilled' }, undefined);
  }

  private armDeadline(runtime: PodRuntime, pod: KubeObject): void {
    clearTimeout(runtime.timer);
    const seconds = specOf(pod).activeDeadlineSeconds;
    const startTime = (pod.status as { startTime?: string } | undefined)?.startTime;
    if (seconds === undefined || !startTime) return;
    const left = Date.parse(startTime) + seconds * 1000 - Date.now();
    runtime.timer = setTimeout(
      () => void this.finish(runtime, { exitCode: 137, reason: 'Error' }, undefined, 'DeadlineExceeded'),
      Math.max(0, left),
    );
  }

  /** Ends the pod: the sandbox goes, the phase and the container's terminated state are written. */
  private async finish(
    runtime: PodRuntime,
    terminated: { exitCode: number; reason: string; signal?: number; message?: string },
    startedAt: string | undefined,
    podReason?: string,
  ): Promise<void> {
    if (runtime.done || runtime.deleting) return;
    runtime.done = true;
    clearTimeout(runtime.timer);
    const failed = podReason !== undefined || terminated.exitCode !== 0;
    runtime.phase = failed ? 'Failed' : 'Succeeded';
    const finishedAt = now();
    this.setStatus(runtime, (status, pod) => {
      const container = specOf(pod).containers[0]!;
      const before = (status.containerStatuses as Array<Record<string, unknown>> | undefined)?.[0];
      const ranSince = startedAt ?? (before?.state as { running?: { startedAt: string } } | undefined)?.running?.startedAt ?? finishedAt;
      status.phase = runtime.phase;
      if (podReason === 'DeadlineExceeded') {
        status.reason = 'DeadlineExceeded';
        status.message = 'Pod was active on the node longer than the specified deadline';
      }
      status.conditions = [
        condition('PodReadyToStartContainers', 'False'),
        condition('Initialized', 'True'),
        condition('Ready', 'False', 'PodCompleted'),
        condition('ContainersReady', 'False', 'PodCompleted'),
        condition('PodScheduled', 'True'),
      ];
      status.containerStatuses = [
        {
          name: container.name,
          image: container.image,
          imageID: `sandport-emulator://${container.image}`,
          containerID: before?.containerID ?? '',
          ready: false,
          started: false,
          restartCount: 0,
          state: {
            terminated: {
              exitCode: terminated.exitCode,
              reason: terminated.reason,
              ...(terminated.signal ? { signal: terminated.signal } : {}),
              ...(terminated.message ? { message: terminated.message } : {}),
              startedAt: ranSince,
              finishedAt,
              containerID: before?.containerID ?? '',
            },
          },
        },
      ];
    });
    await runtime.local?.terminate().catch(() => undefined);
  }

  /**
   * Deletes a pod: SIGTERM to its main process, SIGKILL and the sandbox's end after
   * `graceSeconds`, then the object goes. Resolves once it is removed from the store.
   */
  async deletePod(uid: string, graceSeconds: number): Promise<void> {
    const runtime = this.runtimes.get(uid);
    if (!runtime) return;
    runtime.deleting = true;
    clearTimeout(runtime.timer);
    if (runtime.init && !runtime.done && graceSeconds > 0) {
      await runtime.init.kill('SIGTERM').catch(() => undefined);
      const exited = runtime.init.wait().then(
        () => undefined,
        () => undefined,
      );
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, graceSeconds * 1000)))]);
      clearTimeout(timer);
    }
    runtime.done = true;
    await runtime.local?.terminate().catch(() => undefined);
    this.runtimes.delete(uid);
  }

  /** Applies NetworkPolicy changes of a namespace to its running pods where the sandbox can take them. */
  async networkChanged(namespace: string): Promise<void> {
    for (const runtime of this.runtimes.values()) {
      if (runtime.namespace !== namespace || !runtime.local || runtime.done || runtime.network === undefined) continue;
      const pod = this.current(runtime);
      if (!pod) continue;
      const wanted = this.networkOf(pod);
      if (sameNetwork(wanted, runtime.network)) continue;
      if (runtime.network !== 'allow' && wanted !== 'allow') {
        await runtime.local
          .updateNetwork(wanted)
          .catch((error: unknown) => console.error(`[kubernetes emulator] pod ${runtime.name}: network update failed:`, error));
        runtime.network = wanted;
      } else {
        console.error(
          `[kubernetes emulator] pod ${runtime.namespace}/${runtime.name} started with network ${JSON.stringify(runtime.network)}; ` +
            `its NetworkPolicies now mean ${JSON.stringify(wanted)}, which its running sandbox cannot switch to: not enforced for this pod ` +
            '(create policies before the pod starts: within startDelayMs of the create, before a Secret it mounts exists, or while a scheduling gate holds it)',
        );
      }
    }
  }

  /** The main process's log (for `pods/log`). */
  logOf(uid: string): Buffer {
    const runtime = this.runtimes.get(uid);
    return runtime ? Buffer.concat(runtime.log) : Buffer.alloc(0);
  }

  /**
   * Follows the main process's log: `onChunk` gets what is there, then each new chunk, then null
   * once the process's output ended (at once for a pod without one). Returns the unsubscribe.
   */
  followLog(uid: string, onChunk: (chunk: Buffer | null) => void): () => void {
    const runtime = this.runtimes.get(uid);
    const held = runtime ? Buffer.concat(runtime.log) : Buffer.alloc(0);
    if (held.byteLength > 0) onChunk(held);
    if (!runtime || !runtime.init || runtime.logEnded) {
      onChunk(null);
      return () => undefined;
    }
    runtime.logFollowers.add(onChunk);
    return () => runtime.logFollowers.delete(onChunk);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      [...this.runtimes.values()].map(async (runtime) => {
        runtime.done = true;
        clearTimeout(runtime.timer);
        await runtime.local?.terminate().catch(() => undefined);
      }),
    );
    this.runtimes.clear();
  }
}

function terminatedOf(exit: ExitStatus): { exitCode: number; reason: string; signal?: number } {
  if (exit.oomKilled) return { exitCode: 137, reason: 'OOMKilled' };
  return { exitCode: exit.exitCode, reason: exit.exitCode === 0 ? 'Completed' : 'Error' };
}

function qosClassOf(spec: PodSpec): string {
  const all = spec.containers.map((container) => container.resources ?? {});
  if (all.every((resources) => !resources.limits && !resources.requests)) return 'BestEffort';
  const guaranteed = all.every((resources) => {
    const limits = resources.limits ?? {};
    const requests = { ...limits, ...resources.requests };
    return limits.cpu !== undefined && limits.memory !== undefined && requests.cpu === limits.cpu && requests.memory === limits.memory;
  });
  return guaranteed ? 'Guaranteed' : 'Burstable';
}
