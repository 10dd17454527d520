/**
 * JupyterLab loads with the extension; its CVAT Train sidebar icon is there; the
 * panel opens and shows the server extension's version, fetched through
 * GET {base_url}cvat-train/api/version with the page's real token and XSRF cookie.
 */
import { expect, test } from '@playwright/test';
import { readFileSync } from 'fs';
import * as path from 'path';

const PANEL_ID = 'jupyter-cvat-train-panel';
// package.json's version is the Python package's (tests/test_server_version.py checks that).
const expectedVersion: string = JSON.parse(
  readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf-8')
).version;

test('the CVAT Train sidebar panel shows the server version', async ({
  page
}, testInfo) => {
  const pageErrors: string[] = [];
  page.on('pageerror', error => pageErrors.push(error.message));

  await page.goto(`/lab?token=${process.env.CVAT_UI_TOKEN}`);
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });

  const tab = page.locator(`.jp-SideBar.jp-mod-left li[data-id="${PANEL_ID}"]`);
  await expect(tab).toBeVisible();
  await expect(tab).toHaveAttribute('title', 'CVAT Train');
  await expect(tab.locator('svg')).toBeVisible();

  await tab.click();
  await expect(tab).toHaveClass(/lm-mod-current/);
  const panel = page.locator(`#${PANEL_ID}`);
  await expect(panel).toBeVisible();
  await expect(
    panel.getByRole('heading', { name: 'CVAT Train' })
  ).toBeVisible();
  await expect(panel.locator('.jp-CvatTrainPanel-version')).toHaveText(
    `Server extension jupyter_cvat_train ${expectedVersion}`
  );

  await page.screenshot({ path: testInfo.outputPath('cvat-train-panel.png') });
  expect(pageErrors).toEqual([]);
});
