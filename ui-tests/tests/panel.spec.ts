/**
 * The train path in a real browser against a real `jupyter lab` (token and XSRF checks
 * on): validate exports, train the default model for one short epoch from the form,
 * follow it live, TensorBoard, cancel a second job, reload, dark theme. One screenshot
 * per step under ui-tests/screenshots/ (checked by eye).
 */
import {
  expect,
  test,
  type APIRequestContext,
  type Locator,
  type Page,
  type WebSocketRoute
} from '@playwright/test';
import { execFileSync } from 'child_process';
import * as path from 'path';

import {
  api,
  failOnPageErrors,
  openLab,
  openPanel,
  openSidebar,
  PYTHON,
  ROOT,
  setTheme,
  shot,
  TINY_HYPERPARAMETERS
} from './helpers';

test.describe.configure({ mode: 'serial' });
failOnPageErrors();

let trainedJob = '';
let cancelledJob = '';

/**
 * This file's two jobs in the panel's list, in its order (newest first): the other spec
 * files share the server's runs root, so the list may hold their jobs too.
 */
function ownRows(panel: Locator) {
  return panel.locator(
    `.jp-CvatTrain-job:is([data-job-id="${trainedJob}"], [data-job-id="${cancelledJob}"])`
  );
}

test.beforeAll(() => {
  execFileSync(PYTHON, [
    path.join(__dirname, '..', 'scripts', 'make_data.py'),
    ROOT
  ]);
});

/** The job view's log lines are job.log's lines: none twice, none out of place. */
async function expectLogAsFile(
  page: Page,
  request: APIRequestContext,
  jobId: string
) {
  const view = page.locator(`.jp-CvatTrain-jobView[data-job-id="${jobId}"]`);
  const log = await api(request, `jobs/${jobId}/log`);
  const lines = String(log.text).split('\n');
  if (lines[lines.length - 1] === '') {
    lines.pop();
  }
  const expected = lines.map(l => l.replace(/\r$/, '').split('\r').pop() ?? '');
  await expect(view.locator('.jp-CvatTrain-logBar')).toContainText(
    `${expected.length} line`
  );
  const shown = await view.locator('.jp-CvatTrain-logLine').allTextContents();
  const numbers = await view
    .locator('.jp-CvatTrain-logLine')
    .evaluateAll(nodes => nodes.map(n => Number(n.getAttribute('data-line'))));
  expect(new Set(numbers).size).toBe(numbers.length);
  expect(shown.length).toBeGreaterThan(0);
  shown.forEach((line, i) => expect(line).toBe(expected[numbers[i] - 1]));
}

async function validate(page: Page, exportPath: string) {
  const panel = await openPanel(page);
  const input = panel.locator('#jp-CvatTrain-datasetPath');
  await input.fill(exportPath);
  await panel.locator('.jp-CvatTrain-validate').click();
  const report = panel.locator('.jp-CvatTrain-report');
  await expect(report).toBeVisible();
  return { panel, report };
}

test('the panel answers, and the server keeps its XSRF check on', async ({
  page
}) => {
  await openLab(page);
  const panel = await openPanel(page);
  await expect(panel.locator('.jp-CvatTrain-title')).toHaveText(/CVAT Train/i);
  await expect(panel.locator('.jp-CvatTrain-banner')).toHaveCount(0); // version matches
  // a POST without the X-XSRFToken header (raw fetch, cookies only) is refused
  const status = await page.evaluate(async () => {
    const reply = await fetch('/cvat-train/api/datasets/validate', {
      method: 'POST',
      body: JSON.stringify({ path: 'data/sample.zip' }),
      credentials: 'same-origin'
    });
    return reply.status;
  });
  expect(status).toBe(403);
  await shot(page, '00-panel-light');
});

test('a missing server extension or another version is named, with the fix', async ({
  page
}) => {
  // states a real server cannot be made to show on demand: GET version is answered here
  await page.route(/\/cvat-train\/api\/version/, route =>
    route.fulfill({
      status: 404,
      contentType: 'text/html',
      body: '<html>404 Not Found</html>'
    })
  );
  await openLab(page);
  const panel = await openPanel(page);
  const banner = panel.locator('.jp-CvatTrain-banner');
  await expect(banner).toContainText('does not answer (404)');
  await expect(banner).toContainText('jupyter server extension list');
  await shot(page, '01-server-missing-light');
  await page.unroute(/\/cvat-train\/api\/version/);
  await page.route(/\/cvat-train\/api\/version/, route =>
    route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: '{"version": "0.0.1"}'
    })
  );
  await page.reload();
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
  await expect(page.locator('.jp-CvatTrain-banner')).toContainText(
    'version 0.0.1'
  );
  await expect(page.locator('.jp-CvatTrain-banner')).toContainText('reinstall');
});

test('validating an export with degenerate boxes shows them in the report', async ({
  page
}) => {
  await openLab(page);
  const { panel, report } = await validate(page, 'data/degenerate');
  await expect(report).toHaveAttribute('data-ok', 'true');
  const group = report.locator(
    '.jp-CvatTrain-findingGroup[data-code="degenerate-box"]'
  );
  await expect(group).toBeVisible();
  await expect(group).toContainText('×3');
  await expect(group).toContainText('width 0');
  await expect(report.locator('.jp-CvatTrain-warningNote')).toContainText(
    'Only 9 annotations'
  );
  await expect(panel.locator('.jp-CvatTrain-trainOn')).toBeEnabled();
  await shot(page, '02-datasets-degenerate-light');
});

test('validating a broken export lists the errors and disables Train', async ({
  page
}) => {
  await openLab(page);
  const { panel, report } = await validate(page, 'data/broken');
  await expect(report).toHaveAttribute('data-ok', 'false');
  await expect(
    report.locator('.jp-CvatTrain-findingGroup[data-code="missing-image"]')
  ).toContainText('Error');
  const trainOn = panel.locator('.jp-CvatTrain-trainOn');
  await expect(trainOn).toBeDisabled();
  await expect(trainOn).toHaveAttribute('title', /1 error/);
  await expect(panel.locator('.jp-CvatTrain-blocked')).toContainText('1 error');
  await shot(page, '02b-datasets-broken-light');
  // a path outside the server root: a clear message at the field
  await panel.locator('#jp-CvatTrain-datasetPath').fill('../../etc/passwd');
  await panel.locator('.jp-CvatTrain-validate').click();
  await expect(panel.locator('#jp-CvatTrain-datasetPath-error')).toContainText(
    /outside|'\.\.'/
  );
  await shot(page, '02c-outside-root-light');
});

test("the file browser's context menu validates an export", async ({
  page
}) => {
  await openLab(page);
  await openSidebar(page, 'filebrowser');
  const listing = page.locator('.jp-DirListing-content');
  await listing
    .locator('.jp-DirListing-itemText', { hasText: /^data$/ })
    .dblclick();
  const item = listing.locator('.jp-DirListing-itemText', {
    hasText: /^sample\.zip$/
  });
  await item.click({ button: 'right' });
  const entry = page.locator('.lm-Menu-itemLabel', {
    hasText: /^Validate CVAT export$/
  });
  await expect(entry).toBeVisible();
  await shot(page, '03-context-menu-light');
  await entry.click();
  const panel = page.locator('#jupyter-cvat-train-panel');
  await expect(panel.locator('#jp-CvatTrain-datasetPath')).toHaveValue(
    'data/sample.zip'
  );
  await expect(panel.locator('.jp-CvatTrain-report')).toHaveAttribute(
    'data-ok',
    'true'
  );
  // not offered on a file that is no export
  await openSidebar(page, 'filebrowser');
  await page.keyboard.press('Escape');
  const annotations = listing.locator('.jp-DirListing-itemText', {
    hasText: /^degenerate$/
  });
  await annotations.dblclick();
  await listing
    .locator('.jp-DirListing-itemText', { hasText: /^annotations$/ })
    .dblclick();
  await listing
    .locator('.jp-DirListing-itemText', { hasText: /\.json$/ })
    .click({ button: 'right' });
  await expect(page.locator('.lm-Menu')).toBeVisible();
  await expect(entry).toBeHidden();
  await page.keyboard.press('Escape');
});

test('training the default model from the form: live log, chart, success, notification', async ({
  page
}) => {
  test.setTimeout(300_000);
  await openLab(page);
  const { panel } = await validate(page, 'data/sample.zip');
  await panel.locator('.jp-CvatTrain-trainOn').click();
  const form = panel.locator('.jp-CvatTrain-form');
  await expect(form).toBeVisible();
  await expect(panel.locator('#jp-CvatTrain-trainDataset')).toHaveValue(
    'data/sample.zip'
  );
  // the default template (the form may show a draft another test left: choose it)
  const defaultTemplate = panel.locator('.jp-CvatTrain-template', {
    has: page.locator('.jp-CvatTrain-badge')
  });
  await expect(defaultTemplate).toContainText('SSDlite');
  await defaultTemplate.click();
  await expect(defaultTemplate).toHaveClass(/jp-mod-selected/);
  // a wrong hyperparameter: the server's 400 at the field, the valid keys named
  const textarea = form.locator('textarea');
  await textarea.fill('no_such_key: 1');
  await panel.locator('.jp-CvatTrain-start').click();
  await expect(
    form
      .locator('.error-detail, .jp-FormGroup-errorMessage, .text-danger')
      .first()
  ).toContainText('no_such_key');
  await shot(page, '04-train-form-error-light');

  await textarea.fill(TINY_HYPERPARAMETERS);
  await form.locator('input[id$="epochs"]').fill('1');
  // a checkpoint that does not exist: the 404 at the checkpoint field
  await panel
    .locator('#jp-CvatTrain-checkpointChoice')
    .selectOption('__path__');
  await panel.locator('#jp-CvatTrain-checkpoint').fill('runs/missing.pt');
  await panel.locator('.jp-CvatTrain-start').click();
  await expect(panel.locator('#jp-CvatTrain-checkpoint-error')).toContainText(
    'missing.pt'
  );
  await panel.locator('#jp-CvatTrain-checkpointChoice').selectOption('');
  await panel.locator('.jp-CvatTrain-start').click();
  const view = page.locator('.jp-CvatTrain-jobView[data-job-id]');
  await expect(view).toBeVisible();
  trainedJob = (await view.getAttribute('data-job-id')) ?? '';
  expect(trainedJob).toMatch(/train/);

  // log lines appear while the job still runs
  await expect
    .poll(
      async () =>
        page.evaluate(() => {
          const v = document.querySelector(
            '.jp-CvatTrain-jobView[data-job-id]'
          );
          const lines =
            v?.querySelectorAll('.jp-CvatTrain-logLine').length ?? 0;
          return lines > 0 ? v?.getAttribute('data-state') : 'no-lines';
        }),
      { timeout: 120_000, intervals: [100] }
    )
    .toMatch(/running|queued|succeeded/);
  const firstSeen = await view.getAttribute('data-state');
  await shot(page, '05-job-running-light');
  await expect(view).toHaveAttribute('data-state', 'succeeded', {
    timeout: 240_000
  });
  expect(firstSeen).not.toBe('succeeded'); // (best effort: the log showed before the end)
  // the chart has a point; the AP table of the best epoch is there
  await expect(view.locator('.jp-CvatTrain-chart .u-over')).toBeVisible();
  await expect(
    view.locator('.jp-CvatTrain-chart .jp-CvatTrain-empty')
  ).toHaveCount(0);
  await expect(view.locator('.jp-CvatTrain-ap')).toContainText(
    'best epoch (1)'
  );
  // a notification says it ended, with Open
  const toast = page.locator('.Toastify__toast', { hasText: 'succeeded' });
  await expect(toast).toBeVisible();
  await expect(toast.getByRole('button', { name: 'Open' })).toBeVisible();
  await shot(page, '06-job-succeeded-light');
});

test('TensorBoard opens in a tab and its page loads', async ({ page }) => {
  test.setTimeout(180_000);
  expect(trainedJob).not.toBe('');
  await openLab(page);
  const view = page.locator(
    `.jp-CvatTrain-jobView[data-job-id="${trainedJob}"]`
  );
  await expect(view).toBeVisible(); // restored from the last session
  await view.locator('.jp-CvatTrain-tensorboard').click();
  const frame = page.frameLocator('.jp-CvatTrain-tensorboardFrame iframe');
  await expect(frame.locator('body')).toContainText(
    /TensorBoard|Scalars|SCALARS|No dashboards/i,
    {
      timeout: 120_000
    }
  );
  await shot(page, '07-tensorboard-light');
});

test('a second job survives a dropped stream (resumed, no line twice) and is cancelled', async ({
  page,
  request
}) => {
  test.setTimeout(240_000);
  // every job stream goes through here, to the real server; the test can drop one
  const streams: WebSocketRoute[] = [];
  await page.routeWebSocket(/\/cvat-train\/api\/jobs\/[^/]+\/stream/, ws => {
    ws.connectToServer();
    streams.push(ws);
  });
  await openLab(page);
  let view = page.locator(`.jp-CvatTrain-jobView[data-job-id="${trainedJob}"]`);
  await page
    .locator('.lm-TabBar-tab', { hasText: /^train:/ })
    .first()
    .click();
  await expect(view).toBeVisible();
  await view.locator('.jp-CvatTrain-rerun').click();
  const panel = await openPanel(page);
  await expect(panel.locator('#jp-CvatTrain-trainDataset')).toHaveValue(
    'data/sample.zip'
  );
  await expect(panel.locator('.jp-CvatTrain-form textarea')).toHaveValue(
    TINY_HYPERPARAMETERS
  );
  const hp = panel.locator('.jp-CvatTrain-form textarea');
  await hp.fill(
    TINY_HYPERPARAMETERS.replace(
      'warmup_iters: 1',
      'warmup_iters: 1\nnum_steps: 100000'
    )
  );
  await panel.locator('.jp-CvatTrain-form input[id$="epochs"]').fill('50');
  await panel.locator('.jp-CvatTrain-start').click();
  // the new job's view opens at once (a job id other than the first one's)
  view = page.locator(
    `.jp-CvatTrain-jobView[data-job-id]:visible:not([data-job-id="${trainedJob}"])`
  );
  await expect(view).toHaveAttribute('data-job-id', /train/);
  await expect(view).toHaveAttribute('data-state', /queued|running/);
  const jobId = (await view.getAttribute('data-job-id')) ?? '';
  cancelledJob = jobId;
  await expect(view).toHaveAttribute('data-state', 'running', {
    timeout: 120_000
  });
  await expect(view.locator('.jp-CvatTrain-logLine').first()).toBeVisible({
    timeout: 120_000
  });
  // the connection drops: the view says so, reconnects and resumes from its offsets
  const ofJob = () =>
    streams.filter(ws => ws.url().includes(`/jobs/${jobId}/stream`));
  expect(ofJob()).toHaveLength(1);
  await ofJob()[0].close({ code: 4000, reason: 'test drops the connection' });
  await expect(view.locator('.jp-CvatTrain-logNote')).toContainText(
    'reconnecting'
  );
  await expect.poll(() => ofJob().length, { timeout: 30_000 }).toBe(2);
  expect(
    Number(new URL(ofJob()[1].url()).searchParams.get('log_offset'))
  ).toBeGreaterThan(0);
  await expect(view.locator('.jp-CvatTrain-logNote')).toHaveCount(0);
  await view.locator('.jp-CvatTrain-cancel').click();
  await expect(view).toHaveAttribute('data-state', 'cancelled', {
    timeout: 120_000
  });
  await expect(view.locator('.jp-CvatTrain-cancel')).toBeDisabled();
  await expect(view.locator('.jp-CvatTrain-cancel')).toHaveAttribute(
    'title',
    'The job has ended'
  );
  await expectLogAsFile(page, request, jobId);
  await shot(page, '08-job-cancelled-light');
});

test('after a reload the panel and the job tab come back, the log without a repeated line', async ({
  page,
  request
}) => {
  await openLab(page);
  await page.reload();
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
  await expect(page.locator(`#jupyter-cvat-train-panel`)).toBeVisible();
  await page
    .locator('.lm-TabBar-tab', { hasText: /^train:/ })
    .first()
    .click();
  const view = page.locator(
    `.jp-CvatTrain-jobView[data-job-id="${trainedJob}"]`
  );
  await expect(view).toBeVisible();
  await expect(view).toHaveAttribute('data-state', 'succeeded');
  await expectLogAsFile(page, request, trainedJob);
  // Fine-tune from this model: the Train form starts from its model folder
  await view.locator('.jp-CvatTrain-finetune').click();
  const choice = page.locator('#jp-CvatTrain-checkpointChoice');
  await expect(choice).toHaveValue(/\/output\/model$/);
  await expect(choice.locator('option:checked')).toContainText('Fine-tune');
  // the jobs list has both jobs, newest first
  const panel = await openPanel(page);
  const rows = ownRows(panel);
  await expect(rows).toHaveCount(2);
  await expect(rows.nth(0)).toHaveAttribute('data-job-id', cancelledJob);
  await expect(rows.nth(0)).toHaveAttribute('data-state', 'cancelled');
  await expect(rows.nth(1)).toHaveAttribute('data-state', 'succeeded');
  await shot(page, '09-restored-light');
});

test('a job deleted elsewhere leaves the list, and its open view says so', async ({
  page,
  request
}) => {
  await openLab(page);
  const panel = await openPanel(page);
  const rows = ownRows(panel);
  await expect(rows).toHaveCount(2);
  const cancelled = cancelledJob;
  await page
    .locator('.lm-TabBar-tab', { hasText: /^train:/ })
    .nth(1)
    .click();
  const view = page.locator(
    `.jp-CvatTrain-jobViewBody:visible .jp-CvatTrain-jobView`
  );
  await expect(view).toHaveAttribute('data-job-id', cancelled);
  const reply = await request.delete(`/cvat-train/api/jobs/${cancelled}`, {
    headers: { Authorization: `token ${process.env.CVAT_UI_TOKEN}` }
  });
  expect(reply.status()).toBe(204);
  await panel.locator('.jp-CvatTrain-filters button').click(); // or wait for the poll
  await expect(rows).toHaveCount(1);
  await expect(
    page.locator('.jp-CvatTrain-jobViewBody:visible .jp-mod-missing')
  ).toContainText('was deleted');
  await shot(page, '10-deleted-elsewhere-light');
  await page
    .locator('.lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon')
    .click();
});

test('dark theme: panel, report, form and job view', async ({ page }) => {
  await openLab(page);
  await setTheme(page, 'JupyterLab Dark');
  await page
    .locator('.lm-TabBar-tab', { hasText: /^train:/ })
    .first()
    .click();
  await shot(page, '11-job-dark');
  await validate(page, 'data/degenerate');
  await shot(page, '12-datasets-dark');
  const panel = await openPanel(page);
  await panel.locator('.jp-CvatTrain-trainOn').click();
  await expect(panel.locator('.jp-CvatTrain-form')).toBeVisible();
  await panel.locator('.jp-CvatTrain-form').scrollIntoViewIfNeeded();
  await shot(page, '13-train-form-dark');
  await panel.locator('.jp-CvatTrain-jobList').scrollIntoViewIfNeeded();
  await shot(page, '14-jobs-dark');
  await setTheme(page, 'JupyterLab Light');
});
