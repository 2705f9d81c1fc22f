export {
  emulatorRoutePrefix,
  startCloudflareBridgeEmulator,
  type CloudflareBridgeEmulator,
  type CloudflareBridgeEmulatorOptions,
} from './cloudflare-emulator.js';
export { spawnCloudflareBridgeEmulator, type CloudflareBridgeEmulatorProcess } from './spawn.js';
export { installLocalhostResolution } from '../e2b/e2b-tunnels.js';
export { sdkVersions } from './cloudflare-openapi.js';
