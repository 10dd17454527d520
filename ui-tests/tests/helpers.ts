/**
 * Helpers of the browser tests: open JupyterLab with the test server's token (the
 * server keeps its token and XSRF checks on), the panel, screenshots under
 * ui-tests/screenshots/, the theme, and API calls with the token.
 */
import {
  expect,
  test,
  type APIRequestContext,
  type Page
} from '@playwright/test';
import { existsSync } from 'fs';
import * as path from 'path';

export const PANEL_ID = 'jupyter-cvat-train-panel';
export const TOKEN = process.env.CVAT_UI_TOKEN ?? '';
export const ROOT = process.env.CVAT_UI_HOME ?? '';
export const SCREENSHOTS = path.resolve(__dirname, '..', 'screenshots');
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
const venvPython = path.join(REPO_ROOT, '.venv', 'bin', 'python');
/** The Python of the test server (the venv's), for the data scripts. */
export const PYTHON =
  process.env.PYTHON ?? (existsSync(venvPython) ? venvPython : 'python3');

/** Hyperparameters that train the default model in seconds on the CPU. */
export const TINY_HYPERPARAMETERS = [
  'batch_size: 4',
  'image_size: 96',
  'pretrained: false',
  'num_workers: 0',
  'precise_bn_batches: 1',
  'warmup_iters: 1'
].join('\n');

/** Fail each test of the calling file during which the page threw. */
export function failOnPageErrors(): void {
  let errors: string[] = [];
  test.beforeEach(({ page }) => {
    errors = [];
    page.on('pageerror', error => errors.push(error.message));
  });
  test.afterEach(() => {
    expect(errors).toEqual([]);
  });
}

/**
 * The JupyterLab workspace of the running test's spec file: each file has its own, so
 * the tabs, file-browser folder and form drafts one file leaves never reach another.
 */
export function workspace(): string {
  // a workspace name has no dots (the benchmark's panel.bench.ts would be a 404)
  return path
    .basename(test.info().file)
    .replace(/\.spec\.ts$|\.ts$/, '')
    .replace(/[^A-Za-z0-9_-]/g, '-');
}

/** Load JupyterLab (logging in with the token) and wait for the splash to go. */
export async function openLab(
  page: Page,
  query = `token=${TOKEN}`
): Promise<void> {
  await page.goto(`/lab/workspaces/${workspace()}?${query}`);
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
}

/**
 * Show a left sidebar widget by its id. A click on the current tab hides it, and the
 * layout restore may make a tab current at any moment: click until it is shown.
 */
export async function openSidebar(page: Page, id: string) {
  const tab = page.locator(`.jp-SideBar.jp-mod-left li[data-id="${id}"]`);
  const widget = page.locator(`[id="${id}"]`);
  await expect(tab).toBeVisible();
  await expect(async () => {
    if (!(await tab.getAttribute('class'))?.includes('lm-mod-current')) {
      await tab.click();
    }
    await expect(widget).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  return widget;
}

/** Open the CVAT Train sidebar panel; returns its locator. */
export async function openPanel(page: Page) {
  return openSidebar(page, PANEL_ID);
}

/** A full-page screenshot, ui-tests/screenshots/NAME.png. */
export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
}

/** Switch JupyterLab's theme from its Settings menu, and wait until it applied. */
export async function setTheme(
  page: Page,
  theme: 'JupyterLab Light' | 'JupyterLab Dark'
): Promise<void> {
  await page
    .locator('.lm-MenuBar-itemLabel', { hasText: /^Settings$/ })
    .click();
  await page.locator('.lm-Menu-itemLabel', { hasText: /^Theme$/ }).click();
  await page
    .locator('.lm-Menu-itemLabel', { hasText: new RegExp(`^${theme}$`) })
    .click();
  await expect(page.locator('body')).toHaveAttribute(
    'data-jp-theme-name',
    theme
  );
  await page.waitForTimeout(800); // the theme's CSS is in
}

/** GET {base}cvat-train/api/PATH with the token: the parsed JSON. */
export async function api(
  request: APIRequestContext,
  route: string
): Promise<Record<string, unknown>> {
  const reply = await request.get(`/cvat-train/api/${route}`, {
    headers: { Authorization: `token ${TOKEN}` }
  });
  expect(reply.ok()).toBe(true);
  return reply.json();
}
