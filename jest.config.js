/**
 * Jest for src/: TypeScript through ts-jest (tsconfig.test.json: CommonJS), in jsdom so
 * that document.cookie (the XSRF cookie) exists, with Node's own fetch added by
 * jest.environment.js so that tests talk to a real HTTP server.
 */
module.exports = {
  testEnvironment: '<rootDir>/jest.environment.js',
  roots: ['<rootDir>/src'],
  testMatch: ['**/__tests__/**/*.spec.ts?(x)'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }]
  }
};
