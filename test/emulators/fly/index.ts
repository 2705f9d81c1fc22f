export { startFlyEmulator, type FlyEmulator, type FlyEmulatorOptions } from './fly-emulator.js';
export { spawnFlyEmulator, type FlyEmulatorProcess } from './spawn.js';
export { installLocalhostResolution } from '../shared/localhost-resolution.js';
