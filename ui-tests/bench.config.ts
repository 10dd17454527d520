/**
 * The panel benchmark (not a test: `npx playwright test -c bench.config.ts`): the same
 * real `jupyter lab` as the ui-tests, started on a root that already holds 200 finished
 * jobs (planted before the server starts, so it indexes them).
 */
import { execFileSync } from 'child_process';
import { existsSync } from 'fs';
import * as path from 'path';

import base from './playwright.config';

const home = process.env.CVAT_UI_HOME ?? '';
if (!process.env.CVAT_BENCH_PLANTED) {
  process.env.CVAT_BENCH_PLANTED = '1'; // the workers inherit it: plant once
  const venvPython = path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  const python = existsSync(venvPython) ? venvPython : 'python3';
  execFileSync(python, [
    path.join(__dirname, 'scripts', 'plant_jobs.py'),
    home,
    '200'
  ]);
  execFileSync(python, [path.join(__dirname, 'scripts', 'make_data.py'), home]);
}

export default {
  ...base,
  testDir: './bench',
  testMatch: '**/*.bench.ts',
  timeout: 900_000,
  reporter: [['list']]
};
