/**
 * This frontend's version: the npm package's, which is the Python package's
 * (src/__tests__/version.spec.ts and tests/test_server_version.py check both). The
 * panel compares it with `GET version` to tell a stale install.
 */
export const FRONTEND_VERSION = '0.1.0';
