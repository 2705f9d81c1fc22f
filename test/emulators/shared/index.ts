/** The provider-neutral parts of the emulators; see README.md. */
export { spawnEmulator, type EmulatorProcess, type SpawnEmulatorOptions } from './spawn-emulator.js';
export { serveEmulator, type RunningEmulator, type StartEmulator } from './serve-emulator.js';
export { OutputPipe, defaultPipeHighWaterMark } from './output-pipe.js';
export { ExecRecord, type ExecRecordInit, type ExitInfo } from './exec-record.js';
export {
  SandboxRegistry,
  type ListOptions,
  type RegisterOptions,
  type RegisteredSandbox,
  type RegistryBackend,
  type SandboxEnd,
  type SandboxRegistryOptions,
} from './sandbox-registry.js';
export {
  EmulatorFiles,
  FileToolError,
  classifyFileFailure,
  permissionDigits,
  permissionString,
  type FileEntry,
  type FileFault,
  type NotDirectorySubject,
  type OpenWrite,
} from './file-tools.js';
export { randomToken } from './ids.js';
export { installLocalhostResolution } from './localhost-resolution.js';
