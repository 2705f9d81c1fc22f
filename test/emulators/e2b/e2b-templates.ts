/**
 * The E2B emulator's templates: what a sandbox starts from, with the cpu and memory E2B sets per
 * template, and the template build API of the SDK (`Template.build`, `Template.exists`, tags).
 *
 * Templates:
 * - `base`: E2B's base template's userland on a local rootfs built by
 *   scripts/build-e2b-images.sh (Debian bookworm, bash, python3 and `python`, git, Node.js, sudo, user
 *   `user` uid 1000 with home /home/user and passwordless sudo, root, inotify-tools, util-linux
 *   `script`, socat); 2 vCPUs and 512 MB as E2B's default. Missing rootfs: creating from it is
 *   a 500 naming the script.
 * - `base-<cpu>cpu-<memoryMB>mb` (`sizedTemplateName`) for every size of `templateSizes`: the
 *   same rootfs with other limits, so that a per-sandbox `cpu`/`memoryMiB` maps to a template
 *   that has them. The local sandbox enforces them as cgroup limits.
 * - anything `Template.build` made (below), and what other handler groups register with
 *   `addTemplate` (snapshots are templates on E2B).
 * A template is asked for by id, by name, or as `name:tag` (tag `default` when none); an unknown
 * one is a 404 `template '<name>' not found` as E2B answers, which the SDK's `Sandbox.create`
 * throws as a `SandboxError` with message `404: ...`.
 *
 * Builds: IMPLEMENTED for `{ base, commands }`-shaped templates. `Template.build(template, name,
 * { cpuCount, memoryMB })` over `fromTemplate(<a template here>)`, `fromBaseImage()` or
 * `fromImage(tag)` for a tag whose userland `base` keeps (`e2bdev/base`, `debian:*` and
 * `python:*`, any registry: Debian bookworm with python3 3.11, whatever the tag's version)
 * runs its RUN, ENV, WORKDIR and USER steps in a local sandbox
 * started from the base (RUN as `/bin/bash -l -c <cmd>`; every user is root in the local sandbox),
 * snapshots it (the local provider's `snapshot()`) and registers the snapshot as a new build of
 * the template, tagged as asked. A build fails (status `error`, the SDK's `BuildError` naming the
 * step) for what the emulator cannot do: COPY steps (the upload link call is a 501), any other
 * `fromImage` (nothing is pulled), registry credentials, and start/ready commands.
 * `DELETE /templates/:templateID` (the SDK's `deleteSnapshot`) belongs to the snapshots handler
 * group; it removes templates through `removeTemplate`.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { SandboxSnapshotRef } from '../../../src/kit/index.js';
import type { LocalSandbox } from '../../../adapters/local/index.js';
import { randomToken } from '../shared/ids.js';
import { HttpError, sendJson, type E2bRequest, type E2bRoute } from './e2b-http.js';
import { envdVersion, type E2bState } from './e2b-state.js';

/** Where scripts/build-e2b-images.sh puts its images (`SANDPORT_E2B_IMAGES_DIR`, read when an emulator starts). */
export function e2bImagesDir(): string {
  return process.env.SANDPORT_E2B_IMAGES_DIR ?? '/var/cache/sandport/rootfs/e2b';
}

/** E2B's default template size (and the CLI's build defaults). */
export const defaultCpuCount = 2;
export const defaultMemoryMB = 512;
/** Disk E2B reports for a template (the local sandbox does not limit disk). */
export const defaultDiskSizeMB = 10 * 1024;

/** The sizes the emulator has prebuilt `base` templates of: every cpu count with every memory size. */
export const templateSizes = {
  cpuCount: [1, 2, 4, 8],
  memoryMB: [512, 1024, 2048, 4096, 8192],
} as const;

/** The name of the prebuilt template of `base` with that size, e.g. `base-4cpu-2048mb`. */
export function sizedTemplateName(base: string, cpuCount: number, memoryMB: number): string {
  return `${base}-${cpuCount}cpu-${memoryMB}mb`;
}

/** What a sandbox of a template starts from and with. */
export interface ResolvedTemplate {
  /** The template's id (20 letters and digits), what `getInfo().templateId` reports. */
  templateID: string;
  /** The name it was asked for by (`base`), or its first name when asked for by id; E2B's `alias`. */
  alias: string | undefined;
  /** The build the name's tag points to. */
  buildID: string;
  /** What to pass as `image` to the local provider: a rootfs directory or a local snapshot. */
  localImage: string | SandboxSnapshotRef;
  cpuCount: number;
  memoryMB: number;
  diskSizeMB: number;
  envdVersion: string;
  /** Environment from the build's ENV steps, under the sandbox's own `envVars`. */
  envs: Readonly<Record<string, string>>;
  /** The build's last WORKDIR, the default cwd of commands; undefined: the user's home. */
  workdir: string | undefined;
  /** The build's last USER (`user` when none), the default user of commands. */
  user: string;
}

type BuildStatus = 'waiting' | 'building' | 'ready' | 'error';

interface LogEntry {
  timestamp: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  step?: string;
}

interface TemplateBuild {
  readonly buildID: string;
  status: BuildStatus;
  cpuCount: number;
  memoryMB: number;
  /** Tags the build gets once it is ready. */
  tags: string[];
  localImage: string | SandboxSnapshotRef | undefined;
  envs: Record<string, string>;
  workdir: string | undefined;
  user: string;
  readonly logEntries: LogEntry[];
  reason: { message: string; step?: string } | undefined;
  readonly createdAt: Date;
}

interface E2bTemplate {
  readonly templateID: string;
  readonly names: string[];
  readonly builds: Map<string, TemplateBuild>;
  /** tag -> buildID */
  readonly tags: Map<string, { buildID: string; createdAt: Date }>;
  /** Deletes what the template's builds left on the host (their snapshots). */
  readonly dispose?: () => Promise<void>;
}

export interface AddTemplateOptions {
  /** @default a new random id */
  templateID?: string;
  /** Names it can be asked for by; may be empty (snapshots are asked for by id). */
  names?: string[];
  localImage: string | SandboxSnapshotRef;
  /** @default 2 */
  cpuCount?: number;
  /** @default 512 */
  memoryMB?: number;
  envs?: Record<string, string>;
  workdir?: string;
  /** @default 'user' */
  user?: string;
  /** Run when the template is removed or the emulator closes. */
  dispose?: () => Promise<void>;
}

const templateNamePattern = /^[a-z0-9][a-z0-9._-]*$/;

/** The templates of one emulator, by id and by name. */
export class E2bTemplateRegistry {
  readonly #byId = new Map<string, E2bTemplate>();
  readonly #byName = new Map<string, string>();

  constructor() {
    const base = join(e2bImagesDir(), 'base');
    this.add({ names: ['base'], localImage: base });
    for (const cpuCount of templateSizes.cpuCount)
      for (const memoryMB of templateSizes.memoryMB)
        this.add({ names: [sizedTemplateName('base', cpuCount, memoryMB)], localImage: base, cpuCount, memoryMB });
  }

  /** Registers a template with one ready build tagged `default`; returns its id. A taken name is a 409. */
  add(options: AddTemplateOptions): string {
    const templateID = options.templateID ?? newTemplateId();
    for (const name of options.names ?? []) {
      if (this.#byName.has(name)) throw new HttpError(409, `template '${name}' already exists`);
    }
    const build = newBuild({
      cpuCount: options.cpuCount ?? defaultCpuCount,
      memoryMB: options.memoryMB ?? defaultMemoryMB,
      tags: ['default'],
    });
    Object.assign(build, {
      status: 'ready',
      localImage: options.localImage,
      envs: { ...options.envs },
      workdir: options.workdir,
      user: options.user ?? 'user',
    });
    const template: E2bTemplate = {
      templateID,
      names: [...(options.names ?? [])],
      builds: new Map([[build.buildID, build]]),
      tags: new Map([['default', { buildID: build.buildID, createdAt: build.createdAt }]]),
      dispose: options.dispose,
    };
    this.#byId.set(templateID, template);
    for (const name of template.names) this.#byName.set(name, templateID);
    return templateID;
  }

  /** Removes a template by id or name; false when there was none. Idempotent. */
  async remove(idOrName: string): Promise<boolean> {
    const template = this.find(idOrName);
    if (!template) return false;
    this.#byId.delete(template.templateID);
    for (const name of template.names) this.#byName.delete(name);
    await template.dispose?.();
    return true;
  }

  /** A template by id or name (no tag). */
  find(idOrName: string): E2bTemplate | undefined {
    return this.#byId.get(idOrName) ?? this.#byId.get(this.#byName.get(idOrName) ?? '');
  }

  /** Creates a template named `name` (or returns the one that has the name), for a build. */
  named(name: string): E2bTemplate {
    const found = this.find(name);
    if (found) return found;
    const template: E2bTemplate = { templateID: newTemplateId(), names: [name], builds: new Map(), tags: new Map() };
    this.#byId.set(template.templateID, template);
    this.#byName.set(name, template.templateID);
    return template;
  }

  all(): E2bTemplate[] {
    return [...this.#byId.values()];
  }
}

/**
 * The template a sandbox is created from: `templateID` is an id, a name, or `name:tag` (as the
 * SDK sends `Sandbox.create(template)`). Throws `HttpError` 404 `template '<ref>' not found` for
 * an unknown one (E2B's answer), 400 when the tag's build is not ready, and 500 naming the build
 * script when the template's local rootfs was not built. Does no I/O beyond a file check.
 */
export function resolveTemplate(state: E2bState, templateID: string): ResolvedTemplate {
  const { name, tag } = splitTag(templateID);
  const template = state.templates.find(name);
  const tagged = template?.tags.get(tag);
  if (!template || !tagged) throw new HttpError(404, `template '${templateID}' not found`);
  const build = template.builds.get(tagged.buildID);
  if (build?.status !== 'ready' || build.localImage === undefined) {
    throw new HttpError(400, `template '${templateID}' has no finished build`);
  }
  if (typeof build.localImage === 'string' && !existsSync(join(build.localImage, '.sandport-complete'))) {
    throw new HttpError(
      500,
      `FAILED: the E2B emulator runs template '${name}' on the local rootfs ${build.localImage}, which is not built: run sudo bash scripts/build-e2b-images.sh`,
    );
  }
  return {
    templateID: template.templateID,
    alias: template.names.includes(name) ? name : template.names[0],
    buildID: build.buildID,
    localImage: build.localImage,
    cpuCount: build.cpuCount,
    memoryMB: build.memoryMB,
    diskSizeMB: defaultDiskSizeMB,
    envdVersion,
    envs: build.envs,
    workdir: build.workdir,
    user: build.user,
  };
}

function splitTag(ref: string): { name: string; tag: string } {
  const colon = ref.lastIndexOf(':');
  if (colon <= 0) return { name: ref, tag: 'default' };
  return { name: ref.slice(0, colon), tag: ref.slice(colon + 1) || 'default' };
}

function newTemplateId(): string {
  return randomToken(20).toLowerCase();
}

function newBuild(init: { cpuCount: number; memoryMB: number; tags: string[] }): TemplateBuild {
  return {
    buildID: randomUUID(),
    status: 'waiting',
    ...init,
    localImage: undefined,
    envs: {},
    workdir: undefined,
    user: 'user',
    logEntries: [],
    reason: undefined,
    createdAt: new Date(),
  };
}

// ---------------------------------------------------------------------------------------------
// Routes

const sizeSchema = {
  cpuCount: z.number().int().min(1).max(64).optional(),
  memoryMB: z
    .number()
    .int()
    .min(128)
    .max(1024 * 1024)
    .optional(),
};

const requestBuildSchema = z.object({
  name: z.string().min(1).optional(),
  alias: z.string().min(1).optional(),
  tags: z.array(z.string().min(1)).optional(),
  ...sizeSchema,
});

const stepSchema = z.object({
  type: z.string(),
  args: z.array(z.string()).default([]),
  force: z.boolean().optional(),
  filesHash: z.string().optional(),
});

const startBuildSchema = z.object({
  fromTemplate: z.string().optional(),
  fromImage: z.string().optional(),
  fromImageRegistry: z.unknown().optional(),
  startCmd: z.string().optional(),
  readyCmd: z.string().optional(),
  force: z.boolean().optional(),
  steps: z.array(stepSchema).default([]),
});

type StartBuild = z.infer<typeof startBuildSchema>;

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new HttpError(400, `${issue.path.join('.') || 'body'}: ${issue.message}`);
}

function build(state: E2bState, request: E2bRequest): { template: E2bTemplate; build: TemplateBuild } {
  const template = state.templates.find(request.params.templateID!);
  const found = template?.builds.get(request.params.buildID!);
  if (!template || !found)
    throw new HttpError(404, `build '${request.params.buildID}' of template '${request.params.templateID}' not found`);
  return { template, build: found };
}

/** The control-plane routes of templates: the build API and the lookups the SDK makes. */
export function templateRoutes(state: E2bState): E2bRoute[] {
  state.closers.add(async () => {
    for (const template of state.templates.all()) await template.dispose?.().catch(() => undefined);
  });
  return [
    {
      method: 'POST',
      pattern: '/v3/templates',
      async handle(request, response) {
        const body = parse(requestBuildSchema, await request.json());
        const requested = body.name ?? body.alias;
        if (!requested) throw new HttpError(400, 'name: a template build needs a name');
        const { name, tag } = splitTag(requested);
        if (!templateNamePattern.test(name)) {
          throw new HttpError(400, `name: '${name}' is not a valid template name (lowercase letters, digits, '.', '_' and '-')`);
        }
        const tags = [...new Set([...(requested.includes(':') ? [tag] : []), ...(body.tags ?? [])])];
        if (tags.length === 0) tags.push('default');
        const template = state.templates.named(name);
        const pending = newBuild({ cpuCount: body.cpuCount ?? defaultCpuCount, memoryMB: body.memoryMB ?? defaultMemoryMB, tags });
        template.builds.set(pending.buildID, pending);
        sendJson(response, 202, {
          templateID: template.templateID,
          buildID: pending.buildID,
          names: template.names,
          aliases: template.names,
          tags,
          public: false,
        });
      },
    },
    {
      method: 'POST',
      pattern: '/v2/templates/:templateID/builds/:buildID',
      async handle(request, response) {
        const { template, build: pending } = build(state, request);
        const body = parse(startBuildSchema, await request.json());
        if (pending.status !== 'waiting') throw new HttpError(400, `build '${pending.buildID}' was already started`);
        pending.status = 'building';
        void runBuild(state, template, pending, body);
        response.writeHead(202, { 'content-length': 0 }).end();
      },
    },
    {
      method: 'GET',
      pattern: '/templates/:templateID/builds/:buildID/status',
      async handle(request, response) {
        const { template, build: found } = build(state, request);
        const offset = Number(request.url.searchParams.get('logsOffset') ?? 0) || 0;
        sendJson(response, 200, {
          templateID: template.templateID,
          buildID: found.buildID,
          status: found.status,
          logEntries: found.logEntries.slice(offset),
          logs: [],
          ...(found.reason && { reason: { ...found.reason, logEntries: [] } }),
        });
      },
    },
    {
      method: 'GET',
      pattern: '/templates/:templateID/files/:hash',
      async handle() {
        throw new HttpError(
          501,
          'The E2B emulator does not implement COPY steps of template builds (Template.copy / copyItems): run commands that write the files instead',
        );
      },
    },
    {
      method: 'GET',
      pattern: '/templates/aliases/:alias',
      async handle(request, response) {
        const template = state.templates.find(request.params.alias!);
        if (!template?.names.includes(request.params.alias!)) {
          throw new HttpError(404, `template '${request.params.alias}' not found`);
        }
        sendJson(response, 200, { templateID: template.templateID, public: false });
      },
    },
    {
      method: 'GET',
      pattern: '/templates/:templateID/tags',
      async handle(request, response) {
        const template = state.templates.find(request.params.templateID!);
        if (!template) throw new HttpError(404, `template '${request.params.templateID}' not found`);
        sendJson(
          response,
          200,
          [...template.tags].map(([tag, { buildID, createdAt }]) => ({ tag, buildID, createdAt: createdAt.toISOString() })),
        );
      },
    },
    {
      method: 'POST',
      pattern: '/templates/tags',
      async handle(request, response) {
        const body = parse(z.object({ target: z.string().min(1), tags: z.array(z.string().min(1)).min(1) }), await request.json());
        const { name, tag } = splitTag(body.target);
        const template = state.templates.find(name);
        const source = template?.tags.get(tag);
        if (!template || !source) throw new HttpError(404, `template '${body.target}' not found`);
        for (const newTag of body.tags) template.tags.set(newTag, { buildID: source.buildID, createdAt: new Date() });
        sendJson(response, 201, { buildID: source.buildID, tags: body.tags });
      },
    },
    {
      method: 'DELETE',
      pattern: '/templates/tags',
      async handle(request, response) {
        const body = parse(z.object({ name: z.string().min(1), tags: z.array(z.string().min(1)).min(1) }), await request.json());
        const template = state.templates.find(body.name);
        if (!template) throw new HttpError(404, `template '${body.name}' not found`);
        for (const tag of body.tags) {
          if (!template.tags.has(tag)) throw new HttpError(404, `tag '${tag}' of template '${body.name}' not found`);
        }
        for (const tag of body.tags) template.tags.delete(tag);
        response.writeHead(204, { 'content-length': 0 }).end();
      },
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Builds

/** A build failure at a step: `step` is what the SDK maps to the builder call's stack frame. */
class BuildFailure extends Error {
  constructor(
    message: string,
    readonly step: string | undefined,
  ) {
    super(message);
  }
}

function log(build: TemplateBuild, message: string, level: LogEntry['level'] = 'info', step?: string): void {
  build.logEntries.push({ timestamp: new Date().toISOString(), level, message, ...(step !== undefined && { step }) });
}

/**
 * Registry images whose promise the base template's userland keeps (the image's name is the last
 * path component, on any registry).
 */
const baseImageTags = [/(^|\/)e2bdev\/base(:|@|$)/, /(^|\/)debian(:|@|$)/, /(^|\/)python(:|@|$)/];

/** The base a build starts from. E2B's `fromBaseImage()` is `fromImage('e2bdev/base')`: our `base`. */
function buildBase(state: E2bState, body: StartBuild): ResolvedTemplate {
  if (body.fromImageRegistry !== undefined) {
    throw new BuildFailure(
      'The E2B emulator pulls no images: registry credentials (fromImage with credentials, fromAWSRegistry, fromGCPRegistry) are not supported',
      'base',
    );
  }
  if (body.fromTemplate) {
    try {
      return resolveTemplate(state, body.fromTemplate);
    } catch (error) {
      throw new BuildFailure(error instanceof Error ? error.message : String(error), 'base');
    }
  }
  const image = body.fromImage ?? 'e2bdev/base';
  if (baseImageTags.some((pattern) => pattern.test(image))) return resolveTemplate(state, 'base');
  throw new BuildFailure(
    `The E2B emulator pulls no images: fromImage('${image}') is not available (it builds over e2bdev/base, debian:* and python:*, on its base template); build fromTemplate('base') or fromBaseImage()`,
    'base',
  );
}

async function runBuild(state: E2bState, template: E2bTemplate, build: TemplateBuild, body: StartBuild): Promise<void> {
  let sandbox: LocalSandbox | undefined;
  try {
    if (body.startCmd !== undefined || body.readyCmd !== undefined) {
      throw new BuildFailure('The E2B emulator does not run start or ready commands of templates (setStartCmd / setReadyCmd)', 'finalize');
    }
    const base = buildBase(state, body);
    log(build, `Building from template ${base.alias ?? base.templateID} (${build.cpuCount} vCPU, ${build.memoryMB} MB)`, 'info', 'base');
    build.envs = { ...base.envs };
    build.workdir = base.workdir;
    build.user = base.user;
    sandbox = await state.provider.create({
      image: base.localImage,
      cpu: build.cpuCount,
      memoryMiB: build.memoryMB,
      timeoutMs: 60 * 60_000,
    });
    for (const [index, step] of body.steps.entries()) await runStep(sandbox, build, step, String(index + 1));
    const snapshot = await sandbox.snapshot!();
    build.localImage = snapshot;
    const previous = template.dispose;
    // A build's snapshot lives as long as its template (or the emulator).
    Object.assign(template, {
      dispose: async () => {
        await previous?.();
        await state.provider.deleteSnapshot?.(snapshot).catch(() => undefined);
      },
    });
    for (const tag of build.tags) template.tags.set(tag, { buildID: build.buildID, createdAt: new Date() });
    build.status = 'ready';
    log(build, 'Build finished', 'info', 'finalize');
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    build.reason = { message, ...(error instanceof BuildFailure && error.step !== undefined && { step: error.step }) };
    log(build, message, 'error', build.reason.step);
    build.status = 'error';
  } finally {
    await sandbox?.terminate().catch(() => undefined);
  }
}

async function runStep(sandbox: LocalSandbox, build: TemplateBuild, step: z.infer<typeof stepSchema>, index: string): Promise<void> {
  const [first = '', second] = step.args;
  switch (step.type) {
    case 'RUN': {
      log(build, `RUN ${first}`, 'info', index);
      // Every user is root in the local sandbox: a step "as" a user gets that user's HOME and name.
      const user = second ?? build.user;
      const home = user === 'root' ? '/root' : user === 'user' ? '/home/user' : '/';
      const result = await sandbox.run(['/bin/bash', '-l', '-c', first], {
        env: { HOME: home, USER: user, ...build.envs },
        cwd: build.workdir ?? home,
      });
      for (const line of `${result.stdout}${result.stderr}`.split('\n')) if (line !== '') log(build, line, 'info', index);
      if (result.exitCode !== 0)
        throw new BuildFailure(`RUN ${first}: exited with code ${result.exitCode}: ${result.stderr.trim().slice(-500)}`, index);
      return;
    }
    case 'ENV':
      for (let at = 0; at + 1 < step.args.length; at += 2) build.envs[step.args[at]!] = step.args[at + 1]!;
      log(build, `ENV ${step.args.join(' ')}`, 'info', index);
      return;
    case 'WORKDIR': {
      const result = await sandbox.run(['mkdir', '-p', '--', first]);
      if (result.exitCode !== 0) throw new BuildFailure(`WORKDIR ${first}: ${result.stderr.trim()}`, index);
      build.workdir = first;
      log(build, `WORKDIR ${first}`, 'info', index);
      return;
    }
    case 'USER': {
      const result = await sandbox.run(['id', '-u', '--', first]);
      if (result.exitCode !== 0) throw new BuildFailure(`USER ${first}: no such user in the template`, index);
      build.user = first;
      log(build, `USER ${first}`, 'info', index);
      return;
    }
    case 'COPY':
      throw new BuildFailure('The E2B emulator does not implement COPY steps of template builds (Template.copy)', index);
    default:
      throw new BuildFailure(`The E2B emulator does not implement template build steps of type ${step.type}`, index);
  }
}
