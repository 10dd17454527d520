// ESLint (flat config) for the TypeScript panel, its tests, the ui-tests and the scripts.
// Formatting is prettier's (eslint-config-prettier turns the conflicting rules off).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  {
    ignores: [
      '.venv/',
      'lib/',
      'node_modules/',
      'jupyter_cvat_train/labextension/',
      'ui-tests/node_modules/',
      'ui-tests/test-results/',
      'ui-tests/playwright-report/',
      'coverage/',
      'demo-output/'
    ]
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ['src/**/*.{ts,tsx}'],
    languageOptions: { globals: globals.browser }
  },
  {
    files: ['**/*.{js,mjs,ts,tsx}'],
    rules: {
      curly: ['error', 'all'],
      eqeqeq: ['error', 'smart'],
      'prefer-const': 'error',
      'no-console': ['error', { allow: ['warn', 'error'] }],
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none' }]
    }
  },
  {
    files: ['scripts/**/*.js', '*.config.js', 'jest.environment.js'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
    rules: { '@typescript-eslint/no-require-imports': 'off' }
  },
  {
    files: ['src/**/__tests__/**', 'ui-tests/**'],
    languageOptions: { globals: { ...globals.node, ...globals.jest } }
  },
  prettier
);
