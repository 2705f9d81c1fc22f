/**
 * `node --import tsx --import <this file> program.ts`: lets a program that is not the emulator's
 * own process (an example run against it) reach the emulator's edge, whose host names end in
 * `.localhost` (see vercel-edge.ts). Against the real Vercel nothing of the kind is needed.
 */
import { installLocalhostResolution } from '../shared/localhost-resolution.js';

installLocalhostResolution();
