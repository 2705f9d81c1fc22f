export { startDaytonaEmulator, type DaytonaEmulator, type DaytonaEmulatorOptions } from './daytona-emulator.js';
export { spawnDaytonaEmulator, type DaytonaEmulatorProcess } from './spawn.js';
export { previewTokenHeader } from './daytona-preview.js';
export { installLocalhostResolution } from '../shared/localhost-resolution.js';
