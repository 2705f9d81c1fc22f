import type { Attributes } from '@opentelemetry/api';
import { SandboxInvalidArgumentError } from '../errors/index.js';
import type { Command, CreateSandboxOptions, ExecOptions } from '../spec/options.js';
import type { ExecResult, ExitStatus, Sandbox, SandboxProcess, SandboxProvider } from '../spec/sandbox.js';
import { instrumentFiles } from './instrument-files.js';
import { inSpan, recordError, setUpTelemetry, startSpan, type Telemetry, type TelemetryOptions } from './telemetry-spans.js';

/**
 * Wraps a provider so that its calls, and those of every sandbox it creates or finds, make
 * OpenTelemetry spans (the span names and attributes are listed in the README's
 * "Observability" section): `sandport.create`, `sandport.from_id`, `sandport.exec` (from the
 * call until the command exits, with `sandport.exec.exit_code`), `sandport.run`,
 * `sandport.files.<method>`, `sandport.terminate`, … Every span carries `sandport.provider`, and
 * the sandbox's `sandport.sandbox.id` once there is one. A call that rejects ends its span with
 * status ERROR, the exception and `error.type`; a non-zero exit is not an error (as in the
 * contract), it is the exit code attribute. Spans are children of the span active at the call.
 * The provider's `retry` and `warning` events become span events of the call they happen in.
 *
 * The result is a real `SandboxProvider`: the same `id`, `capabilities` and `events` (the
 * underlying emitter, so existing listeners keep working), and each optional member present
 * exactly when the underlying provider (or sandbox) has it. It holds only the contract's members:
 * reach an adapter's own extras on the original. The same underlying sandbox is always wrapped
 * by the same object. Nothing is recorded unless an OpenTelemetry SDK is registered (or a
 * `tracer` given): without one the API's no-op tracer makes the spans, at near-zero cost.
 *
 * Validates `provider` and `options` first (`SandboxInvalidArgumentError` naming the field), then loads
 * `@opentelemetry/api`: throws `SandboxCapabilityUnsupportedError` (capability
 * `peer:@opentelemetry/api`) naming the package when it is not installed. Calling it twice wraps
 * twice (two spans per call), and each call adds its listeners to `provider.events` for the
 * provider's life: wrap once, where the provider is made.
 */
export async function instrumentProvider(provider: SandboxProvider, options?: TelemetryOptions): Promise<SandboxProvider> {
  const candidate = provider as Partial<SandboxProvider> | undefined;
  if (typeof candidate?.create !== 'function' || typeof candidate.fromId !== 'function' || typeof candidate.events?.on !== 'function')
    throw new SandboxInvalidArgumentError({ message: 'provider must be a SandboxProvider', argument: 'provider' });
  const telemetry = await setUpTelemetry(options);
  forwardEvents(telemetry, provider);
  const sandboxes = new WeakMap<Sandbox, Sandbox>();
  const wrap = (sandbox: Sandbox): Sandbox => {
    let wrapped = sandboxes.get(sandbox);
    if (!wrapped) sandboxes.set(sandbox, (wrapped = instrumentSandbox(telemetry, sandbox)));
    return wrapped;
  };
  const base: Attributes = { 'sandport.provider': provider.id };
  const located = (sandbox: Sandbox): Attributes => ({ 'sandport.sandbox.id': sandbox.id });
  const wrapper: SandboxProvider = {
    specificationVersion: provider.specificationVersion,
    id: provider.id,
    capabilities: provider.capabilities,
    events: provider.events,
    create: async (createOptions?: CreateSandboxOptions) =>
      wrap(
        await inSpan(
          telemetry,
          'sandport.create',
          { ...base, ...createAttributes(createOptions) },
          () => provider.create(createOptions),
          (sandbox) => ({
            ...located(sandbox),
            'sandport.sandbox.warnings': sandbox.warnings.length,
          }),
        ),
      ),
    fromId: async (id, signalOptions) =>
      wrap(await inSpan(telemetry, 'sandport.from_id', { ...base, 'sandport.sandbox.id': id }, () => provider.fromId(id, signalOptions))),
  };
  if (provider.fromName) {
    const fromName = provider.fromName.bind(provider);
    wrapper.fromName = async (name, signalOptions) =>
      wrap(
        await inSpan(
          telemetry,
          'sandport.from_name',
          { ...base, 'sandport.sandbox.name': name },
          () => fromName(name, signalOptions),
          located,
        ),
      );
  }
  if (provider.list) {
    const list = provider.list.bind(provider);
    wrapper.list = (listOptions) =>
      inSpan(
        telemetry,
        'sandport.list',
        base,
        () => list(listOptions),
        (found) => ({ 'sandport.list.count': found.length }),
      );
  }
  if (provider.deleteSnapshot) {
    const deleteSnapshot = provider.deleteSnapshot.bind(provider);
    wrapper.deleteSnapshot = (snapshot, signalOptions) =>
      inSpan(telemetry, 'sandport.delete_snapshot', base, () => deleteSnapshot(snapshot, signalOptions));
  }
  // Synchronous and without I/O: nothing worth a span.
  if (provider.openHostRoute) wrapper.openHostRoute = provider.openHostRoute.bind(provider);
  return wrapper;
}

/** Attributes of a create call that say what was asked for, without env values or secrets. */
function createAttributes(options: CreateSandboxOptions | undefined): Attributes {
  const attributes: Attributes = {};
  if (options?.name !== undefined) attributes['sandport.sandbox.name'] = options.name;
  if (typeof options?.image === 'string') attributes['sandport.sandbox.image'] = options.image;
  if (typeof options?.network === 'string') attributes['sandport.sandbox.network'] = options.network;
  return attributes;
}

/**
 * Retries, warnings and exec starts happen inside a call: they become events (or, for an exec,
 * its `sandport.exec.id`) of that call's span, when the span active at the emit is one of ours
 * (never an app's span, never another wrapper's).
 */
function forwardEvents(telemetry: Telemetry, provider: SandboxProvider): void {
  const current = () => {
    const span = telemetry.api.trace.getActiveSpan();
    return span && telemetry.spans.has(span) ? span : undefined;
  };
  // The exec's id pairs its span with the `exec-start`/`exec-end` events (on `run`, the one it made).
  provider.events.on('exec-start', ({ execId }) => current()?.setAttribute('sandport.exec.id', execId));
  provider.events.on('retry', ({ operation, attempt, error }) =>
    current()?.addEvent('sandport.retry', {
      'sandport.retry.operation': operation,
      'sandport.retry.attempt': attempt,
      'sandport.retry.error': error instanceof Error ? error.message : String(error),
    }),
  );
  provider.events.on('warning', ({ warning }) =>
    current()?.addEvent('sandport.warning', {
      'sandport.warning.type': warning.type,
      ...(warning.type === 'unsupported-setting'
        ? { 'sandport.warning.setting': warning.setting, 'sandport.warning.details': warning.details }
        : { 'sandport.warning.message': warning.message }),
    }),
  );
}

function instrumentSandbox(telemetry: Telemetry, sandbox: Sandbox): Sandbox {
  const base: Attributes = { 'sandport.provider': sandbox.provider, 'sandport.sandbox.id': sandbox.id };
  const span = <T>(name: string, call: () => Promise<T>) => inSpan(telemetry, `sandport.${name}`, base, call);
  const wrapped: Sandbox = {
    id: sandbox.id,
    provider: sandbox.provider,
    name: sandbox.name,
    warnings: sandbox.warnings,
    files: instrumentFiles(telemetry, sandbox, base),
    exec: (command, options) => traceExec(telemetry, base, sandbox, command, options),
    run: (command, options) =>
      inSpan(
        telemetry,
        'sandport.run',
        { ...base, ...commandAttributes(telemetry, command) },
        () => sandbox.run(command, options),
        (result: ExecResult) => ({
          'sandport.exec.exit_code': result.exitCode,
          ...(result.signal ? { 'sandport.exec.signal': result.signal } : {}),
          'sandport.exec.truncated': result.truncated,
        }),
      ),
    tunnels: (options) => span('tunnels', () => sandbox.tunnels(options)),
    setTags: (tags, options) => span('set_tags', () => sandbox.setTags(tags, options)),
    // Reads of state, often polled: no spans, so that a wait loop does not flood the trace.
    getTags: (options) => sandbox.getTags(options),
    poll: (options) => sandbox.poll(options),
    wait: (options) => sandbox.wait(options),
    terminate: (options) => span('terminate', () => sandbox.terminate(options)),
    [Symbol.asyncDispose]: () => span('terminate', async () => sandbox[Symbol.asyncDispose]()),
  };
  if (sandbox.snapshot) {
    const snapshot = sandbox.snapshot.bind(sandbox);
    wrapped.snapshot = (options) => span('snapshot', () => snapshot(options));
  }
  if (sandbox.extendTimeout) {
    const extendTimeout = sandbox.extendTimeout.bind(sandbox);
    wrapped.extendTimeout = (timeoutMs, options) =>
      inSpan(telemetry, 'sandport.extend_timeout', { ...base, 'sandport.timeout_ms': timeoutMs }, () => extendTimeout(timeoutMs, options));
  }
  if (sandbox.updateNetwork) {
    const updateNetwork = sandbox.updateNetwork.bind(sandbox);
    wrapped.updateNetwork = (policy, options) => span('update_network', () => updateNetwork(policy, options));
  }
  if (sandbox.pause) {
    const pause = sandbox.pause.bind(sandbox);
    wrapped.pause = (options) => span('pause', () => pause(options));
  }
  if (sandbox.resume) {
    const resume = sandbox.resume.bind(sandbox);
    wrapped.resume = (options) => span('resume', () => resume(options));
  }
  // The entrypoint's streams: the underlying getters, read on each access (the same stream each time).
  for (const stream of ['stdout', 'stderr', 'stdin'] as const) {
    if (stream in sandbox) Object.defineProperty(wrapped, stream, { get: () => sandbox[stream], enumerable: true });
  }
  return wrapped;
}

/**
 * `sandport.exec` spans the command's life: it starts at the call and ends when the command
 * exits (with its exit code) or fails. The process is handed back unchanged: its streams,
 * `kill` and `resize` are the underlying ones.
 */
async function traceExec(
  telemetry: Telemetry,
  base: Attributes,
  sandbox: Sandbox,
  command: Command,
  options: ExecOptions | undefined,
): Promise<SandboxProcess> {
  const { span, context } = startSpan(telemetry, 'sandport.exec', {
    ...base,
    ...commandAttributes(telemetry, command),
    'sandport.exec.pty': options?.pty !== undefined,
  });
  let process: SandboxProcess;
  try {
    process = await telemetry.api.context.with(context, () => sandbox.exec(command, options));
  } catch (error) {
    recordError(telemetry, span, error);
    span.end();
    throw error;
  }
  // `wait` is idempotent: waiting here as well as in the app changes nothing for the app.
  process.wait().then(
    (status: ExitStatus) => {
      span.setAttribute('sandport.exec.exit_code', status.exitCode);
      if (status.signal) span.setAttribute('sandport.exec.signal', status.signal);
      if (status.oomKilled) span.setAttribute('sandport.exec.oom_killed', true);
      span.end();
    },
    (error: unknown) => {
      recordError(telemetry, span, error);
      span.end();
    },
  );
  return process;
}

/** The program name of an argv command, or that a shell runs a string; the whole line only when asked. */
function commandAttributes(telemetry: Telemetry, command: Command): Attributes {
  const attributes: Attributes = {};
  // A malformed command is the underlying exec's to refuse; it gets no attributes here.
  if (typeof command === 'string') attributes['sandport.exec.shell'] = true;
  else if (Array.isArray(command) && typeof command[0] === 'string') attributes['process.executable.name'] = command[0].split('/').at(-1)!;
  if (telemetry.recordCommandLine && (typeof command === 'string' || Array.isArray(command)))
    attributes['process.command_line'] = typeof command === 'string' ? command : command.join(' ');
  return attributes;
}
