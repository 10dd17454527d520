/**
 * Playwright drives Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) against a real
 * `jupyter lab` started here on a free loopback port with a random token, a temporary
 * root dir and temporary user config, so a developer's own settings never leak in.
 */
import { defineConfig } from '@playwright/test';
import { execFileSync } from 'child_process';
import { randomBytes } from 'crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';

// The config is evaluated by the runner and again by each worker; the runner picks the
// port, token and folders once and the workers inherit them through the environment.
function freePort(): string {
  return execFileSync(process.execPath, [
    '-e',
    "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})"
  ])
    .toString()
    .trim();
}
const env = process.env;
env.CVAT_UI_PORT ??= freePort();
env.CVAT_UI_TOKEN ??= randomBytes(24).toString('hex');
env.CVAT_UI_HOME ??= mkdtempSync(path.join(tmpdir(), 'cvat-train-ui-'));
// A real S3 endpoint for the sync tests: moto's server on loopback; the Jupyter server
// may sign requests to it (allowed_endpoint_urls) with test credentials.
env.CVAT_UI_MOTO_PORT ??= freePort();
const motoURL = `http://127.0.0.1:${env.CVAT_UI_MOTO_PORT}`;
const venvMoto = path.join(__dirname, '..', '.venv', 'bin', 'moto_server');

const repoRoot = path.resolve(__dirname, '..');
const venvJupyter = path.join(repoRoot, '.venv', 'bin', 'jupyter');
const jupyter =
  env.JUPYTER ?? (existsSync(venvJupyter) ? venvJupyter : 'jupyter');
const home = env.CVAT_UI_HOME;

// User settings of the test server: no "official Jupyter news?" toast over the page.
const notificationSettings = path.join(
  home,
  'settings',
  '@jupyterlab',
  'apputils-extension'
);
mkdirSync(notificationSettings, { recursive: true });
writeFileSync(
  path.join(notificationSettings, 'notification.jupyterlab-settings'),
  JSON.stringify({ fetchNews: 'false', checkForUpdates: false })
);
const baseURL = `http://127.0.0.1:${env.CVAT_UI_PORT}`;

const serverArgs = [
  'lab',
  '--no-browser',
  '--ServerApp.ip=127.0.0.1',
  `--ServerApp.port=${env.CVAT_UI_PORT}`,
  '--ServerApp.port_retries=0',
  `--IdentityProvider.token=${env.CVAT_UI_TOKEN}`,
  `--ServerApp.root_dir=${home}`,
  `--LabApp.workspaces_dir=${path.join(home, 'workspaces')}`,
  `--LabApp.user_settings_dir=${path.join(home, 'settings')}`,
  '--ServerApp.log_level=WARN',
  `--CvatTrainApp.allowed_endpoint_urls=${motoURL}`,
  ...(process.getuid?.() === 0 ? ['--allow-root'] : [])
];

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  timeout: 120_000,
  expect: { timeout: 30_000 },
  retries: 0,
  workers: 1,
  forbidOnly: !!env.CI,
  reporter: [['list']],
  use: {
    baseURL,
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: env.CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync'
      ]
    }
  },
  webServer: [
    {
      command: [
        env.MOTO_SERVER ?? (existsSync(venvMoto) ? venvMoto : 'moto_server'),
        '-H',
        '127.0.0.1',
        '-p',
        env.CVAT_UI_MOTO_PORT
      ]
        .map(a => `'${a}'`)
        .join(' '),
      url: `${motoURL}/moto-api/`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'ignore',
      stderr: 'ignore'
    },
    {
      command: [jupyter, ...serverArgs].map(a => `'${a}'`).join(' '),
      // GET /api answers 200 without a token once the server is up.
      url: `${baseURL}/api`,
      reuseExistingServer: false,
      timeout: 120_000,
      stdout: 'ignore',
      stderr: 'pipe',
      env: {
        JUPYTER_CONFIG_DIR: path.join(home, 'config'),
        JUPYTER_RUNTIME_DIR: path.join(home, 'runtime'),
        JUPYTER_DATA_DIR: path.join(home, 'data'),
        JUPYTER_PLATFORM_DIRS: '1',
        AWS_ACCESS_KEY_ID: 'ui-test-key-id',
        AWS_SECRET_ACCESS_KEY: 'ui-test-secret',
        AWS_DEFAULT_REGION: 'us-east-1',
        AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'no-aws-credentials'),
        AWS_CONFIG_FILE: path.join(home, 'no-aws-config'),
        AWS_EC2_METADATA_DISABLED: 'true'
      }
    }
  ]
});
