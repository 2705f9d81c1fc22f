/**
 * The small pure rules of the bridge that several routes share: sandbox and session id formats,
 * the `/workspace` path rule, the argv-to-`bash -c` quoting, base32 ids and the SSE framing.
 * Written from the behaviour cloudflare-bridge.md (§1.1-§1.3) records.
 */
import { randomBytes } from 'node:crypto';

/** The bridge versions the emulator can be. */
export type BridgeVersion = '0.12' | '0.13';

/** `^[a-z2-7]{1,128}$`: anything else under `/v1/sandbox/` is a 400. */
export function isSandboxId(id: string): boolean {
  return /^[a-z2-7]{1,128}$/.test(id);
}

/** `Session-Id`: `^[a-zA-Z0-9._-]{1,128}$` and no `..`. */
export function isSessionId(id: string): boolean {
  return /^[a-zA-Z0-9._-]{1,128}$/.test(id) && !id.includes('..');
}

/** RFC 4648 base32, lowercase, unpadded. */
export function base32(bytes: Uint8Array): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = ((buffer & 0xff) << 8) | byte;
    bits += 8;
    for (; bits >= 5; bits -= 5) out += alphabet[(buffer >>> (bits - 5)) & 31];
  }
  if (bits > 0) out += alphabet[(buffer << (5 - bits)) & 31];
  return out;
}

/** What `POST /v1/sandbox` answers: 16 random bytes in base32, 26 characters. */
export function newSandboxId(): string {
  return base32(randomBytes(16));
}

/**
 * `.` and `..` resolved, a relative path taken from `/workspace`; the result when it is
 * `/workspace` or below, otherwise undefined (the caller answers 403).
 */
export function resolveWorkspacePath(path: string): string | undefined {
  const absolute = path.startsWith('/') ? path : `/workspace/${path}`;
  const parts: string[] = [];
  for (const segment of absolute.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') parts.pop();
    else parts.push(segment);
  }
  const resolved = `/${parts.join('/')}`;
  return resolved === '/workspace' || resolved.startsWith('/workspace/') ? resolved : undefined;
}

/**
 * One argv token as the bridge puts it in its `bash -c` string: unchanged when it holds only
 * `[A-Za-z0-9@%+=:,./-]`, otherwise ANSI-C quoted (`$'…'`) with backslash, single quote, newline,
 * carriage return and tab escaped and every other character literal. An empty token is `$''`.
 */
export function shellQuote(token: string): string {
  if (/^[A-Za-z0-9@%+=:,./-]+$/.test(token)) return token;
  const escaped = token
    .replaceAll('\\', '\\\\')
    .replaceAll("'", "\\'")
    .replaceAll('\n', '\\n')
    .replaceAll('\r', '\\r')
    .replaceAll('\t', '\\t');
  return `$'${escaped}'`;
}

/** The command string of a 0.12 exec. */
export function commandLine(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/** One SSE event: `event:` when named, then one `data:` line per line of the payload, then a blank line. */
export function sseEvent(name: string | undefined, data: string): string {
  const lines = data.split('\n').map((line) => `data: ${line}`);
  return `${name === undefined ? '' : `event: ${name}\n`}${lines.join('\n')}\n\n`;
}

/** The token in `Authorization`, with the prefix matched as the route family does (`/v1/sandbox*`: any case). */
export function bearerToken(header: string | undefined, caseInsensitive: boolean): string {
  const value = header ?? '';
  const prefix = value.slice(0, 7);
  const matches = caseInsensitive ? prefix.toLowerCase() === 'bearer ' : prefix === 'Bearer ';
  return matches ? value.slice(7) : '';
}
