import { Blake3Hasher } from '@napi-rs/blake-hash';
import { describe, expect, it } from 'vitest';
import { blobId, keyedHash } from '../../repository/crypto/master-key.ts';

const fresh = (key: Buffer, data: Buffer): Buffer => Blake3Hasher.newKeyed(key).update(data).digestBuffer();

describe('keyedHash', () => {
  it('gives what a new keyed hasher gives, call after call, for each key', () => {
    const keyA = Buffer.alloc(32, 1);
    const keyB = Buffer.alloc(32, 2);
    const inputs = [Buffer.from('first'), Buffer.alloc(0), Buffer.alloc(100_000, 0xab), Buffer.from('first')];
    for (const data of inputs) {
      expect(keyedHash(keyA, data)).toEqual(fresh(keyA, data));
      expect(keyedHash(keyB, data)).toEqual(fresh(keyB, data));
    }
    expect(keyedHash(keyA, inputs[0] as Buffer)).not.toEqual(keyedHash(keyB, inputs[0] as Buffer));
    expect(blobId(keyA, Buffer.from('x'))).toEqual(fresh(keyA, Buffer.from('x')));
  });
});
