/**
 * examples/quickstart.ipynb run from JupyterLab (Run All Cells) in a real kernel of the
 * test server: its jobs land in the server's runs root (the panel's API lists them),
 * and the Python side's outputs render: the validation report table, the Vega-Lite
 * metrics chart, the annotation previews, the job list. Screenshots light and dark
 * under ui-tests/screenshots/quickstart-*.
 */
import { expect, test, type Locator, type Page } from '@playwright/test';
import { readFileSync } from 'fs';
import * as path from 'path';

import { api, setTheme, shot, TOKEN } from './helpers';

const NOTEBOOK = 'quickstart.ipynb';
const SOURCE = path.resolve(__dirname, '..', '..', 'examples', NOTEBOOK);

/** The code cell whose source starts with ``start``. */
function cell(notebook: Locator, start: string): Locator {
  return notebook.locator('.jp-CodeCell').filter({
    has: notebook.page().locator('.jp-InputArea-editor', { hasText: start })
  });
}

async function showCell(page: Page, target: Locator, name: string) {
  // the panel's job notifications would cover the outputs
  await page.addStyleTag({
    content: '.Toastify { display: none !important; }'
  });
  await target.scrollIntoViewIfNeeded();
  await target.evaluate(el => el.scrollIntoView({ block: 'start' }));
  await shot(page, name);
}

test('the quickstart notebook runs in JupyterLab and shows its outputs', async ({
  page,
  request
}) => {
  test.setTimeout(480_000);
  const content = JSON.parse(readFileSync(SOURCE, 'utf-8'));
  const put = await request.put(`/api/contents/${NOTEBOOK}`, {
    headers: { Authorization: `token ${TOKEN}` },
    data: { type: 'notebook', format: 'json', content }
  });
  expect(put.ok()).toBe(true);
  const before = ((await api(request, 'jobs')).jobs as { id: string }[]).length;

  await page.goto(`/lab/workspaces/quickstart/tree/${NOTEBOOK}?token=${TOKEN}`);
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
  const notebook = page.locator('.jp-NotebookPanel:visible');
  await expect(
    notebook.locator('.jp-Notebook-ExecutionIndicator')
  ).toHaveAttribute('data-status', 'idle', { timeout: 120_000 });
  await notebook.locator('.jp-Cell').first().click();
  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^Run$/ }).click();
  await page
    .locator('.lm-Menu-itemLabel', { hasText: /^Run All Cells$/ })
    .click();

  // the last cell lists the runs root's jobs: the notebook's three, succeeded, after
  // those the earlier spec files left
  const last = cell(notebook, '%cvat_train jobs');
  await expect(last.locator('.jp-OutputArea-output table')).toBeVisible({
    timeout: 360_000
  });
  const states = await last
    .locator('tbody tr td:nth-child(3)')
    .allTextContents();
  expect(states.slice(-3)).toEqual(['succeeded', 'succeeded', 'succeeded']);
  await expect(
    notebook.locator(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    )
  ).toHaveCount(0);
  // ... and they are the server's: the kernel got its runs root
  const after = (await api(request, 'jobs')).jobs as { kind: string }[];
  expect(after.length - before).toBe(3);

  const report = cell(notebook, 'report = %cvat_train validate');
  await expect(report).toContainText('OK: ready to train');
  await expect(report.locator('table').first()).toContainText('40');
  await showCell(page, report, 'quickstart-report-light');

  const chart = cell(notebook, 'job.plot()');
  await expect(chart.locator('.vega-embed, canvas, svg').first()).toBeVisible();
  await showCell(page, chart, 'quickstart-chart-light');

  const previews = cell(notebook, 'pre.previews()');
  await expect(previews.locator('img')).toHaveCount(3);
  await showCell(page, previews, 'quickstart-previews-light');

  await setTheme(page, 'JupyterLab Dark');
  try {
    await showCell(page, report, 'quickstart-report-dark');
    await showCell(page, chart, 'quickstart-chart-dark');
    await showCell(page, last, 'quickstart-jobs-dark');
  } finally {
    await setTheme(page, 'JupyterLab Light'); // the next spec files start light
  }
});
