/**
 * Runs the Modal emulator as its own process and prints `MODAL_SERVER_URL=<url>` once it listens,
 * so that a test measures the client side alone (as against the real Modal). Ends on SIGTERM or
 * when its stdin closes (the parent died).
 *   node --import tsx test/emulators/modal/serve.ts
 */
import { startModalEmulator } from './modal-emulator.js';

const emulator = await startModalEmulator();
process.stdout.write(`MODAL_SERVER_URL=${emulator.url}\n`);
let closing = false;
const stop = async () => {
  if (closing) return;
  closing = true;
  await emulator.close().catch(() => undefined);
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.stdin.on('end', () => void stop());
process.stdin.on('close', () => void stop());
process.stdin.resume();
