/**
 * Runs an emulator as its own process and prints `EMULATOR_URL=<url>` once it listens (the line
 * spawn-emulator.ts waits for). It ends on SIGTERM or when its stdin closes (the parent died), and
 * closes the emulator first, so that no sandbox outlives it.
 *   node --import tsx test/emulators/shared/serve-emulator.ts <module.ts> <exportName> [<options JSON>]
 */
import { pathToFileURL } from 'node:url';

/** What an emulator's start function resolves to. */
export interface RunningEmulator {
  readonly url: string;
  close(): Promise<void>;
}

export type StartEmulator = (options?: any) => Promise<RunningEmulator>;

/** The line a served emulator prints first, and that `spawnEmulator` waits for. */
export const urlLinePattern = /^EMULATOR_URL=(\S+)$/m;

/**
 * Starts the emulator, prints its URL line(s) and stops it on SIGTERM or stdin EOF. `variables`
 * adds lines such as `MODAL_SERVER_URL=<url>` for people who run an emulator by hand.
 */
export async function serveEmulator(start: StartEmulator, options: unknown, variables: readonly string[] = []): Promise<void> {
  const emulator = await start(options);
  for (const name of ['EMULATOR_URL', ...variables]) process.stdout.write(`${name}=${emulator.url}\n`);
  let closing = false;
  const stop = async () => {
    if (closing) return;
    closing = true;
    await emulator.close().catch((error: unknown) => console.error('[emulator] close failed:', error));
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.stdin.on('end', () => void stop());
  process.stdin.on('close', () => void stop());
  process.stdin.resume();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [module, exportName, json] = process.argv.slice(2);
  if (!module || !exportName) {
    console.error('usage: serve-emulator.ts <module.ts> <exportName> [<options JSON>]');
    process.exit(2);
  }
  const loaded = (await import(pathToFileURL(module).href)) as Record<string, unknown>;
  const start = loaded[exportName];
  if (typeof start !== 'function') {
    console.error(`${module} has no exported function ${exportName}`);
    process.exit(2);
  }
  await serveEmulator(start as StartEmulator, json === undefined ? undefined : JSON.parse(json));
}
