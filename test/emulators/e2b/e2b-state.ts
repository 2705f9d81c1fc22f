/**
 * What the E2B emulator knows: its sandboxes (each a local sandbox under an E2B-shaped id), the
 * API key it accepts, templates, and the lookups the handler groups share. The groups
 * (e2b-sandboxes.ts: the control plane; e2b-process.ts, e2b-filesystem.ts, e2b-files.ts: envd)
 * each read and change it.
 */
import type { LocalSandbox, LocalSandboxProvider } from '../../../adapters/local/index.js';
import { randomToken } from '../shared/ids.js';
import { SandboxRegistry, type RegisteredSandbox } from '../shared/sandbox-registry.js';
import { HttpError, type E2bRequest } from './e2b-http.js';
import { E2bTemplateRegistry } from './e2b-templates.js';

/** The envd version the emulator reports (features of the SDK gate on it). */
export const envdVersion = '0.6.4';

/** What the emulator keeps per sandbox beside the registry's id, tags (E2B's metadata) and scope (the team). */
export interface E2bSandboxData {
  templateId: string;
  /** Required in `X-Access-Token` by envd when the sandbox was created `secure`. */
  envdAccessToken: string | undefined;
  /** Paused through the control plane: envd is unreachable (502) until it is resumed. */
  paused: boolean;
  /** Handler groups keep their per-sandbox state here, under their own key. */
  readonly extra: Map<string, unknown>;
}

export type E2bSandbox = RegisteredSandbox<LocalSandbox, E2bSandboxData>;

export interface E2bStateOptions {
  provider: LocalSandboxProvider;
  /** The API key `X-API-KEY` must carry. @default any non-empty key */
  apiKey?: string;
  /** The domain `getHost` builds host names with (`<port>-<sandboxID>.<domain>`). */
  domain: string;
}

export class E2bState {
  readonly provider: LocalSandboxProvider;
  readonly apiKey: string | undefined;
  readonly domain: string;
  /** E2B ids: 20 lowercase letters and digits. */
  readonly sandboxes: SandboxRegistry<LocalSandbox, E2bSandboxData>;
  /** Templates by id and name: `base`, its sized variants, and builds (e2b-templates.ts). */
  readonly templates = new E2bTemplateRegistry();
  /** Control-plane and envd call counts by `METHOD pattern`. */
  readonly calls = { api: new Map<string, number>(), envd: new Map<string, number>() };
  /** Run on close, after the sandboxes ended (servers and sandboxes handler groups started). */
  readonly closers = new Set<() => Promise<void>>();

  constructor(options: E2bStateOptions) {
    this.provider = options.provider;
    this.sandboxes = new SandboxRegistry(options.provider, { newId: () => randomToken(20).toLowerCase(), scopeNoun: 'team' });
    this.apiKey = options.apiKey;
    this.domain = options.domain;
  }

  /** Refuses a control-plane call without the API key (E2B answers 401). */
  checkApiKey(request: E2bRequest): void {
    const key = request.headers['x-api-key'];
    if (typeof key !== 'string' || key === '' || (this.apiKey !== undefined && key !== this.apiKey)) {
      throw new HttpError(401, 'Invalid API key');
    }
  }

  /** A sandbox by id, running or not; 404 when it never existed. */
  sandbox(id: string): E2bSandbox {
    const found = this.sandboxes.get(id);
    if (!found) throw new HttpError(404, `sandbox "${id}" not found`);
    return found;
  }

  /**
   * The running sandbox an envd request is for (header `E2b-Sandbox-Id`), its access token
   * checked. A missing or ended sandbox is a 502 as E2B's proxy answers for a sandbox that is gone.
   */
  envdSandbox(request: E2bRequest): E2bSandbox {
    const id = request.headers['e2b-sandbox-id'];
    const found = typeof id === 'string' ? this.sandboxes.get(id) : undefined;
    if (!found || found.end) throw new HttpError(502, `The sandbox ${String(id)} was not found`);
    if (found.data.paused) throw new HttpError(502, `The sandbox ${found.id} is paused: resume it with Sandbox.connect()`);
    const token = found.data.envdAccessToken;
    if (token !== undefined && request.headers['x-access-token'] !== token) throw new HttpError(401, 'invalid access token');
    return found;
  }
}
