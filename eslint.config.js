import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', '.test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      // Injected clock and randomness: only main and config code may touch the real ones.
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Use the injected Clock (shared/clock.ts).' },
        { object: 'Math', property: 'random', message: 'Use the injected RandomSource (shared/random.ts).' },
        { object: 'process', property: 'env', message: 'Read the environment only in main and config code.' },
      ],
    },
  },
  {
    files: ['shared/clock.ts', 'shared/random.ts', 'shared/config/**', '**/main.ts', 'cli/**', 'scripts/**', 'test/**', 'tools/**', 'bench/**', '**/testing/**', '**/*.test.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
