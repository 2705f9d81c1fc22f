/**
 * The REST side of the emulator: discovery, and create / get / list / watch / replace / patch /
 * delete for every resource of k8s-resources.ts, with what the API server does around them:
 * defaults and validation of pods (k8s-pod-rules.ts), Secrets' `stringData`, NetworkPolicy
 * `policyTypes`, RuntimeClass admission, resourceVersion preconditions, label and field
 * selectors, `limit`/`continue` paging, and the garbage collector for ownerReferences
 * (Background, Foreground and Orphan propagation; a dependent whose owners are all gone is
 * deleted, also when it was created after they went).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  checkToken,
  parseResourcePath,
  readJson,
  sendJson,
  sendStatusError,
  statusSuccess,
  unimplemented,
  unimplementedHeader,
  queryFlag,
} from './k8s-http.js';
import type { Kubelet } from './k8s-kubelet.js';
import { applyPatch } from './k8s-patch.js';
import { checkPodUpdate, defaultPod, validatePod } from './k8s-pod-rules.js';
import {
  allResources,
  apiVersionOf,
  coreVersions,
  groupDocument,
  groupList,
  namespaces,
  networkPolicies,
  pods,
  resourceList,
  runtimeClasses,
  secrets,
  versionDocument,
  type ResourceType,
} from './k8s-resources.js';
import { parseFieldSelector, parseLabelSelector } from './k8s-selectors.js';
import { KubeStatusError, invalid, notFound } from './k8s-status.js';
import { clone, type KubeObject, type KubeStore } from './k8s-store.js';
import { tableOf, wantsTable } from './k8s-table.js';
import { serveWatch, type WatchSettings } from './k8s-watch.js';

export interface ApiContext {
  readonly store: KubeStore;
  readonly kubelet: Kubelet;
  readonly token: string;
  readonly serverAddress: () => string;
  readonly watch: WatchSettings;
  /** Call counts by `METHOD resource[/subresource]`, for tests and the benchmark. */
  readonly calls: Map<string, number>;
}

type Propagation = 'Background' | 'Foreground' | 'Orphan';

function typeFor(group: string, version: string, resource: string): ResourceType | undefined {
  return allResources.find((type) => type.group === group && type.version === version && type.resource === resource);
}

function asObject(body: unknown, type: ResourceType): KubeObject {
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw new KubeStatusError('BadRequest', `the request body is not a ${type.kind} object`);
  const object = body as KubeObject;
  if (object.kind !== undefined && object.kind !== type.kind) {
    throw new KubeStatusError('BadRequest', `the body of the request was of kind "${String(object.kind)}", not "${type.kind}"`);
  }
  object.kind = type.kind;
  object.apiVersion = apiVersionOf(type);
  object.metadata = { ...(object.metadata ?? {}) } as KubeObject['metadata'];
  return object;
}

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function checkName(type: ResourceType, object: KubeObject): void {
  const meta = object.metadata;
  if (!meta.name && !meta.generateName)
    throw invalid(type.kind, '', [{ field: 'metadata.name', message: 'Required value: name or generateName is required' }], type.group);
  if (meta.name && (meta.name.length > 253 || !dns1123Subdomain.test(meta.name))) {
    throw invalid(
      type.kind,
      meta.name,
      [
        {
          field: 'metadata.name',
          message: `Invalid value: "${meta.name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
        },
      ],
      type.group,
    );
  }
  for (const [key, value] of Object.entries(meta.labels ?? {})) {
    if (typeof value !== 'string' || value.length > 63 || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(value)) {
      throw invalid(
        type.kind,
        meta.name ?? '',
        [
          {
            field: `metadata.labels`,
            message: `Invalid value: "${String(value)}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (label "${key}")`,
          },
        ],
        type.group,
      );
    }
  }
}

/** Secrets: `stringData` folds into base64 `data`; `type` defaults to Opaque. */
function prepareSecret(object: KubeObject): void {
  const data = { ...((object.data ?? {}) as Record<string, string>) };
  for (const [key, value] of Object.entries(data)) {
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
      throw invalid('Secret', object.metadata.name, [{ field: `data[${key}]`, message: 'Invalid value: the value is not base64' }]);
    }
  }
  for (const [key, value] of Object.entries((object.stringData ?? {}) as Record<string, string>))
    data[key] = Buffer.from(String(value)).toString('base64');
  delete object.stringData;
  object.data = data;
  object.type ??= 'Opaque';
}

function preparePolicy(object: KubeObject): void {
  const spec = (object.spec ?? {}) as Record<string, unknown>;
  spec.podSelector ??= {};
  if (!spec.policyTypes) spec.policyTypes = spec.egress ? ['Ingress', 'Egress'] : ['Ingress'];
  object.spec = spec;
}

export class KubeApi {
  constructor(private readonly context: ApiContext) {}

  private count(method: string, resource: string): void {
    const key = `${method} ${resource}`;
    this.context.calls.set(key, (this.context.calls.get(key) ?? 0) + 1);
  }

  /** The request listener. */
  handle = (raw: IncomingMessage, response: ServerResponse): void => {
    const url = new URL(raw.url ?? '/', 'http://emulator');
    const method = raw.method ?? 'GET';
    void this.dispatch(method, url, raw, response).catch((error: unknown) => {
      raw.resume();
      if (error instanceof KubeStatusError)
        return sendStatusError(
          response,
          error,
          error.message.startsWith('the Kubernetes emulator does not implement') ? unimplementedHeader : {},
        );
      console.error(`[kubernetes emulator] ${method} ${url.pathname} failed:`, error);
      sendStatusError(response, new KubeStatusError('InternalError', `Internal error occurred: ${(error as Error).message}`));
    });
  };

  private async dispatch(method: string, url: URL, raw: IncomingMessage, response: ServerResponse): Promise<void> {
    checkToken(raw.headers, this.context.token);
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (method === 'GET') {
      const discovery = this.discovery(path);
      if (discovery) {
        this.count('GET', path);
        return sendJson(response, 200, discovery);
      }
    }
    const parsed = parseResourcePath(path);
    const type = parsed && typeFor(parsed.group, parsed.version, parsed.resource);
    if (!parsed || !type) throw unimplemented(method, url.pathname);
    // `/api/v1/namespaces/{name}` is the namespace object itself.
    if (!type.namespaced && parsed.namespace) throw unimplemented(method, url.pathname);
    const { namespace, name, subresource } = parsed;
    this.count(method, subresource ? `${type.resource}/${subresource}` : type.resource);
    if (subresource) return this.subresource(method, type, namespace, name!, subresource, url, raw, response);
    if (name === undefined) {
      if (method === 'GET') {
        if (queryFlag(url, 'watch') || path.includes('/watch/'))
          return serveWatch(this.context.store, type, namespace, url, raw, response, this.context.watch);
        const listed = this.list(type, namespace, url);
        if (wantsTable(raw.headers))
          return sendJson(response, 200, {
            ...tableOf(type, listed.items as KubeObject[], this.context.store.resourceVersion, url.searchParams.get('includeObject')),
            metadata: listed.metadata,
          });
        return sendJson(response, 200, listed);
      }
      if (method === 'POST') return sendJson(response, 201, await this.create(type, namespace, asObject(await readJson(raw), type), url));
      if (method === 'DELETE') return sendJson(response, 200, await this.deleteCollection(type, namespace, url));
      throw new KubeStatusError(
        'MethodNotAllowed',
        `the server does not allow this method on the requested resource (${method} ${type.resource})`,
      );
    }
    if (method === 'GET') {
      const object = this.context.store.get(type, namespace, name);
      if (wantsTable(raw.headers))
        return sendJson(response, 200, tableOf(type, [object], this.context.store.resourceVersion, url.searchParams.get('includeObject')));
      return sendJson(response, 200, object);
    }
    if (method === 'PUT') return sendJson(response, 200, this.replace(type, namespace, name, asObject(await readJson(raw), type), url));
    if (method === 'PATCH')
      return sendJson(response, 200, this.patch(type, namespace, name, await readJson(raw), raw.headers['content-type'], url));
    if (method === 'DELETE') return sendJson(response, 200, await this.delete(type, namespace, name, await readJson(raw), url));
    throw new KubeStatusError(
      'MethodNotAllowed',
      `the server does not allow this method on the requested resource (${method} ${type.resource})`,
    );
  }

  private discovery(path: string): unknown {
    if (path === '/version') return versionDocument();
    if (path === '/api') return coreVersions(this.context.serverAddress());
    if (path === '/apis') return groupList();
    const core = /^\/api\/([^/]+)$/.exec(path);
    if (core) return resourceList('', core[1]!);
    const group = /^\/apis\/([^/]+)$/.exec(path);
    if (group) return groupDocument(group[1]!);
    const version = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
    if (version) return resourceList(version[1]!, version[2]!);
    return undefined;
  }

  private checkNamespace(type: ResourceType, namespace: string | undefined): void {
    if (!type.namespaced) return;
    if (namespace === undefined)
      throw new KubeStatusError(
        'MethodNotAllowed',
        `the server does not allow this method on the requested resource (${type.resource} across namespaces)`,
      );
    if (!this.context.store.find(namespaces, undefined, namespace)) throw notFound('namespaces', namespace, 'namespaces');
  }

  list(type: ResourceType, namespace: string | undefined, url: URL): Record<string, unknown> {
    const labels = parseLabelSelector(url.searchParams.get('labelSelector'));
    const fields = parseFieldSelector(url.searchParams.get('fieldSelector'), type.fields);
    let items = this.context.store.list(type, namespace).filter((object) => labels(object.metadata.labels) && fields(object));
    const token = url.searchParams.get('continue');
    if (token) {
      let after: { key: string };
      try {
        after = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { key: string };
      } catch {
        throw new KubeStatusError('BadRequest', `invalid continue token: ${token}`);
      }
      items = items.filter((object) => `${object.metadata.namespace ?? ''}/${object.metadata.name}` > after.key);
    }
    const limit = Number(url.searchParams.get('limit') ?? 0);
    const metadata: Record<string, unknown> = { resourceVersion: this.context.store.resourceVersion };
    if (limit > 0 && items.length > limit) {
      const last = items[limit - 1]!;
      metadata.continue = Buffer.from(JSON.stringify({ key: `${last.metadata.namespace ?? ''}/${last.metadata.name}` })).toString(
        'base64url',
      );
      metadata.remainingItemCount = items.length - limit;
      items = items.slice(0, limit);
    }
    return { kind: type.listKind, apiVersion: apiVersionOf(type), metadata, items };
  }

  async create(type: ResourceType, namespace: string | undefined, object: KubeObject, url: URL): Promise<KubeObject> {
    this.checkNamespace(type, namespace);
    if (type.namespaced && object.metadata.namespace && object.metadata.namespace !== namespace) {
      throw new KubeStatusError('BadRequest', `the namespace of the provided object does not match the namespace sent on the request`);
    }
    checkName(type, object);
    delete (object.metadata as Partial<KubeObject['metadata']>).resourceVersion;
    if (type === pods) {
      defaultPod(object);
      validatePod(object);
      const runtimeClass = (object.spec as { runtimeClassName?: string }).runtimeClassName;
      if (runtimeClass && !this.context.store.find(runtimeClasses, undefined, runtimeClass)) {
        throw new KubeStatusError(
          'Forbidden',
          `pods "${object.metadata.name || object.metadata.generateName}" is forbidden: pod rejected: RuntimeClass "${runtimeClass}" not found`,
          {
            name: object.metadata.name,
            kind: 'pods',
          },
        );
      }
    }
    if (type === secrets) prepareSecret(object);
    if (type === networkPolicies) preparePolicy(object);
    if (type === namespaces) object.status = { phase: 'Active' };
    if (url.searchParams.get('dryRun') === 'All') {
      return {
        ...object,
        metadata: { ...object.metadata, uid: '00000000-0000-0000-0000-000000000000', creationTimestamp: new Date().toISOString() },
      };
    }
    const created = this.context.store.create(type, namespace, object);
    if (type === pods) this.context.kubelet.podCreated(created);
    if (type === networkPolicies) await this.context.kubelet.networkChanged(namespace!);
    this.collectIfOrphaned(type, created);
    return created;
  }

  private afterUpdate(type: ResourceType, updated: KubeObject, previous: KubeObject): void {
    if (type === pods) this.context.kubelet.podUpdated(updated, previous);
    if (type === networkPolicies) void this.context.kubelet.networkChanged(updated.metadata.namespace!);
  }

  private checkUpdate(type: ResourceType, previous: KubeObject, next: KubeObject): KubeObject {
    if (type === pods) {
      checkPodUpdate(previous, next);
      next.status = previous.status;
    }
    if (type === secrets) {
      if (previous.immutable === true && (JSON.stringify(previous.data) !== JSON.stringify(next.data) || next.immutable !== true)) {
        throw invalid('Secret', previous.metadata.name, [
          { field: 'data', message: 'Forbidden: field is immutable when `immutable` is set' },
        ]);
      }
      prepareSecret(next);
    }
    if (type === networkPolicies) preparePolicy(next);
    checkName(type, next);
    return next;
  }

  replace(type: ResourceType, namespace: string | undefined, name: string, object: KubeObject, url: URL): KubeObject {
    if (object.metadata.name && object.metadata.name !== name)
      throw new KubeStatusError('BadRequest', 'the name of the object does not match the name on the URL');
    const previous = this.context.store.get(type, namespace, name);
    const wanted = object.metadata.resourceVersion;
    if (url.searchParams.get('dryRun') === 'All')
      return this.checkUpdate(type, previous, { ...object, metadata: { ...object.metadata, name } });
    const updated = this.context.store.update(
      type,
      namespace,
      name,
      (current) => this.checkUpdate(type, current, { ...clone(object), metadata: { ...object.metadata, name } as KubeObject['metadata'] }),
      wanted || undefined,
    );
    this.afterUpdate(type, updated, previous);
    return updated;
  }

  patch(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    contentType: string | undefined,
    url: URL,
  ): KubeObject {
    const previous = this.context.store.get(type, namespace, name);
    const patched = applyPatch(previous, body, contentType) as KubeObject;
    if (!patched || typeof patched !== 'object' || !patched.metadata)
      throw new KubeStatusError('BadRequest', "the patch removed the object's metadata");
    const wanted =
      (patched.metadata.resourceVersion !== previous.metadata.resourceVersion ? patched.metadata.resourceVersion : undefined) || undefined;
    if (url.searchParams.get('dryRun') === 'All') return this.checkUpdate(type, previous, patched);
    const updated = this.context.store.update(
      type,
      namespace,
      name,
      (current) => this.checkUpdate(type, current, applyPatch(current, body, contentType) as KubeObject),
      wanted,
    );
    this.afterUpdate(type, updated, previous);
    return updated;
  }

  private deleteOptions(
    body: unknown,
    url: URL,
  ): { grace: number | undefined; propagation: Propagation; preconditions: { uid?: string; resourceVersion?: string }; dryRun: boolean } {
    const options = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
    const graceQuery = url.searchParams.get('gracePeriodSeconds');
    const grace =
      graceQuery !== null ? Number(graceQuery) : typeof options.gracePeriodSeconds === 'number' ? options.gracePeriodSeconds : undefined;
    const propagation = (url.searchParams.get('propagationPolicy') ??
      options.propagationPolicy ??
      (options.orphanDependents === true ? 'Orphan' : 'Background')) as Propagation;
    if (!['Background', 'Foreground', 'Orphan'].includes(propagation))
      throw new KubeStatusError('BadRequest', `propagationPolicy "${propagation}" is not one of Background, Foreground, Orphan`);
    const dryRun = url.searchParams.get('dryRun') === 'All' || (Array.isArray(options.dryRun) && options.dryRun.includes('All'));
    return { grace, propagation, preconditions: (options.preconditions ?? {}) as { uid?: string; resourceVersion?: string }, dryRun };
  }

  async delete(type: ResourceType, namespace: string | undefined, name: string, body: unknown, url: URL): Promise<unknown> {
    const options = this.deleteOptions(body, url);
    const current = this.context.store.get(type, namespace, name);
    const { uid, resourceVersion } = options.preconditions;
    if ((uid && uid !== current.metadata.uid) || (resourceVersion && resourceVersion !== current.metadata.resourceVersion)) {
      throw new KubeStatusError(
        'Conflict',
        `Operation cannot be fulfilled on ${type.resource} "${name}": Precondition failed: UID in precondition: ${uid ?? ''}, UID in object meta: ${current.metadata.uid}`,
        { name, kind: type.resource },
      );
    }
    if (options.dryRun) return type === pods ? current : statusSuccess({ name, kind: type.resource, uid: current.metadata.uid });
    if (type === pods) {
      const grace = options.grace ?? (current.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30;
      const marked = this.context.store.update(type, namespace, name, (pod) => {
        pod.metadata.deletionTimestamp ??= new Date(Date.now() + grace * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
        pod.metadata.deletionGracePeriodSeconds = grace;
        return pod;
      });
      // The store keeps a deletionTimestamp once set; the marked copy carries it.
      const answer = {
        ...marked,
        metadata: { ...marked.metadata, deletionTimestamp: marked.metadata.deletionTimestamp ?? new Date().toISOString() },
      };
      void this.finishDelete(type, namespace, name, current.metadata.uid, grace, options.propagation).catch((error: unknown) =>
        console.error(`[kubernetes emulator] deleting pod ${name}:`, error),
      );
      return answer;
    }
    await this.finishDelete(type, namespace, name, current.metadata.uid, 0, options.propagation);
    return statusSuccess({ name, kind: type.resource, uid: current.metadata.uid, ...(type.group ? { group: type.group } : {}) });
  }

  /** Removes an object (after its pod's shutdown) and runs the garbage collector for its dependents. */
  private async finishDelete(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    uid: string,
    grace: number,
    propagation: Propagation,
  ): Promise<void> {
    if (propagation === 'Foreground') await this.collectDependents(uid, 'Foreground');
    if (type === pods) await this.context.kubelet.deletePod(uid, grace);
    if (type === namespaces) {
      for (const each of allResources.filter((resource) => resource.namespaced)) {
        for (const object of this.context.store.list(each, name))
          await this.delete(each, name, object.metadata.name, { gracePeriodSeconds: 0 }, new URL('http://emulator/')).catch(
            () => undefined,
          );
      }
    }
    const still = this.context.store.find(type, namespace, name);
    if (!still || still.metadata.uid !== uid) return;
    this.context.store.remove(type, namespace, name);
    if (type === networkPolicies && namespace) await this.context.kubelet.networkChanged(namespace);
    if (propagation !== 'Foreground') await this.collectDependents(uid, propagation);
  }

  /** The garbage collector, for one owner that went (or is going) away. */
  private async collectDependents(ownerUid: string, propagation: Propagation): Promise<void> {
    const dependents = this.context.store
      .all()
      .filter(({ object }) => object.metadata.ownerReferences?.some((ref) => ref.uid === ownerUid));
    for (const { resource, object } of dependents) {
      const type = allResources.find((each) => each.resource === resource)!;
      const others = (object.metadata.ownerReferences ?? []).filter((ref) => ref.uid !== ownerUid);
      const othersAlive = others.some((ref) => this.context.store.hasUid(ref.uid));
      if (propagation === 'Orphan' || othersAlive) {
        this.context.store.update(type, object.metadata.namespace, object.metadata.name, (current) => {
          current.metadata.ownerReferences = (current.metadata.ownerReferences ?? []).filter((ref) => ref.uid !== ownerUid);
          if (current.metadata.ownerReferences.length === 0) delete current.metadata.ownerReferences;
          return current;
        });
        continue;
      }
      const wait = propagation === 'Foreground';
      const deletion = this.delete(
        type,
        object.metadata.namespace,
        object.metadata.name,
        { propagationPolicy: propagation, gracePeriodSeconds: 0 },
        new URL('http://emulator/'),
      ).catch(() => undefined);
      if (wait) await deletion;
      if (wait && type === pods) await this.waitGone(type, object);
    }
  }

  private async waitGone(type: ResourceType, object: KubeObject): Promise<void> {
    while (this.context.store.find(type, object.metadata.namespace, object.metadata.name)?.metadata.uid === object.metadata.uid) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** A dependent created after all its owners went is collected at once, as the garbage collector does. */
  private collectIfOrphaned(type: ResourceType, object: KubeObject): void {
    const refs = object.metadata.ownerReferences ?? [];
    if (refs.length === 0 || refs.some((ref) => this.context.store.hasUid(ref.uid))) return;
    void this.delete(type, object.metadata.namespace, object.metadata.name, { gracePeriodSeconds: 0 }, new URL('http://emulator/')).catch(
      () => undefined,
    );
  }

  private async deleteCollection(type: ResourceType, namespace: string | undefined, url: URL): Promise<Record<string, unknown>> {
    const listed = this.list(type, namespace, url);
    for (const item of listed.items as KubeObject[])
      await this.delete(type, item.metadata.namespace, item.metadata.name, {}, url).catch(() => undefined);
    return listed;
  }

  private async subresource(
    method: string,
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    subresource: string,
    url: URL,
    raw: IncomingMessage,
    response: ServerResponse,
  ): Promise<void> {
    if (type !== pods) throw unimplemented(method, url.pathname);
    if (subresource === 'exec' || subresource === 'portforward' || subresource === 'attach') {
      this.context.store.get(pods, namespace, name);
      const upgrade = raw.headers.upgrade;
      if (upgrade && /spdy/i.test(upgrade)) {
        throw new KubeStatusError('BadRequest', `the Kubernetes emulator serves pods/${subresource} over WebSocket only, not ${upgrade}`);
      }
      throw new KubeStatusError('BadRequest', `Upgrade request required (pods/${subresource} is a WebSocket upgrade)`);
    }
    if (subresource === 'log' && method === 'GET') {
      const pod = this.context.store.get(pods, namespace, name);
      if (url.searchParams.get('follow') === 'true') {
        response.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
        response.flushHeaders();
        const stop = this.context.kubelet.followLog(pod.metadata.uid, (chunk) => (chunk ? response.write(chunk) : response.end()));
        response.once('close', stop);
        return;
      }
      const text = this.context.kubelet.logOf(pod.metadata.uid);
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(text.byteLength) });
      response.end(text);
      return;
    }
    if (subresource === 'status') {
      if (method === 'GET') return sendJson(response, 200, this.context.store.get(pods, namespace, name));
      if (method === 'PATCH') {
        const body = await readJson(raw);
        const contentType = raw.headers['content-type'];
        // The status subresource writes status only, as on a cluster.
        const updated = this.context.store.update(pods, namespace, name, (current) => ({
          ...current,
          status: (applyPatch(current, body, contentType) as KubeObject).status,
        }));
        return sendJson(response, 200, updated);
      }
    }
    throw unimplemented(method, url.pathname);
  }
}
