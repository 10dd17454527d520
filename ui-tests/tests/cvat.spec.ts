/**
 * The CVAT section in a real browser against a real `jupyter lab` that has no CVAT host
 * configured (the ui-test server's environment names none): "Test connection" says so
 * and names the fix; a pull of task 1 starts a real cvat-pull job that fails with the
 * "no CVAT host" message in its view, which shows only its kind's actions; bad input is
 * told at the field, by the form (a task id, a threshold) or by the server (an output
 * folder that does not exist, a folder that is not a model); the push form starts a
 * cvat-push job that fails the same way. Screenshots under
 * ui-tests/screenshots/cvat-*.png, light and dark (checked by eye).
 *
 * Last, an annotate job's view: a tiny model trained and an annotate job run through the
 * API (a minute or two here), then "Push to a CVAT task…" opens the push form prefilled
 * with the job's folder. Not here: a real CVAT server (tests/ has those against a
 * stand-in; see README "With a CVAT server").
 */
import {
  expect,
  test,
  type APIRequestContext,
  type Locator,
  type Page
} from '@playwright/test';
import { execFileSync } from 'child_process';
import { randomBytes } from 'crypto';
import { mkdirSync, writeFileSync } from 'fs';
import * as path from 'path';

import {
  failOnPageErrors,
  openLab,
  openPanel,
  PYTHON,
  ROOT,
  setTheme,
  shot,
  TINY_HYPERPARAMETERS,
  TOKEN
} from './helpers';

test.describe.configure({ mode: 'serial' });
failOnPageErrors();

const RUN = randomBytes(3).toString('hex');
const PULL_OUTPUT = `cvat-ui-${RUN}/task-1.zip`;
const NOT_A_MODEL = `cvat-ui-${RUN}/not-a-model`;
const ANNOTATIONS = `cvat-ui-${RUN}/annotations.zip`;

test.beforeAll(() => {
  mkdirSync(path.join(ROOT, NOT_A_MODEL), { recursive: true });
  writeFileSync(path.join(ROOT, ANNOTATIONS), 'not read: the job stops first');
});

/** Open the panel with the CVAT section in view (the Train form folded away). */
async function openCvat(page: Page): Promise<Locator> {
  await openLab(page);
  const panel = await openPanel(page);
  const train = panel.locator('.jp-CvatTrain-sectionToggle', {
    hasText: /^Train$/
  });
  if ((await train.getAttribute('aria-expanded')) === 'true') {
    await train.click();
  }
  const section = panel.locator('.jp-CvatTrain-cvat');
  await section.scrollIntoViewIfNeeded();
  return section;
}

/**
 * The view of a job opened by a start (the one whose CVAT heading is `title`, unique to
 * the test), once it failed: its message names no host, with the fix.
 */
async function failedNoHost(page: Page, title: string): Promise<Locator> {
  const view = page.locator('.jp-CvatTrain-jobView').filter({
    has: page.locator('.jp-CvatTrain-cvatJob h3', { hasText: title })
  });
  await expect(view).toHaveAttribute('data-state', 'failed', {
    timeout: 90_000
  });
  await expect(view.locator('.jp-CvatTrain-jobMessage')).toContainText(
    'no CVAT host configured'
  );
  await expect(view.locator('.jp-CvatTrain-jobMessage')).toContainText(
    'CVAT_HOST'
  );
  await expect(view.locator('.jp-CvatTrain-cvatJobFix')).toContainText(
    'environment of the Jupyter server'
  );
  return view;
}

test('test connection says no host is configured and names the fix', async ({
  page
}) => {
  const section = await openCvat(page);
  await section.locator('.jp-CvatTrain-cvatTest').click();
  const conn = section.locator('.jp-CvatTrain-cvatConnection');
  await expect(conn).toHaveClass(/jp-mod-failed/);
  await expect(conn).toContainText('no CVAT host configured');
  await expect(conn).toContainText('CVAT_HOST');
  await expect(conn).toContainText('CVAT_ACCESS_TOKEN');
  await expect(conn).toContainText('environment of the Jupyter server');
  await shot(page, 'cvat-connection-light');
});

test('the pull form tells bad input at the field, then a pull of task 1 fails with no host', async ({
  page
}) => {
  const section = await openCvat(page);
  const pull = section.locator('.jp-CvatTrain-cvatPull');
  await expect(pull).toHaveAttribute('open', '');
  // the form's own checks
  await pull.locator('#jp-CvatTrain-cvatPullTask').fill('one');
  await pull.locator('#jp-CvatTrain-cvatPullOutput').fill('x.tar');
  await pull.locator('.jp-CvatTrain-cvatPullStart').click();
  await expect(pull.locator('#jp-CvatTrain-cvatPullTask-error')).toContainText(
    '"one" is not a task id'
  );
  await expect(
    pull.locator('#jp-CvatTrain-cvatPullOutput-error')
  ).toContainText('must name a .zip');
  // the server's: the output's folder does not exist (404), shown at the output
  await pull.locator('#jp-CvatTrain-cvatPullTask').fill('1');
  await pull
    .locator('#jp-CvatTrain-cvatPullOutput')
    .fill(`cvat-ui-${RUN}/missing/task-1.zip`);
  await pull.locator('.jp-CvatTrain-cvatPullStart').click();
  await expect(
    pull.locator('#jp-CvatTrain-cvatPullOutput-error')
  ).toContainText('does not exist');
  await expect(pull.locator('#jp-CvatTrain-cvatPullTask-error')).toHaveCount(0);
  // a real job: no host in the server's environment
  await pull.locator('#jp-CvatTrain-cvatPullOutput').fill(PULL_OUTPUT);
  await pull.locator('#jp-CvatTrain-cvatPullFormat').selectOption('coco');
  await pull.locator('.jp-CvatTrain-cvatPullStart').click();
  const view = await failedNoHost(page, `CVAT task 1 → ${PULL_OUTPUT} (coco)`);
  await expect(view.locator('.jp-CvatTrain-cvatJob h3')).toContainText(
    `CVAT task 1 → ${PULL_OUTPUT} (coco)`
  );
  // only this kind's actions: no Validate / Train on (nothing was pulled), no train ones
  const actions = view.locator('.jp-CvatTrain-actions button');
  await expect(actions).toHaveText(['Cancel', 'Show output folder']);
  await expect(view.locator('.jp-CvatTrain-cvatValidate')).toHaveCount(0);
  await expect(
    page.locator('.lm-TabBar-tab', {
      hasText: 'cvat-pull: task 1 → task-1.zip'
    })
  ).not.toHaveCount(0);
  await shot(page, 'cvat-pull-failed-light');
});

test('auto-annotate: the threshold and the model folder are told at their fields', async ({
  page
}) => {
  const section = await openCvat(page);
  const form = section.locator('.jp-CvatTrain-cvatAutoAnnotate');
  await form.locator('summary').click();
  await expect(form).toHaveAttribute('open', '');
  await form.locator('#jp-CvatTrain-cvatAaTask').fill('1');
  await form.locator('#jp-CvatTrain-cvatAaThreshold').fill('2');
  await form.locator('.jp-CvatTrain-cvatAaStart').click();
  await expect(
    form.locator('#jp-CvatTrain-cvatAaThreshold-error')
  ).toContainText('from 0 to 1');
  await expect(
    form.locator('#jp-CvatTrain-cvatAaModelChoice-error')
  ).toContainText('Choose a trained model');
  await form.locator('#jp-CvatTrain-cvatAaThreshold').fill('0.4');
  await form
    .locator('#jp-CvatTrain-cvatAaModelChoice')
    .selectOption({ label: 'Another model folder…' });
  await form.locator('#jp-CvatTrain-cvatAaModel').fill(NOT_A_MODEL);
  await form.locator('.jp-CvatTrain-cvatAaStart').click();
  await expect(form.locator('#jp-CvatTrain-cvatAaModel-error')).toContainText(
    'is not a trained model folder'
  );
  await form.scrollIntoViewIfNeeded();
  await shot(page, 'cvat-auto-annotate-light');
});

test('push: a push of an annotations zip to task 1 fails with no host; dark theme', async ({
  page
}) => {
  const section = await openCvat(page);
  const form = section.locator('.jp-CvatTrain-cvatPush');
  await form.locator('summary').click();
  await form.locator('#jp-CvatTrain-cvatPushSource').fill(ANNOTATIONS);
  await form.locator('#jp-CvatTrain-cvatPushTask').fill('1');
  await form.locator('input[value="replace"]').check();
  await form.locator('.jp-CvatTrain-cvatPushStart').click();
  const view = await failedNoHost(
    page,
    `${ANNOTATIONS} → CVAT task 1 (replace)`
  );
  await expect(view.locator('.jp-CvatTrain-cvatJob h3')).toContainText(
    `${ANNOTATIONS} → CVAT task 1 (replace)`
  );
  await expect(view.locator('.jp-CvatTrain-actions button')).toHaveText([
    'Cancel',
    'Show output folder'
  ]);
  await setTheme(page, 'JupyterLab Dark');
  await shot(page, 'cvat-push-failed-dark');
  await section.locator('.jp-CvatTrain-cvatTest').click();
  await expect(section.locator('.jp-CvatTrain-cvatConnection')).toBeVisible();
  await section.scrollIntoViewIfNeeded();
  await shot(page, 'cvat-connection-dark');
  await setTheme(page, 'JupyterLab Light');
});

const auth = { Authorization: `token ${TOKEN}` };

/** POST jobs with `spec` and wait until the job ended: {id, dir, state, message}. */
async function runJob(
  request: APIRequestContext,
  spec: Record<string, unknown>,
  timeout: number
): Promise<{ id: string; dir: string; state: string; message: string }> {
  const reply = await request.post('/cvat-train/api/jobs', {
    headers: auth,
    data: spec
  });
  expect(reply.status(), await reply.text()).toBe(201);
  let job = await reply.json();
  await expect
    .poll(
      async () => {
        const r = await request.get(`/cvat-train/api/jobs/${job.id}`, {
          headers: auth
        });
        job = await r.json();
        return job.state;
      },
      { timeout, intervals: [1000, 2000] }
    )
    .toMatch(/succeeded|failed|cancelled/);
  return job;
}

test("an annotate job's view offers Push to a CVAT task, which fills the push form", async ({
  page,
  request
}) => {
  test.setTimeout(600_000);
  const data = `cvat-ui-${RUN}/train.zip`;
  execFileSync(PYTHON, [
    '-c',
    'import sys; from jupyter_cvat_train.datasets import generate_sample; ' +
      'generate_sample(sys.argv[1], images=12, width=96, height=96)',
    path.join(ROOT, data)
  ]);
  const train = await runJob(
    request,
    {
      kind: 'train',
      template: 'ssdlite320-mobilenet-v3',
      dataset: data,
      parameters: { epochs: '1', hyperparameters: TINY_HYPERPARAMETERS },
      checkpoint: null,
      device: 'cpu'
    },
    400_000
  );
  expect(train.state, train.message).toBe('succeeded');
  const annotate = await runJob(
    request,
    {
      kind: 'annotate',
      images: data,
      model: `${train.dir}/output/model`,
      device: 'cpu',
      preview: 0
    },
    150_000
  );
  expect(annotate.state, annotate.message).toBe('succeeded');

  const section = await openCvat(page);
  const panel = await openPanel(page);
  await panel
    .locator(
      `.jp-CvatTrain-job[data-job-id="${annotate.id}"] .jp-CvatTrain-jobOpen`
    )
    .click();
  const view = page.locator(
    `.jp-CvatTrain-jobView[data-job-id="${annotate.id}"]`
  );
  const push = view.locator('.jp-CvatTrain-pushToCvat');
  await expect(push).toBeEnabled();
  await push.click();
  const form = section.locator('.jp-CvatTrain-cvatPush');
  await expect(form).toHaveAttribute('open', '');
  await expect(form.locator('#jp-CvatTrain-cvatPushSource')).toHaveValue(
    annotate.dir
  );
  await form.locator('#jp-CvatTrain-cvatPushTask').fill('1');
  await form.locator('.jp-CvatTrain-cvatPushStart').click();
  const pushView = await failedNoHost(
    page,
    `${annotate.dir} → CVAT task 1 (add)`
  );
  await expect(pushView.locator('.jp-CvatTrain-cvatJob h3')).toContainText(
    `${annotate.dir} → CVAT task 1 (add)`
  );
  // the train job's view has no push (only an annotate job has annotations)
  await panel
    .locator(
      `.jp-CvatTrain-job[data-job-id="${train.id}"] .jp-CvatTrain-jobOpen`
    )
    .click();
  const trainView = page.locator(
    `.jp-CvatTrain-jobView[data-job-id="${train.id}"]`
  );
  await expect(trainView.locator('.jp-CvatTrain-finetune')).toBeVisible();
  await expect(trainView.locator('.jp-CvatTrain-pushToCvat')).toHaveCount(0);
  await panel
    .locator(
      `.jp-CvatTrain-job[data-job-id="${annotate.id}"] .jp-CvatTrain-jobOpen`
    )
    .click();
  await expect(push).toBeVisible();
  await shot(page, 'cvat-annotate-push-light');
});
