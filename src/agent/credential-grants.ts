/**
 * The per-sandbox placeholders of the credential proxy's URL mode: one fresh credential per
 * sandbox, bound to the sandbox's id when it is issued, revoked when the sandbox ends, with its
 * own request and token (or spend) budget.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { emptyUsage, type MessageUsage, totalTokens } from './credential-usage.js';

/**
 * Per-sandbox budgets of the URL mode. Each is checked before a request is forwarded: the
 * request that crosses a limit completes, the next one is refused. Unset: unlimited.
 */
export interface SandboxBudget {
  /** Requests forwarded per sandbox; after that a request is refused with 429 (`rate_limit_error`). */
  maxRequests?: number;
  /**
   * Tokens per sandbox, as the replies reported them (input + output + cache creation + cache
   * read, summed over the sandbox's requests); once reached, a request is refused with 402
   * (`billing_error`). `count_tokens` calls are not counted.
   */
  maxTokens?: number;
  /**
   * Spend per sandbox in US dollars, as `priceUsd` computes it from each reply's usage; once
   * reached, a request is refused with 402 (`billing_error`). Needs `priceUsd`: the proxy knows no
   * prices (the API reports tokens, not money).
   */
  maxSpendUsd?: number;
  /** What one reply cost in US dollars, from its usage and the model that answered (`undefined` when the reply named none). */
  priceUsd?: (usage: MessageUsage, model: string | undefined) => number;
}

/** What one sandbox used through the proxy. */
export interface SandboxCredentialUsage {
  /** Requests forwarded upstream. */
  readonly requests: number;
  /** Requests refused (budget, body size, revoked). */
  readonly refused: number;
  /** Token counts summed over the replies. */
  readonly tokens: Readonly<MessageUsage>;
  /** Sum of `priceUsd` over the replies (0 without `priceUsd`). */
  readonly spendUsd: number;
}

/** The credential one sandbox got from the URL mode (see `CredentialProxy.grant`). */
export interface SandboxCredentialGrant {
  /** The sandbox it is bound to (`Sandbox.id`) and its provider's id. */
  readonly sandboxId: string;
  readonly provider: string;
  /** The per-sandbox placeholder credential: the sandbox sees this, never the real one. */
  readonly placeholder: string;
  /** The CLI's variables: `ANTHROPIC_BASE_URL` (the public URL) and the placeholder credential. */
  readonly env: Readonly<Record<string, string>>;
  readonly usage: SandboxCredentialUsage;
  /** Why it was revoked (`'sandbox ended (terminated)'`, `'revoked by the app'`, …), `undefined` while valid. */
  readonly revokedReason: string | undefined;
}

/** Why a request is refused, and the API-shaped answer for it. */
export interface Refusal {
  readonly status: number;
  readonly type: string;
  readonly message: string;
}

/** Revoked grants remembered (for a clear 401), beyond which the oldest are forgotten. */
const maxRemembered = 10_000;

export class Grant implements SandboxCredentialGrant {
  readonly env: Readonly<Record<string, string>>;
  revokedReason: string | undefined;
  readonly inflight = new Set<ServerResponse>();
  private counts = { requests: 0, refused: 0, spendUsd: 0 };
  private readonly tokens = emptyUsage();
  /** Aborted at revocation: stops watching the sandbox's end. */
  readonly watching = new AbortController();

  constructor(
    readonly sandboxId: string,
    readonly provider: string,
    readonly placeholder: string,
    variable: string,
    publicUrl: string,
    private readonly budget: SandboxBudget,
  ) {
    this.env = Object.freeze({ ANTHROPIC_BASE_URL: publicUrl, [variable]: placeholder });
  }

  get usage(): SandboxCredentialUsage {
    return { ...this.counts, tokens: { ...this.tokens } };
  }

  /** The refusal for the next request, or `undefined` when it may be forwarded (and is then counted). */
  admit(): Refusal | undefined {
    const refusal = this.check();
    if (refusal) this.counts.refused++;
    else this.counts.requests++;
    return refusal;
  }

  /** Counts a request refused for another reason (its body size). */
  refuse(): void {
    this.counts.refused++;
  }

  record(usage: MessageUsage, model: string | undefined): void {
    for (const key of Object.keys(this.tokens) as Array<keyof MessageUsage>) this.tokens[key] += usage[key];
    if (this.budget.priceUsd) this.counts.spendUsd += this.budget.priceUsd(usage, model);
  }

  revoke(reason: string): void {
    if (this.revokedReason) return;
    this.revokedReason = reason;
    this.watching.abort();
    // A sandbox that ended has nobody waiting; an app revoking means now, not after the reply.
    for (const response of this.inflight) response.destroy();
    this.inflight.clear();
  }

  /** The refusal the next request would get, counting nothing. */
  check(): Refusal | undefined {
    const where = `sandbox ${this.sandboxId} (${this.provider})`;
    if (this.revokedReason) {
      return {
        status: 401,
        type: 'authentication_error',
        message: `sandport credential proxy: the placeholder credential of ${where} was revoked: ${this.revokedReason}`,
      };
    }
    const { maxRequests, maxTokens, maxSpendUsd } = this.budget;
    if (maxRequests !== undefined && this.counts.requests >= maxRequests) {
      return {
        status: 429,
        type: 'rate_limit_error',
        message: `sandport credential proxy: ${where} used its budget of ${maxRequests} requests`,
      };
    }
    if (maxTokens !== undefined && totalTokens(this.tokens) >= maxTokens) {
      return {
        status: 402,
        type: 'billing_error',
        message: `sandport credential proxy: ${where} used its budget of ${maxTokens} tokens (${totalTokens(this.tokens)} used)`,
      };
    }
    if (maxSpendUsd !== undefined && this.counts.spendUsd >= maxSpendUsd) {
      return {
        status: 402,
        type: 'billing_error',
        message: `sandport credential proxy: ${where} used its budget of $${maxSpendUsd} ($${this.counts.spendUsd.toFixed(6)} spent)`,
      };
    }
    return undefined;
  }
}

/** The grants of one proxy, found by placeholder or by sandbox. */
export class GrantTable {
  // Keyed by a digest of the placeholder, so how long a lookup takes says nothing about it.
  private readonly byDigest = new Map<string, Grant>();
  private readonly bySandbox = new Map<string, Grant>();
  private readonly revokedOrder: Grant[] = [];

  constructor(
    private readonly settings: { kind: 'apiKey' | 'oauthToken' | 'authToken'; variable: string; publicUrl: string; budget: SandboxBudget },
  ) {}

  /** The sandbox's grant; a new one the first time (the same, revoked or not, after). */
  issue(provider: string, sandboxId: string): { grant: Grant; created: boolean } {
    const key = sandboxKey(provider, sandboxId);
    const existing = this.bySandbox.get(key);
    if (existing) return { grant: existing, created: false };
    const random = randomBytes(24).toString('hex');
    // Prefixed like the real thing, for CLIs that check the shape of a credential.
    const placeholder = this.settings.kind === 'apiKey' ? `sk-ant-api03-sandport-grant-${random}` : `sk-ant-oat01-sandport-grant-${random}`;
    const grant = new Grant(sandboxId, provider, placeholder, this.settings.variable, this.settings.publicUrl, this.settings.budget);
    this.byDigest.set(digest(placeholder), grant);
    this.bySandbox.set(key, grant);
    return { grant, created: true };
  }

  find(provider: string, sandboxId: string): Grant | undefined {
    return this.bySandbox.get(sandboxKey(provider, sandboxId));
  }

  /** The grant a presented credential belongs to, or `undefined`. */
  match(presented: string): Grant | undefined {
    const grant = this.byDigest.get(digest(presented));
    return grant && sameSecret(presented, grant.placeholder) ? grant : undefined;
  }

  revoke(grant: Grant, reason: string): void {
    if (grant.revokedReason) return;
    grant.revoke(reason);
    this.revokedOrder.push(grant);
    while (this.revokedOrder.length > maxRemembered) {
      const old = this.revokedOrder.shift()!;
      this.byDigest.delete(digest(old.placeholder));
      this.bySandbox.delete(sandboxKey(old.provider, old.sandboxId));
    }
  }

  revokeAll(reason: string): void {
    for (const grant of this.bySandbox.values()) this.revoke(grant, reason);
  }
}

function digest(value: string): string {
  return createHash('sha256').update(value).digest('base64');
}

function sandboxKey(provider: string, sandboxId: string): string {
  return `${provider}\u0000${sandboxId}`;
}

export function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
