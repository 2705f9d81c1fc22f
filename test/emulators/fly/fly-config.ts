/**
 * The machine `config` object of Fly's Machines API, validated with zod: the fields the emulator
 * acts on are typed; every other field Fly documents is kept as given and echoed back (Fly
 * answers with the config it stores). Fields with an effect the emulator does not reproduce are
 * refused with a 400 naming them, never silently ignored.
 */
import { z } from 'zod';
import { FlyHttpError } from './fly-http.js';

const port = z.number().int().min(1).max(65535);
const argv = z.array(z.string());

const servicePortSchema = z.looseObject({
  port: port.optional(),
  start_port: port.optional(),
  end_port: port.optional(),
  handlers: z.array(z.string()).optional(),
  force_https: z.boolean().optional(),
});

const serviceSchema = z.looseObject({
  protocol: z.enum(['tcp', 'udp']),
  internal_port: port,
  ports: z.array(servicePortSchema).optional(),
  autostart: z.boolean().optional(),
  autostop: z.union([z.boolean(), z.enum(['off', 'stop', 'suspend'])]).optional(),
});

const mountSchema = z.looseObject({
  volume: z.string().min(1),
  path: z.string().startsWith('/'),
  name: z.string().optional(),
});

/** A Go duration ("10s", "1m30s", "500ms") or a number of seconds. */
const durationSchema = z.union([z.string(), z.number()]);

export const machineConfigSchema = z.looseObject({
  image: z.string().min(1),
  env: z.record(z.string(), z.string()).optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  guest: z
    .looseObject({
      cpus: z.number().int().min(1).optional(),
      memory_mb: z.number().int().min(16).optional(),
      cpu_kind: z.string().optional(),
    })
    .optional(),
  services: z.array(serviceSchema).optional(),
  init: z.looseObject({ exec: argv.optional(), entrypoint: argv.optional(), cmd: argv.optional(), tty: z.boolean().optional() }).optional(),
  auto_destroy: z.boolean().optional(),
  restart: z.looseObject({ policy: z.enum(['no', 'always', 'on-failure']), max_retries: z.number().int().min(0).optional() }).optional(),
  mounts: z.array(mountSchema).max(1, { message: 'only one volume can be mounted per machine' }).optional(),
  stop_config: z.looseObject({ signal: z.string().optional(), timeout: durationSchema.optional() }).optional(),
});

export type MachineConfig = z.infer<typeof machineConfigSchema>;
export type MachineService = z.infer<typeof serviceSchema>;

/** Documented config fields whose effect the emulator does not reproduce: refused, by name. */
const unsupportedFields = ['files', 'processes', 'containers', 'schedule', 'standbys', 'statics', 'volumes'] as const;

/** The config of a create or update, validated; a bad one is Fly's 400 `invalid_argument`. */
export function parseMachineConfig(value: unknown): MachineConfig {
  if (value === undefined || value === null) throw new FlyHttpError(400, 'invalid_argument: config is required');
  const parsed = machineConfigSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = ['config', ...issue.path].join('.');
    throw new FlyHttpError(400, `invalid_argument: ${path}: ${issue.message}`);
  }
  for (const field of unsupportedFields) {
    if (parsed.data[field] !== undefined) {
      throw new FlyHttpError(400, `invalid_argument: config.${field} is not implemented by the Fly emulator`);
    }
  }
  return parsed.data;
}

/** The init process's argv: `exec`, else `entrypoint` + `cmd`; empty when the image's default would run. */
export function initArgv(config: MachineConfig): string[] {
  if (config.init?.exec && config.init.exec.length > 0) return [...config.init.exec];
  return [...(config.init?.entrypoint ?? []), ...(config.init?.cmd ?? [])];
}

/**
 * Seconds of a Go duration ("10s", "1m30s", "250ms"), a string of digits (seconds) or a number
 * (seconds). Undefined for anything else.
 */
export function parseDurationSeconds(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const units: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  let rest = text;
  while (rest.length > 0) {
    const match = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/.exec(rest);
    if (!match) return undefined;
    total += Number(match[1]) * units[match[2]!]!;
    rest = rest.slice(match[0].length);
  }
  return total;
}

/** What happens when the init process exits: the restart policy with Fly's defaults applied. */
export function restartPolicy(config: MachineConfig): { policy: 'no' | 'always' | 'on-failure'; maxRetries: number } {
  if (config.restart) return { policy: config.restart.policy, maxRetries: config.restart.max_retries ?? 10 };
  // A machine that destroys itself when done is not restarted unless asked to be.
  return config.auto_destroy ? { policy: 'no', maxRetries: 0 } : { policy: 'on-failure', maxRetries: 10 };
}

/** The service and port entry that serve an external port, or undefined. */
export function serviceForPort(config: MachineConfig, external: number): MachineService | undefined {
  return (config.services ?? []).find((service) =>
    (service.ports ?? []).some((entry) =>
      entry.port !== undefined
        ? entry.port === external
        : entry.start_port !== undefined && entry.end_port !== undefined && entry.start_port <= external && external <= entry.end_port,
    ),
  );
}
