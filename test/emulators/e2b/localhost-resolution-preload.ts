/**
 * `node --import tsx --import <this file> program.ts`: lets a program that is not the emulator's
 * own process (an example run against it) reach the emulator's tunnel host names, which end in
 * `.localhost` (see e2b-tunnels.ts). Against the real E2B nothing of the kind is needed.
 */
import { installLocalhostResolution } from './e2b-tunnels.js';

installLocalhostResolution();
