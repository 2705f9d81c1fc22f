/**
 * Kubernetes `Status` bodies: every error the emulator answers is one, with the reason and code
 * the real API server uses for the same failure, so a client's error mapping (client-node's
 * `ApiException.body`, kubectl's messages) meets what a cluster sends.
 */

/** The `reason` words of `metav1.Status` the emulator uses. */
export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'Gone'
  | 'Expired'
  | 'MethodNotAllowed'
  | 'UnsupportedMediaType'
  | 'InternalError'
  | 'NotAcceptable'
  | 'RequestEntityTooLarge';

const codes: Record<StatusReason, number> = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  NotAcceptable: 406,
  AlreadyExists: 409,
  Conflict: 409,
  Gone: 410,
  Expired: 410,
  RequestEntityTooLarge: 413,
  UnsupportedMediaType: 415,
  Invalid: 422,
  InternalError: 500,
};

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: Array<{ reason?: string; message?: string; field?: string }>;
}

/** An error a handler throws; the router answers it as a `Status` with `code`. */
export class KubeStatusError extends Error {
  readonly code: number;
  constructor(
    readonly reason: StatusReason,
    message: string,
    readonly details?: StatusDetails,
    code?: number,
  ) {
    super(message);
    this.code = code ?? codes[reason];
  }

  /** The `Status` object the API server sends for it. */
  toStatus(): Record<string, unknown> {
    return statusBody(this.reason, this.message, this.code, this.details);
  }
}

export function statusBody(reason: StatusReason, message: string, code = codes[reason], details?: StatusDetails): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

/** `pods "x" not found`, as the API server words it. */
export function notFound(resource: string, name: string, kind: string, group = ''): KubeStatusError {
  const qualified = group ? `${resource}.${group}` : resource;
  return new KubeStatusError('NotFound', `${qualified} "${name}" not found`, { name, kind: resource, ...(group ? { group } : {}) });
}

export function alreadyExists(resource: string, name: string, group = ''): KubeStatusError {
  const qualified = group ? `${resource}.${group}` : resource;
  return new KubeStatusError('AlreadyExists', `${qualified} "${name}" already exists`, {
    name,
    kind: resource,
    ...(group ? { group } : {}),
  });
}

/** A 422 `Invalid` naming the object and each offending field. */
export function invalid(kind: string, name: string, causes: Array<{ field: string; message: string }>, group = ''): KubeStatusError {
  const text = causes.map((cause) => `${cause.field}: ${cause.message}`).join(', ');
  return new KubeStatusError('Invalid', `${kind} "${name}" is invalid: ${text}`, {
    name,
    kind,
    ...(group ? { group } : {}),
    causes: causes.map((cause) => ({ reason: 'FieldValueInvalid', message: cause.message, field: cause.field })),
  });
}
