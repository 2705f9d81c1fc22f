/**
 * Stream a command's output as it runs, and talk to a command over stdin (Daytona's sessions
 * with asynchronous commands and followed logs: the adapter reads them as bytes, stdout and stderr
 * apart, and closing stdin ends the command's input).
 *   DAYTONA_API_KEY=… npx tsx examples/daytona-streamed-logs.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/daytona')).createDaytonaSandboxProvider();

await using sandbox = await provider.create();

// Each line arrives while the command is still running.
const ticking = await sandbox.exec(['/bin/sh', '-c', 'for i in 1 2 3; do echo "tick $i"; sleep 0.2; done; echo done >&2']);
const decoder = new TextDecoder();
const seen: string[] = [];
for await (const chunk of ticking.stdout) seen.push(...decoder.decode(chunk).trim().split('\n'));
const stderr = await new Response(ticking.stderr).text();
console.log(`streamed: ${seen.join(' / ')}; stderr: ${stderr.trim()}; exit ${(await ticking.wait()).exitCode}`);

// A conversation with a line-by-line program, then end of input.
const upper = await sandbox.exec([
  'python3',
  '-u',
  '-c',
  'import sys\nfor line in sys.stdin: print(line.strip().upper(), flush=True)\nprint("bye")',
]);
const writer = upper.stdin.getWriter();
const reader = upper.stdout.getReader();
let pending = '';
// Output comes in chunks, not lines: read until a whole line is there.
const nextLine = async (): Promise<string> => {
  while (!pending.includes('\n')) {
    const { value, done } = await reader.read();
    if (done) return pending;
    pending += decoder.decode(value, { stream: true });
  }
  const at = pending.indexOf('\n');
  const line = pending.slice(0, at);
  pending = pending.slice(at + 1);
  return line;
};
for (const word of ['hello', 'daytona']) {
  await writer.write(new TextEncoder().encode(`${word}\n`));
  console.log(`echoed: ${(await nextLine()).trim()}`);
}
await writer.close();
console.log(`after EOF: ${(await nextLine()).trim()} (exit ${(await upper.wait()).exitCode})`);
