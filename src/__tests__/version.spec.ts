import { readFileSync } from 'fs';
import * as path from 'path';

import { FRONTEND_VERSION } from '../version';

it("FRONTEND_VERSION is package.json's version", () => {
  const pkg = JSON.parse(
    readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf-8')
  );
  expect(FRONTEND_VERSION).toBe(pkg.version);
});
