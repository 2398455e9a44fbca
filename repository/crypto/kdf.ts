import { createHash, randomBytes, scrypt, type ScryptOptions } from 'node:crypto';
import { UsageError } from '../errors.ts';

/** scrypt parameters, stored in each key file so a key opens on any machine. */
export interface KdfParams {
  readonly algorithm: 'scrypt';
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  /**
   * Independent scrypt runs whose outputs are hashed together (deriveKey), two at a time: the
   * same work for a password guesser, half the wait on two cores. Key files from before lanes
   * have none, which is 1: plain scrypt.
   */
  readonly lanes: number;
}

function scryptAsync(password: Buffer, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, 32, options, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

/** Lanes run at once: each holds 128·N·r bytes while it runs. */
const LANES_AT_ONCE = 2;
export const KDF_MAX_LANES = 64;

function laneSalt(salt: Buffer, lane: number): Buffer {
  const suffix = Buffer.alloc(4);
  suffix.writeUInt32BE(lane);
  return Buffer.concat([salt, suffix]);
}

export async function deriveKey(password: Buffer, params: KdfParams): Promise<Buffer> {
  const { N, r, p, lanes } = params;
  const options = { N, r, p, maxmem: 256 * N * r + (16 << 20) };
  if (lanes === 1) return scryptAsync(password, params.salt, options);
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > KDF_MAX_LANES) throw new RangeError(`lanes must be an integer from 1 to ${KDF_MAX_LANES}, not ${lanes}`);
  const outputs: Buffer[] = [];
  let next = 0;
  const runLanes = async (): Promise<void> => {
    while (next < lanes) {
      const lane = next++;
      outputs[lane] = await scryptAsync(password, laneSalt(params.salt, lane), options);
    }
  };
  await Promise.all(Array.from({ length: Math.min(LANES_AT_ONCE, lanes) }, runLanes));
  return createHash('sha256').update(Buffer.concat(outputs)).digest();
}

/**
 * scrypt needs 128·N·r bytes per lane while it runs, on every command that opens the
 * repository. N is fixed at 2^15 (32 MiB; two lanes at once hold 64 MiB): a time-only
 * calibration had chosen N = 2^18 on a fast machine, 256 MiB on every command, more than a node
 * agent's memory limit may allow. The time budget goes into lanes instead, which repeat the work
 * without more memory and, unlike p, run in parallel.
 */
export const KDF_MAX_N = 1 << 15;

/** How new key files derive their keys. */
export interface KdfSettings {
  /** Time one core may spend (default 500 ms): calibrateKdf picks the lanes to fill it. */
  readonly targetMs?: number | undefined;
  /**
   * A fixed N (a power of two >= 1024) and one lane instead: tests and benchmarks skip the
   * deliberate slowness with it. Only ever given explicitly, so nothing inherited can weaken a key.
   */
  readonly fixedN?: number | undefined;
}

/**
 * Picks as many lanes of N = KDF_MAX_N (r = 8, p = 1) as one core runs in about `targetMs`
 * here, in pairs; on two cores the derivation then waits about half that. `fixedN` fixes N
 * instead; the parameters are stored in the key file either way.
 */
export async function calibrateKdf(settings: KdfSettings = {}): Promise<KdfParams> {
  const salt = randomBytes(32);
  const fixed = settings.fixedN;
  if (fixed !== undefined) {
    if (!Number.isInteger(fixed) || fixed < 1024 || (fixed & (fixed - 1)) !== 0) throw new UsageError(`The scrypt N ${fixed} is not a power of two of at least 1024.`);
    return { algorithm: 'scrypt', N: fixed, r: 8, p: 1, lanes: 1, salt };
  }
  const targetMs = settings.targetMs ?? 500;
  const probeN = 1 << 14;
  const started = performance.now();
  await scryptAsync(Buffer.from('calibration'), salt, { N: probeN, r: 8, p: 1 });
  const laneMs = (Math.max(performance.now() - started, 1) / probeN) * KDF_MAX_N;
  const pairs = Math.max(1, Math.min(KDF_MAX_LANES / LANES_AT_ONCE, Math.round(targetMs / (laneMs * LANES_AT_ONCE))));
  return { algorithm: 'scrypt', N: KDF_MAX_N, r: 8, p: 1, lanes: pairs * LANES_AT_ONCE, salt };
}
