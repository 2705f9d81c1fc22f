export { startVercelEmulator, emulatorCredentials, type VercelEmulator, type VercelEmulatorOptions } from './vercel-emulator.js';
export { createVercelFetch, toEdgeUrl, vercelApiBase, type VercelFetchTargets } from './vercel-fetch.js';
export { defaultRootfsBuilt, defaultRootfs } from './vercel-images.js';
export { installLocalhostResolution } from '../shared/localhost-resolution.js';
