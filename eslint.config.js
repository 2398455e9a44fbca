// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.arca-demo/**', 'scripts/*.mjs', 'eslint.config.js', 'vitest.config.ts'] },
  eslint.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allow: [{ from: 'lib', name: 'BigInt' }] }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // @kubernetes/client-node's API models are classes that its API takes as plain object literals.
    files: ['kube/**/*.ts', 'agent/**/*.ts', 'controller/**/*.ts', 'scripts/kube/**/*.ts', 'test/kube/**/*.ts', 'test/agent/**/*.ts', 'test/controller/**/*.ts', 'test/support/control-plane.ts', 'test/support/controller-process.ts', 'test/support/simulated-cluster.ts', 'test/support/journey-app.ts', 'bench/kube-scale.ts', 'bench/agent-memory.ts'],
    rules: { '@typescript-eslint/no-unsafe-class-instance-assignment': 'off' },
  },
);
