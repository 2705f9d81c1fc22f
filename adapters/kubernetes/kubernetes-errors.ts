import {
  SandboxAlreadyExistsError,
  SandboxAuthenticationError,
  SandboxError,
  SandboxInvalidArgumentError,
  SandboxProviderError,
  fromConnectionError,
  fromHttpStatus,
} from '../../src/kit/index.js';

const provider = 'kubernetes';

/** What was being done when the API failed; the subject sharpens the mapped error. */
export interface KubernetesErrorContext {
  operation: string;
  sandboxId?: string | undefined;
  /** The option a 422 answer refers to. */
  argument?: string | undefined;
  /** What a 404 means here: the sandbox (default) or something else, named. */
  notFound?: string | undefined;
}

/** A `metav1.Status` body, as the API server sends it with every failure. */
export interface KubernetesStatusBody {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; kind?: string; causes?: Array<{ reason?: string; message?: string; field?: string }> };
}

/**
 * A failed answer of the API server that the client library did not raise itself: a refused
 * WebSocket upgrade (exec, port-forward), whose Status body the library would have lost.
 */
export class KubernetesApiError extends Error {
  override readonly name = 'KubernetesApiError';
  constructor(
    readonly code: number,
    readonly body: KubernetesStatusBody | undefined,
    readonly operation: string,
  ) {
    super(`${operation}: HTTP ${code}${body?.message ? `: ${body.message}` : ''}`);
  }
}

/** The Status of an error: client-node's `ApiException` carries it as a JSON string in `body`. */
export function kubernetesStatusOf(error: unknown): { code: number; body: KubernetesStatusBody | undefined } | undefined {
  if (error instanceof KubernetesApiError) return { code: error.code, body: error.body };
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, body } = error as { code?: unknown; body?: unknown };
  if (typeof code !== 'number' || code < 100 || code > 599) return undefined;
  return { code, body: parseStatusBody(body) };
}

/** A Status body from a string (JSON) or an object; `undefined` for anything else. */
export function parseStatusBody(body: unknown): KubernetesStatusBody | undefined {
  if (typeof body === 'string') {
    try {
      return parseStatusBody(JSON.parse(body));
    } catch {
      return body.trim() === '' ? undefined : { message: body.trim().slice(0, 500) };
    }
  }
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) return body as KubernetesStatusBody;
  return undefined;
}

/**
 * Maps an API failure to a sandport error, keeping the original as `cause`. Kubernetes says
 * more in the Status `reason` than in the code: `AlreadyExists` is a taken name, `Forbidden` is
 * RBAC or admission (Pod Security, quota: 403 either way, told apart by the message), `Invalid`
 * names the field, `Expired`/`Gone` a stale watch, `TooManyRequests` and `ServiceUnavailable`
 * are retryable; the rest goes through the kit's HTTP table.
 */
export function mapKubernetesError(error: unknown, context: KubernetesErrorContext): SandboxError {
  if (SandboxError.isInstance(error)) return error;
  const { operation, sandboxId } = context;
  const status = kubernetesStatusOf(error);
  if (status) {
    const { code, body } = status;
    const detail = body?.message ?? '';
    if (code === 409 && body?.reason !== 'Conflict')
      return new SandboxAlreadyExistsError({
        message: `Kubernetes refused ${operation}: ${detail || 'it exists already'}`,
        provider,
        cause: error,
      });
    if (code === 403) {
      const admission = /admission|violates PodSecurity|quota|exceeded|denied the request/i.test(detail);
      if (admission)
        return new SandboxProviderError({
          message: `The cluster's admission refused ${operation}: ${detail}`,
          provider,
          statusCode: 403,
          retryable: false,
          cause: error,
        });
      return new SandboxAuthenticationError({
        message: `Kubernetes refused ${operation} (HTTP 403, check the RBAC the README lists)${detail ? `: ${detail}` : ''}`,
        provider,
        cause: error,
      });
    }
    if (code === 422 || (code === 400 && body?.reason === 'BadRequest')) {
      const field = body?.details?.causes?.[0]?.field;
      return new SandboxInvalidArgumentError({
        message: `Kubernetes refused ${operation}${field ? ` (${field})` : ''}: ${detail}`,
        argument: context.argument ?? operation,
        provider,
        cause: error,
      });
    }
    if (code === 404 && context.notFound !== undefined)
      return new SandboxProviderError({
        message: `${context.notFound} not found during ${operation}: ${detail}`,
        provider,
        statusCode: 404,
        cause: error,
      });
    return fromHttpStatus(code, { provider, operation, sandboxId, argument: context.argument, detail, cause: error });
  }
  const connection = fromConnectionError(error, { provider, operation, sandboxId, cause: error });
  if (connection) return connection;
  const message = error instanceof Error ? error.message : String(error);
  return new SandboxProviderError({ message: `Kubernetes failed during ${operation}: ${message}`, provider, cause: error });
}
