import { createHash } from 'node:crypto';
import { SandboxInvalidArgumentError } from '../errors/index.js';
import type { Sandbox } from '../spec/sandbox.js';
import type { SessionFile } from './session-store.js';

/**
 * The CLI's project directory name for a cwd: every character other than A-Z a-z 0-9 becomes
 * `-`. Names over 200 characters are cut and suffixed with a hash, like the CLI does; those are
 * found by listing at save time, and restored under the name computed here.
 */
export function projectDirName(cwd: string): string {
  const slug = cwd.replace(/[^A-Za-z0-9]/g, '-');
  if (slug.length <= 200) return slug;
  return `${slug.slice(0, 200)}-${createHash('sha256').update(cwd).digest('hex').slice(0, 8)}`;
}

// Prints, for the project directory holding <id>.jsonl, each session file as
// "<relative path>\n<size>\n<exactly size bytes>": one exec for the whole session, and `head -c`
// keeps the framing right even while the CLI appends to the transcript.
const bundleScript = `
cd "$1/projects" 2>/dev/null || exit 3
for dir in */; do
  [ -f "$dir$2.jsonl" ] || continue
  cd "./$dir" || exit 4
  printf '%s\\n' "$dir"
  find "$2.jsonl" "$2" -type f 2>/dev/null | while IFS= read -r file; do
    size=$(wc -c < "$file")
    printf '%s\\n%s\\n' "$file" "$size"
    head -c "$size" "$file"
  done
  exit 0
done
exit 3`;

/**
 * Reads the transcript of `sessionId` and its side files (subagent transcripts, tool results)
 * from `<configDir>/projects/<dir>/`. Resolves to `undefined` when the CLI has not written it yet.
 */
export async function readSessionFiles(
  sandbox: Sandbox,
  configDir: string,
  sessionId: string,
  signal?: AbortSignal,
): Promise<{ projectDir: string; files: SessionFile[] } | undefined> {
  const process = await sandbox.exec(['/bin/sh', '-c', bundleScript, 'sandport-session', configDir, sessionId], { signal });
  void process.stdin.close().catch(() => undefined);
  void process.stderr.cancel().catch(() => undefined);
  const chunks: Uint8Array[] = [];
  for await (const chunk of process.stdout as unknown as AsyncIterable<Uint8Array>) chunks.push(chunk);
  const { exitCode } = await process.wait();
  if (exitCode === 3) return undefined;
  const bytes = Buffer.concat(chunks);
  let offset = 0;
  const line = () => {
    const end = bytes.indexOf(0x0a, offset);
    if (end < 0) throw new Error('truncated session bundle');
    const text = bytes.subarray(offset, end).toString('utf8');
    offset = end + 1;
    return text;
  };
  const projectDir = line().replace(/\/$/, '');
  const files: SessionFile[] = [];
  while (offset < bytes.length) {
    const path = line();
    const size = Number(line().trim());
    files.push({ path, data: new Uint8Array(bytes.subarray(offset, offset + size)) });
    offset += size;
  }
  return { projectDir, files };
}

/** Writes session files under `<configDir>/projects/<projectDirName(cwd)>/`. */
export async function writeSessionFiles(
  sandbox: Sandbox,
  configDir: string,
  cwd: string,
  files: readonly SessionFile[],
  signal?: AbortSignal,
): Promise<void> {
  const base = `${configDir}/projects/${projectDirName(cwd)}`;
  for (const file of files) {
    checkRelativePath(file.path);
    await sandbox.files.write(`${base}/${file.path}`, file.data, { signal });
  }
}

/** Session file paths are relative and stay inside the project directory. */
export function checkRelativePath(path: string): void {
  if (path === '' || path.startsWith('/') || path.split('/').some((part) => part === '..' || part === '') || path.includes('\0')) {
    throw new SandboxInvalidArgumentError({ message: `Not a relative session file path: ${JSON.stringify(path)}`, argument: 'files.path' });
  }
}
