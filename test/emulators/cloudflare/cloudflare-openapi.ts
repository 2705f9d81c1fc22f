/**
 * The OpenAPI 3.1 documents the emulator serves at `GET /v1/openapi.json`, one per bridge
 * version, written here from the routes the emulator serves (never copied from the SDK). A client
 * tells the versions apart by `paths`: 0.12 has `/v1/sandbox/{id}/exec`, 0.13 has
 * `/v1/sandbox/{id}/processes` instead; `info.version` names the SDK release emulated.
 */
import type { BridgeVersion } from './cloudflare-wire.js';

/** The SDK release each emulated version stands for. */
export const sdkVersions: Record<BridgeVersion, string> = { '0.12': '0.12.10', '0.13': '0.13.0-next.751.1' };

type Operation = { summary: string; responses: Record<string, string>; body?: string; stream?: boolean };

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

const shared: Record<string, Record<string, Operation>> = {
  '/v1/sandbox': { post: { summary: 'Make a new sandbox id (starts nothing)', responses: { '200': 'The id', '401': 'Bad token' } } },
  '/v1/sandbox/{id}': {
    delete: { summary: 'Destroy the container the id maps to, if any', responses: { '204': 'Done, or nothing to do' } },
  },
  '/v1/sandbox/{id}/file/{path}': {
    get: {
      summary: 'Read a file under /workspace (the path has no leading slash)',
      responses: { '200': 'The bytes', '403': 'Outside /workspace', '404': 'Missing file (documented; see the emulator README)' },
      stream: true,
    },
    put: {
      summary: 'Write a file under /workspace, parents made, at most 32 MiB',
      body: 'application/octet-stream',
      responses: { '200': 'Written', '403': 'Outside /workspace', '413': 'Over 32 MiB', '502': 'Write failed' },
    },
  },
  '/v1/sandbox/{id}/persist': {
    post: {
      summary: 'A tar of /workspace (query excludes=a,b)',
      responses: { '200': 'The tar', '400': 'An exclude with ..', '502': 'tar failed' },
      stream: true,
    },
  },
  '/v1/sandbox/{id}/hydrate': {
    post: {
      summary: 'Extract a tar over /workspace (1 B to 32 MiB)',
      body: 'application/octet-stream',
      responses: { '200': 'Extracted', '400': 'Empty or too large', '502': 'Not a tar' },
    },
  },
  '/v1/sandbox/{id}/tunnel/{port}': {
    post: {
      summary: 'Open (or reuse) a quick tunnel to a port 1024-65535 other than 3000',
      body: 'application/json',
      responses: { '200': 'The tunnel record', '400': 'Invalid port or name', '502': 'Tunnel failed' },
    },
    delete: { summary: 'Close the tunnel of a port', responses: { '204': 'Closed, or none was open' } },
  },
  '/v1/sandbox/{id}/running': {
    get: { summary: 'Whether the container answers (starts one if none runs)', responses: { '200': '{ running }' } },
  },
  '/v1/sandbox/{id}/mount': {
    post: { summary: 'Mount a bucket (not emulated: always 502)', body: 'application/json', responses: { '502': 'Mount failed' } },
  },
  '/v1/sandbox/{id}/unmount': {
    post: { summary: 'Unmount a bucket (not emulated: always 502)', body: 'application/json', responses: { '502': 'Unmount failed' } },
  },
  '/v1/pool/stats': { get: { summary: 'Warm pool counters', responses: { '200': 'Counters' } } },
  '/v1/pool/prime': { post: { summary: 'Prime the warm pool', responses: { '200': '{ ok }' } } },
  '/v1/pool/shutdown-prewarmed': { post: { summary: 'Stop pre-warmed containers', responses: { '200': '{ ok }' } } },
  '/health': { get: { summary: 'Liveness of the Worker (no auth)', responses: { '200': '{ ok }' } } },
};

const only012: Record<string, Record<string, Operation>> = {
  '/v1/sandbox/{id}/exec': {
    post: {
      summary: 'Run argv through bash -c; output as server-sent events (stdout, stderr, exit, error)',
      body: 'application/json',
      responses: { '200': 'The event stream', '400': 'Bad JSON or empty argv', '403': 'cwd outside /workspace' },
      stream: true,
    },
  },
  '/v1/sandbox/{id}/session': {
    post: {
      summary: 'Make a session (cwd, env) for Session-Id',
      body: 'application/json',
      responses: { '200': '{ id }', '502': 'Session error' },
    },
  },
  '/v1/sandbox/{id}/session/{sid}': {
    delete: { summary: 'Delete a session', responses: { '200': '{ success, sessionId }', '502': 'Unknown session' } },
  },
  '/v1/sandbox/{id}/pty': {
    get: { summary: 'Terminal over WebSocket (not emulated)', responses: { '101': 'Upgraded', '400': 'Not a WebSocket request' } },
  },
};

const only013: Record<string, Record<string, Operation>> = {
  '/v1/sandbox/{id}/processes': {
    post: {
      summary: 'Start argv as is, with env, cwd and a timeout',
      body: 'application/json',
      responses: { '200': 'The process status', '400': 'Bad request', '403': 'cwd outside /workspace', '502': 'Launch failed' },
    },
    get: { summary: 'Statuses of the processes of this container', responses: { '200': 'Statuses' } },
  },
  '/v1/sandbox/{id}/processes/{processId}': {
    get: { summary: 'One process status', responses: { '200': 'The status', '404': 'No such process' } },
  },
  '/v1/sandbox/{id}/processes/{processId}/logs': {
    get: {
      summary: 'Output as server-sent events of base64 bytes with cursors (query replay, follow, since)',
      responses: { '200': 'The event stream', '404': 'No such process' },
      stream: true,
    },
  },
  '/v1/sandbox/{id}/processes/{processId}/kill': {
    post: {
      summary: 'Send a signal (1-64, default 15)',
      body: 'application/json',
      responses: { '204': 'Sent', '400': 'Bad signal', '404': 'No such process' },
    },
  },
  '/v1/sandbox/{id}/terminals': {
    post: { summary: 'Terminals (not emulated)', body: 'application/json', responses: { '200': 'The terminal' } },
  },
};

function parametersOf(path: string) {
  return [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
}

function operationOf(path: string, method: string, operation: Operation) {
  const responses: Record<string, unknown> = {};
  for (const [status, description] of Object.entries(operation.responses)) {
    responses[status] = Number(status) >= 400 ? errorResponse(description) : { description };
  }
  const streamed = operation.stream
    ? path.endsWith('/exec') || path.endsWith('/logs')
      ? 'text/event-stream'
      : 'application/octet-stream'
    : undefined;
  if (streamed && responses['200'])
    responses['200'] = { description: operation.responses['200'], content: { [streamed]: { schema: { type: 'string' } } } };
  return {
    operationId: `${method}${path.replace(/\{(\w+)\}/g, 'By_$1').replace(/[^A-Za-z0-9]+(.)?/g, (_, next: string | undefined) => (next ?? '').toUpperCase())}`,
    summary: operation.summary,
    parameters: parametersOf(path),
    ...(operation.body && {
      requestBody: {
        content: {
          [operation.body]: { schema: operation.body === 'application/json' ? { type: 'object' } : { type: 'string', format: 'binary' } },
        },
      },
    }),
    responses,
  };
}

/** The document of one version. */
export function openApiDocument(version: BridgeVersion): Record<string, unknown> {
  const table = { ...shared, ...(version === '0.12' ? only012 : only013) };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [path, methods] of Object.entries(table)) {
    paths[path] = {};
    for (const [method, operation] of Object.entries(methods)) paths[path][method] = operationOf(path, method, operation);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Cloudflare Sandbox bridge (sandport emulator)',
      version: sdkVersions[version],
      description: `The HTTP API of the @cloudflare/sandbox ${sdkVersions[version]} bridge Worker as sandport's emulator serves it.`,
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: { type: 'object', required: ['error', 'code'], properties: { error: { type: 'string' }, code: { type: 'string' } } },
      },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

/** A minimal HTML page of the same document (`/v1/openapi.html`, `/v1/openapi`). */
export function openApiHtml(version: BridgeVersion): string {
  const document = openApiDocument(version);
  const rows = Object.entries(document.paths as Record<string, Record<string, { summary: string }>>)
    .flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => `<tr><td>${method.toUpperCase()}</td><td>${path}</td><td>${op.summary}</td></tr>`),
    )
    .join('\n');
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>Bridge API ${sdkVersions[version]}</title></head>\n<body><h1>Bridge API ${sdkVersions[version]}</h1><table>\n${rows}\n</table></body></html>\n`;
}
