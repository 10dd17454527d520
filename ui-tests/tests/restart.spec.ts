/**
 * What survives the server and the page going away, against a `jupyter lab` this file
 * starts and stops itself (token and XSRF on, its own root and workspace, so the draft
 * and the stop touch no other test): the Train form's draft comes back after a reload;
 * a server stopped while a job view is open is said so, and when the same server is
 * back the view reconnects, the job still there and its log without a repeated line.
 */
import { expect, test, type Page } from '@playwright/test';
import { ChildProcess, execFileSync, spawn } from 'child_process';
import { randomBytes } from 'crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'fs';
import { createServer } from 'net';
import { tmpdir } from 'os';
import * as path from 'path';

import { openSidebar, PANEL_ID, PYTHON, REPO_ROOT, shot } from './helpers';

const venvJupyter = path.join(REPO_ROOT, '.venv', 'bin', 'jupyter');
const jupyter =
  process.env.JUPYTER ?? (existsSync(venvJupyter) ? venvJupyter : 'jupyter');

const home = mkdtempSync(path.join(tmpdir(), 'cvat-train-restart-'));
const token = randomBytes(24).toString('hex');
let port = 0;
let server: ChildProcess | null = null;

function freePort(): Promise<number> {
  return new Promise(resolve => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** Start the server (same port, token, root and runtime dir each time) and wait for it. */
async function startServer(): Promise<void> {
  const settings = path.join(
    home,
    'settings',
    '@jupyterlab',
    'apputils-extension'
  );
  mkdirSync(settings, { recursive: true });
  writeFileSync(
    path.join(settings, 'notification.jupyterlab-settings'),
    JSON.stringify({ fetchNews: 'false', checkForUpdates: false })
  );
  server = spawn(
    jupyter,
    [
      'lab',
      '--no-browser',
      '--ServerApp.ip=127.0.0.1',
      `--ServerApp.port=${port}`,
      '--ServerApp.port_retries=0',
      `--IdentityProvider.token=${token}`,
      `--ServerApp.root_dir=${path.join(home, 'root')}`,
      `--LabApp.workspaces_dir=${path.join(home, 'workspaces')}`,
      `--LabApp.user_settings_dir=${path.join(home, 'settings')}`,
      '--ServerApp.log_level=WARN',
      ...(process.getuid?.() === 0 ? ['--allow-root'] : [])
    ],
    {
      stdio: 'ignore',
      env: {
        ...process.env,
        JUPYTER_CONFIG_DIR: path.join(home, 'config'),
        // the cookie secret lives here: the same after a restart, as on a real machine
        JUPYTER_RUNTIME_DIR: path.join(home, 'runtime'),
        JUPYTER_DATA_DIR: path.join(home, 'data'),
        JUPYTER_PLATFORM_DIRS: '1'
      }
    }
  );
  await expect
    .poll(
      async () => {
        try {
          return (await fetch(`http://127.0.0.1:${port}/api`)).status;
        } catch {
          return 0;
        }
      },
      { timeout: 120_000, intervals: [250] }
    )
    .toBe(200);
}

/** Stop the server as a user would (SIGTERM); its job processes keep running. */
async function stopServer(): Promise<void> {
  const proc = server;
  server = null;
  if (!proc || proc.exitCode !== null) {
    return;
  }
  const exited = new Promise(resolve => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  await exited;
}

async function call(
  method: string,
  route: string,
  body?: unknown
): Promise<Record<string, unknown>> {
  const reply = await fetch(
    `http://127.0.0.1:${port}/cvat-train/api/${route}`,
    {
      method,
      headers: { Authorization: `token ${token}` },
      body: body === undefined ? undefined : JSON.stringify(body)
    }
  );
  expect(reply.ok, `${method} ${route}: ${reply.status}`).toBe(true);
  return reply.json();
}

async function openLab(page: Page): Promise<void> {
  await page.goto(`http://127.0.0.1:${port}/lab?token=${token}`);
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
}

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  test.setTimeout(180_000);
  mkdirSync(path.join(home, 'root'), { recursive: true });
  execFileSync(PYTHON, [
    path.join(__dirname, '..', 'scripts', 'make_data.py'),
    path.join(home, 'root')
  ]);
  port = await freePort();
  await startServer();
});

test.afterAll(async () => {
  await stopServer();
});

test('the Train form keeps its draft across a reload', async ({ page }) => {
  await openLab(page);
  const panel = await openSidebar(page, PANEL_ID);
  await panel.locator('#jp-CvatTrain-trainDataset').fill('data/sample.zip');
  const fcos = panel.locator(
    '.jp-CvatTrain-template[data-template="fcos-resnet50-fpn"]'
  );
  await fcos.click();
  await expect(fcos).toHaveClass(/jp-mod-selected/);
  const form = panel.locator(
    '.jp-CvatTrain-form[data-template="fcos-resnet50-fpn"]'
  );
  await form.locator('textarea').fill('batch_size: 3');
  await form.locator('input[id$="epochs"]').fill('7');
  // the devices the server has: auto and cpu here (no GPU), and the probe's note
  await expect(panel.locator('.jp-CvatTrain-deviceNote')).toContainText(
    'no CUDA GPU'
  );
  await page.waitForTimeout(1500); // the draft is saved after a quiet moment, then the workspace
  await page.reload();
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
  const again = await openSidebar(page, PANEL_ID);
  await expect(
    again.locator('.jp-CvatTrain-template[data-template="fcos-resnet50-fpn"]')
  ).toHaveClass(/jp-mod-selected/);
  const restored = again.locator(
    '.jp-CvatTrain-form[data-template="fcos-resnet50-fpn"]'
  );
  await expect(restored.locator('textarea')).toHaveValue(/batch_size: 3/);
  await expect(restored.locator('input[id$="epochs"]')).toHaveValue('7');
  await expect(again.locator('#jp-CvatTrain-trainDataset')).toHaveValue(
    'data/sample.zip'
  );
  await shot(page, '20-train-draft-restored-light');
});

test('a server stopped under an open job view is said so; back, the view reconnects', async ({
  page
}) => {
  test.setTimeout(300_000);
  // a job that logs for a while: a short training on the sample
  const job = await call('POST', 'jobs', {
    kind: 'train',
    template: 'ssdlite320-mobilenet-v3',
    dataset: 'data/sample.zip',
    parameters: {
      hyperparameters:
        'epochs: 3\nbatch_size: 4\nimage_size: 96\npretrained: false\nnum_workers: 0\nwarmup_iters: 1'
    },
    checkpoint: null
  });
  const jobId = String(job.id);
  await openLab(page);
  const jobs = await openSidebar(page, PANEL_ID);
  await jobs
    .locator(`.jp-CvatTrain-job[data-job-id="${jobId}"] .jp-CvatTrain-jobOpen`)
    .click();
  const view = page.locator(`.jp-CvatTrain-jobView[data-job-id="${jobId}"]`);
  await expect(view.locator('.jp-CvatTrain-logLine').first()).toBeVisible({
    timeout: 120_000
  });

  await stopServer();
  // the view and the panel say the server is gone; nothing spins for ever
  await expect(view).toContainText(/does not answer|reconnecting/, {
    timeout: 60_000
  });
  const panel = await openSidebar(page, PANEL_ID);
  await expect(panel.locator('.jp-CvatTrain-banner')).toContainText(
    'does not answer',
    {
      timeout: 60_000
    }
  );
  await shot(page, '21-server-stopped-light');
  // JupyterLab's own "Server Connection Error" dialog, if it came: closed
  const close = page
    .locator('.jp-Dialog')
    .getByRole('button', { name: 'Close' });
  if (await close.isVisible()) {
    await close.click();
  }

  await startServer();
  // back: the banner goes, the job is still there and ends; its log has no line twice
  await expect(panel.locator('.jp-CvatTrain-banner')).toHaveCount(0, {
    timeout: 90_000
  });
  await expect(view).toHaveAttribute('data-state', /succeeded|failed/, {
    timeout: 240_000
  });
  const log = await call('GET', `jobs/${jobId}/log`);
  const expected = String(log.text).replace(/\n$/, '').split('\n');
  const numbers = await view
    .locator('.jp-CvatTrain-logLine')
    .evaluateAll(nodes => nodes.map(n => Number(n.getAttribute('data-line'))));
  expect(new Set(numbers).size).toBe(numbers.length);
  const shown = await view.locator('.jp-CvatTrain-logLine').allTextContents();
  shown.forEach((line, i) =>
    expect(line).toBe(expected[numbers[i] - 1].split('\r').pop())
  );
  await shot(page, '22-server-back-light');
});
