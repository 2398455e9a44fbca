import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/kube/**'],
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
      {
        // Against a real kube-apiserver and etcd, one pair per run, started only when a kube test is selected.
        extends: true,
        test: {
          name: 'kube',
          include: ['test/kube/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts', 'test/support/kube-global-setup.ts'],
        },
      },
    ],
  },
});
