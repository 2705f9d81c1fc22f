/**
 * Runs the Modal emulator as its own process and prints `MODAL_SERVER_URL=<url>` once it listens
 * (after the `EMULATOR_URL=` line every served emulator prints). Ends on SIGTERM or when its
 * stdin closes.
 *   node --import tsx test/emulators/modal/serve.ts
 */
import { serveEmulator } from '../shared/serve-emulator.js';
import { startModalEmulator } from './modal-emulator.js';

await serveEmulator(startModalEmulator, undefined, ['MODAL_SERVER_URL']);
