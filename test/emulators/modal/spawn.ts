import { join } from 'node:path';
import { spawnEmulator, type EmulatorProcess } from '../shared/spawn-emulator.js';

/** The Modal emulator in a child process (see ../shared/spawn-emulator.ts). */
export type ModalEmulatorProcess = EmulatorProcess;

export function spawnModalEmulator(): Promise<ModalEmulatorProcess> {
  return spawnEmulator({
    module: join(import.meta.dirname, 'modal-emulator.ts'),
    exportName: 'startModalEmulator',
    label: 'the Modal emulator',
  });
}
