import { afterAll } from 'vitest';
import { LocalStorage } from '../../repository/storage/local.ts';
import { tempDir } from '../support/cli.ts';
import { storageConformance } from './conformance.ts';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => { await Promise.all(cleanups.map((c) => c())); });

storageConformance('local directory', {
  fresh: async () => {
    const { dir, cleanup } = await tempDir('arca-storage-local-');
    cleanups.push(cleanup);
    return new LocalStorage(dir);
  },
  badCredentials: 'a local directory has no credentials; permissions are the file system\'s (a write to a read-only directory is a StorageError)',
});
