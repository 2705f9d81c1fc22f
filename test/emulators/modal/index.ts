export { startModalEmulator, type ModalEmulator, type ModalEmulatorOptions } from './modal-emulator.js';
