export { startE2bEmulator, type E2bEmulator, type E2bEmulatorOptions } from './e2b-emulator.js';
export { installLocalhostResolution } from './e2b-tunnels.js';
