/**
 * Type tests of the contract's option types. The compile-time checks here run under
 * `npx tsc --noEmit` (a `@ts-expect-error` that stops failing is itself an error); vitest runs
 * the file too, for the runtime assertions.
 *
 * The schemas in src/spec/options.ts are typed with `schemaFor`, so options.ts itself does not
 * compile when a schema and its interface drift apart. This file proves that `schemaFor` catches
 * each kind of drift, and that the public types are the documented interfaces.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  SandboxCapabilityUnsupportedError,
  SandboxNotFoundError,
  SandboxTimeoutError,
  createSandboxOptionsSchema,
  type execOptionsSchema,
  type imageSchema,
  type listSandboxesOptionsSchema,
  type networkSchema,
  parseOptions,
  type portSchema,
  type removeOptionsSchema,
  type runOptionsSchema,
  schemaFor,
  signalNameSchema,
  type tagsSchema,
  type volumeSchema,
  type writeFileOptionsSchema,
  type Command,
  type CreateSandboxOptions,
  type ExecOptions,
  type ListSandboxesOptions,
  type NetworkPolicy,
  type ParsedCreateSandboxOptions,
  type ParsedNetworkPolicy,
  type ParsedSandboxImage,
  type ParsedVolumeSpec,
  type PortSpec,
  type RemoveOptions,
  type RunOptions,
  type SandboxCapabilityName,
  type SandboxCapabilityPath,
  type SandboxEndReason,
  type SandboxEvents,
  type SandboxFiles,
  type SandboxImage,
  type SandboxProcess,
  type SandboxSignal,
  type SandboxTags,
  type VolumeSpec,
  type WriteFileData,
  type WriteFileOptions,
} from '../../src/kit/index.js';

describe('option types', () => {
  it('each schema is typed by its documented interfaces', () => {
    expectTypeOf<z.input<typeof createSandboxOptionsSchema>>().toEqualTypeOf<CreateSandboxOptions>();
    expectTypeOf<z.output<typeof createSandboxOptionsSchema>>().toEqualTypeOf<ParsedCreateSandboxOptions>();
    expectTypeOf<z.input<typeof execOptionsSchema>>().toEqualTypeOf<ExecOptions>();
    expectTypeOf<z.input<typeof runOptionsSchema>>().toEqualTypeOf<RunOptions>();
    expectTypeOf<z.input<typeof listSandboxesOptionsSchema>>().toEqualTypeOf<ListSandboxesOptions>();
    expectTypeOf<z.input<typeof writeFileOptionsSchema>>().toEqualTypeOf<WriteFileOptions>();
    expectTypeOf<z.input<typeof removeOptionsSchema>>().toEqualTypeOf<RemoveOptions>();
    expectTypeOf<z.input<typeof imageSchema>>().toEqualTypeOf<SandboxImage>();
    expectTypeOf<z.output<typeof imageSchema>>().toEqualTypeOf<ParsedSandboxImage>();
    expectTypeOf<z.input<typeof networkSchema>>().toEqualTypeOf<NetworkPolicy>();
    expectTypeOf<z.output<typeof networkSchema>>().toEqualTypeOf<ParsedNetworkPolicy>();
    expectTypeOf<z.input<typeof volumeSchema>>().toEqualTypeOf<VolumeSpec>();
    expectTypeOf<z.output<typeof volumeSchema>>().toEqualTypeOf<ParsedVolumeSpec>();
    expectTypeOf<z.input<typeof portSchema>>().toEqualTypeOf<PortSpec>();
    expectTypeOf<z.input<typeof tagsSchema>>().toEqualTypeOf<SandboxTags>();
    expectTypeOf<z.output<typeof signalNameSchema>>().toEqualTypeOf<SandboxSignal>();

    // Readonly arrays (`as const`) are accepted where the schema copies them.
    const options: CreateSandboxOptions = {
      ports: [80] as const,
      network: { allowDomains: ['example.org'] as const },
      command: ['true'] as const,
    };
    const parsed: ParsedCreateSandboxOptions = parseOptions(createSandboxOptionsSchema, options, { what: 'create options' });
    expect(parsed.network).toEqual({ allowCidrs: [], allowDomains: ['example.org'] });
  });

  it('schemaFor refuses a schema that drifted from its types, in every direction', () => {
    interface Thing {
      name: string;
      count?: number;
    }
    const agrees = schemaFor<Thing>()(z.strictObject({ name: z.string(), count: z.number().optional() }));
    // @ts-expect-error a field of the wrong type
    const wrongType = schemaFor<Thing>()(z.strictObject({ name: z.number(), count: z.number().optional() }));
    // @ts-expect-error a field the interface does not declare
    const extraField = schemaFor<Thing>()(z.strictObject({ name: z.string(), count: z.number().optional(), more: z.boolean().optional() }));
    // @ts-expect-error a declared field the schema lacks
    const missingField = schemaFor<Thing>()(z.strictObject({ name: z.string() }));
    // @ts-expect-error optional in the schema, required in the interface
    const looser = schemaFor<Thing>()(z.strictObject({ name: z.string().optional(), count: z.number().optional() }));
    // @ts-expect-error the schema fills a default the output type does not show
    const hiddenDefault = schemaFor<Thing>()(z.strictObject({ name: z.string(), count: z.number().default(0) }));
    const shownDefault = schemaFor<Required<Thing>, Thing>()(z.strictObject({ name: z.string(), count: z.number().default(0) }));
    expect(agrees.parse({ name: 'a' })).toEqual({ name: 'a' });
    expect(shownDefault.parse({ name: 'a' })).toEqual({ name: 'a', count: 0 });
    expect([wrongType, extraField, missingField, looser, hiddenDefault]).toHaveLength(5);
  });
});

describe('contract types', () => {
  it('kill takes a SandboxSignal, which is a Node signal name too', () => {
    expectTypeOf<Parameters<SandboxProcess['kill']>[0]>().toEqualTypeOf<SandboxSignal | undefined>();
    expectTypeOf<SandboxSignal>().toExtend<NodeJS.Signals>();
    const term: SandboxSignal = 'SIGTERM';
    // @ts-expect-error an unknown name
    const unknown: SandboxSignal = 'SIGFOO';
    // @ts-expect-error lower case
    const lower: SandboxSignal = 'sigterm';
    expect(signalNameSchema.safeParse(term).success).toBe(true);
    expect([unknown, lower].map((name) => signalNameSchema.safeParse(name).success)).toEqual([false, false]);
  });

  it('files.write takes WriteFileData and WriteFileOptions, remove takes RemoveOptions', () => {
    expectTypeOf<Parameters<SandboxFiles['write']>[1]>().toEqualTypeOf<WriteFileData>();
    expectTypeOf<Parameters<SandboxFiles['write']>[2]>().toEqualTypeOf<WriteFileOptions | undefined>();
    expectTypeOf<Parameters<SandboxFiles['remove']>[1]>().toEqualTypeOf<RemoveOptions | undefined>();
    expectTypeOf<ArrayBuffer>().toExtend<WriteFileData>();
  });

  it('event payloads are typed', () => {
    expectTypeOf<SandboxEvents['sandbox-terminated'][0]['reason']>().toEqualTypeOf<SandboxEndReason>();
    expectTypeOf<SandboxEvents['exec-start'][0]['command']>().toEqualTypeOf<Command>();
    expectTypeOf<SandboxEvents['retry'][0]['error']>().toBeUnknown();
  });
});

describe('error payload types', () => {
  it('capability is a capability path, kept open for names not listed', () => {
    expectTypeOf<'limits.pids'>().toExtend<SandboxCapabilityPath>();
    expectTypeOf<'providerOptions.docker.runtime'>().toExtend<SandboxCapabilityPath>();
    // @ts-expect-error not a path of SandboxCapabilities
    const notAPath: SandboxCapabilityPath = 'network.allowlist';
    const open: SandboxCapabilityName = notAPath;
    expectTypeOf<SandboxCapabilityUnsupportedError['capability']>().toEqualTypeOf<SandboxCapabilityName>();
    const error = new SandboxCapabilityUnsupportedError({ message: 'no', capability: 'network.allowDomains' });
    expect(error.capability).toBe('network.allowDomains');
    expect(open).toBe('network.allowlist');
  });

  it('SandboxNotFoundError keeps the name a fromName looked up, apart from the class name', () => {
    const error = new SandboxNotFoundError({ message: 'none', name: 'my-box' });
    expect(error.sandboxName).toBe('my-box');
    expect(error.name).toBe('SandboxNotFoundError');
    expect(error.sandboxId).toBeUndefined();
  });

  it('timeout operations are a documented, open union', () => {
    const known = new SandboxTimeoutError({ message: 'late', operation: 'agent-turn' });
    const other = new SandboxTimeoutError({ message: 'late', operation: 'fromName' });
    expectTypeOf(known.operation).toExtend<string>();
    expect([known.operation, other.operation]).toEqual(['agent-turn', 'fromName']);
  });
});
