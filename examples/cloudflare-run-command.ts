/**
 * Run commands in a Cloudflare sandbox through the bridge Worker: exit codes as data, separate
 * stdout and stderr, env per command, and output streamed while the command runs.
 *   CLOUDFLARE_SANDBOX_BRIDGE_URL=https://… CLOUDFLARE_SANDBOX_BRIDGE_TOKEN=… npx tsx examples/cloudflare-run-command.ts
 * The `provider` line picks the provider; for the local one it reads
 *   const provider: SandboxProvider = (await import('sandport/local')).createLocalSandboxProvider();
 */
import type { SandboxProvider } from 'sandport';

const provider: SandboxProvider = (await import('sandport/cloudflare')).createCloudflareSandboxProvider();

await using sandbox = await provider.create({ env: { GREETING: 'hello from the container' } });
const hello = await sandbox.run(['/bin/sh', '-c', 'echo "$GREETING"; echo "a warning" >&2; exit 3']);
console.log(`stdout: ${hello.stdout.trim()}`);
console.log(`stderr: ${hello.stderr.trim()}`);
console.log(`exit ${hello.exitCode}`);

// env per command, and an argv that reaches the program byte for byte (no shell in between).
const echoed = await sandbox.run(['printenv', 'NOTE'], { env: { NOTE: 'it\'s $HOME, "quoted"' } });
console.log(`env: ${echoed.stdout.trim()}`);

// exec: lines arrive while the command runs.
const counting = await sandbox.exec(['/bin/sh', '-c', 'for i in 1 2 3; do echo "tick $i"; sleep 0.2; done']);
const decoder = new TextDecoder();
const ticks: string[] = [];
for await (const chunk of counting.stdout) ticks.push(...decoder.decode(chunk, { stream: true }).split('\n').filter(Boolean));
console.log(`${ticks.join(' / ')} (exit ${(await counting.wait()).exitCode})`);
