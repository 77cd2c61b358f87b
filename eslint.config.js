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
    // The status page's browser code goes to the browser as the source text of its functions (coordinator/status-page/client.ts).
    files: ['coordinator/status-page/browser/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: "ImportDeclaration[importKind!='type']", message: 'Browser code imports types only: an imported value does not reach the browser.' },
        {
          selector: 'Program > :not(ImportDeclaration, ExportNamedDeclaration, ExportAllDeclaration, TSTypeAliasDeclaration, TSInterfaceDeclaration)',
          message: 'Browser code keeps everything inside its exported functions: nothing at module level reaches the browser.',
        },
        {
          selector: 'ExportNamedDeclaration > :matches(VariableDeclaration, ClassDeclaration, TSEnumDeclaration)',
          message: 'Browser code exports functions and types only: nothing else reaches the browser.',
        },
      ],
    },
  },
  {
    files: ['shared/clock.ts', 'shared/random.ts', 'shared/config/**', '**/main.ts', 'cli/**', 'scripts/**', 'test/**', 'tools/**', 'bench/**', '**/testing/**', '**/*.test.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
