/**
 * Unit conversions for providers whose API counts in coarser units than the contract (E2B and
 * Modal take seconds, Daytona minutes and GiB). A value that does not divide exactly is rounded UP
 * (a lifetime is never shortened, a memory limit never lowered below the ask) and the rounding is
 * reported as a warning, never done silently.
 */
import type { SandboxWarning } from '../spec/events.js';

/** A converted value plus the warning to return when it had to be rounded. */
export interface Converted {
  readonly value: number;
  readonly warning: SandboxWarning | undefined;
}

function roundUp(amount: number, unitSize: number, setting: string, from: string, to: string): Converted {
  const value = Math.ceil(amount / unitSize);
  if (value * unitSize === amount) return { value, warning: undefined };
  return {
    value,
    warning: {
      type: 'unsupported-setting',
      setting,
      details: `the provider counts ${setting} in ${to}: ${amount} ${from} was rounded up to ${value} ${to}`,
    },
  };
}

/** Milliseconds to whole seconds, rounded up. */
export function wholeSeconds(milliseconds: number, setting: string): Converted {
  return roundUp(milliseconds, 1000, setting, 'ms', 's');
}

/** Milliseconds to whole minutes, rounded up. */
export function wholeMinutes(milliseconds: number, setting: string): Converted {
  return roundUp(milliseconds, 60_000, setting, 'ms', 'min');
}

/** Mebibytes to whole gibibytes, rounded up. */
export function wholeGiB(mebibytes: number, setting: string): Converted {
  return roundUp(mebibytes, 1024, setting, 'MiB', 'GiB');
}

/** Collects the warnings of several conversions, dropping the empty ones. */
export function warningsOf(...converted: ReadonlyArray<Converted | undefined>): SandboxWarning[] {
  return converted.flatMap((entry) => (entry?.warning ? [entry.warning] : []));
}
