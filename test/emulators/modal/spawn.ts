import { join } from 'node:path';
import { spawnEmulator, type EmulatorProcess } from '../shared/spawn-emulator.js';
import type { ModalEmulatorOptions } from './modal-emulator.js';

/** The Modal emulator in a child process (see ../shared/spawn-emulator.ts). */
export type ModalEmulatorProcess = EmulatorProcess;

/** @param options the emulator's options that are plain data (they cross to the child as JSON). */
export function spawnModalEmulator(
  options?: Pick<ModalEmulatorOptions, 'maxReadFileBytes' | 'testInternet'>,
): Promise<ModalEmulatorProcess> {
  return spawnEmulator({
    module: join(import.meta.dirname, 'modal-emulator.ts'),
    exportName: 'startModalEmulator',
    label: 'the Modal emulator',
    options,
  });
}
