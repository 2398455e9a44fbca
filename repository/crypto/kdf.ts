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
 * Picks the largest power-of-two N (r=8, p=1, N >= 2^15) that takes about `targetMs` here.
 * ARCA_KDF_N fixes N instead (a power of two >= 1024): tests and benchmarks use it to skip the
 * deliberate slowness; the chosen N is stored in the key file either way.
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
  const probeMs = Math.max(performance.now() - started, 1);
  let N = 1 << 15;
  while (N < 1 << 20 && (probeMs * (N * 2)) / probeN <= targetMs) N *= 2;
  return { algorithm: 'scrypt', N, r: 8, p: 1, salt };
}
