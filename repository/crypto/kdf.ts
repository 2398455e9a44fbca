import { randomBytes, scrypt, type ScryptOptions } from 'node:crypto';

/** scrypt parameters, stored in each key file so a key opens on any machine. */
export interface KdfParams {
  readonly algorithm: 'scrypt';
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
}

function scryptAsync(password: Buffer, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, 32, options, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

export function deriveKey(password: Buffer, params: KdfParams): Promise<Buffer> {
  const { N, r, p } = params;
  return scryptAsync(password, params.salt, { N, r, p, maxmem: 256 * N * r + (16 << 20) });
}

/**
 * scrypt needs 128·N·r bytes while it runs, on every command that opens the repository. Capped
 * at 64 MiB (N = 2^16, r = 8): on a fast machine a time-only calibration chose N = 2^18, and
 * every command then needed 256 MiB, more than a node agent's memory limit may allow and several
 * times what the backup itself uses. Past the cap, the time budget goes into p, which repeats
 * the work without more memory.
 */
export const KDF_MAX_N = 1 << 16;

/**
 * Picks the largest power-of-two N (r=8, N from 2^15 to KDF_MAX_N) and then the p that take
 * about `targetMs` here. ARCA_KDF_N fixes N instead (a power of two >= 1024, p = 1): tests and
 * benchmarks use it to skip the deliberate slowness; the parameters are stored in the key file
 * either way.
 */
export async function calibrateKdf(targetMs = 500): Promise<KdfParams> {
  const salt = randomBytes(32);
  const fixed = Number(process.env.ARCA_KDF_N ?? '');
  if (Number.isInteger(fixed) && fixed >= 1024 && (fixed & (fixed - 1)) === 0) {
    return { algorithm: 'scrypt', N: fixed, r: 8, p: 1, salt };
  }
  const probeN = 1 << 14;
  const started = performance.now();
  await scryptAsync(Buffer.from('calibration'), salt, { N: probeN, r: 8, p: 1 });
  const msPerN = Math.max(performance.now() - started, 1) / probeN;
  let N = 1 << 15;
  while (N < KDF_MAX_N && msPerN * N * 2 <= targetMs) N *= 2;
  const p = Math.max(1, Math.min(16, Math.floor(targetMs / (msPerN * N))));
  return { algorithm: 'scrypt', N, r: 8, p, salt };
}
