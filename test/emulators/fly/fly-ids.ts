/** Ids in the shapes Fly uses: machines (14 hex), instances (ULIDs), volumes, lease nonces, names. */
import { randomBytes } from 'node:crypto';

const crockford = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
let lastUlidTime = 0;
let lastUlidRandom = 0n;

/** `n` random hex digits. */
export function randomHex(digits: number): string {
  return randomBytes(Math.ceil(digits / 2))
    .toString('hex')
    .slice(0, digits);
}

/** A machine id: 14 lowercase hex digits, as `1857156b526dd8`. */
export function newMachineId(): string {
  return randomHex(14);
}

/** A volume id: `vol_` and 16 lowercase letters and digits, as `vol_340088w293z35lp4`. */
export function newVolumeId(): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';
  return `vol_${[...randomBytes(16)].map((byte) => alphabet[byte % alphabet.length]).join('')}`;
}

/** A lease nonce: 12 hex digits, as `5c35f65c9f95`. */
export function newLeaseNonce(): string {
  return randomHex(12);
}

/**
 * A ULID (26 Crockford base-32 characters, time first), as Fly's `instance_id`: later instances
 * sort after earlier ones, also within one millisecond.
 */
export function newInstanceId(now = Date.now()): string {
  let random: bigint;
  if (now <= lastUlidTime) {
    now = lastUlidTime;
    random = lastUlidRandom + 1n;
  } else {
    random = BigInt(`0x${randomHex(20)}`);
  }
  lastUlidTime = now;
  lastUlidRandom = random;
  let time = '';
  let t = now;
  for (let index = 0; index < 10; index++) {
    time = crockford[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  let tail = '';
  let r = random & ((1n << 80n) - 1n);
  for (let index = 0; index < 16; index++) {
    tail = crockford[Number(r % 32n)]! + tail;
    r /= 32n;
  }
  return time + tail;
}

const adjectives = ['aged', 'bold', 'calm', 'dry', 'frosty', 'green', 'late', 'quiet', 'red', 'round', 'sparkling', 'young'];
const nouns = ['thunder', 'river', 'sun', 'leaf', 'meadow', 'moon', 'pond', 'snow', 'star', 'wave', 'wind', 'field'];

/** A generated machine name, as `aged-thunder-7371`. */
export function newMachineName(): string {
  const [a, n, d] = [...randomBytes(4)];
  const digits = String(((d! << 8) | randomBytes(1)[0]!) % 10000).padStart(4, '0');
  return `${adjectives[a! % adjectives.length]}-${nouns[n! % nouns.length]}-${digits}`;
}

/** A 6PN-shaped private address for a machine. */
export function newPrivateIp(): string {
  return `fdaa:0:e1:a7b:${randomHex(3)}:${randomHex(4)}:${randomHex(4)}:2`;
}

/** ISO time without fractions, as Fly's `created_at`. */
export function flyTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
