/**
 * Auto-annotation in a real browser against a real `jupyter lab` (token and XSRF checks
 * on): a tiny model trained in the test (1 epoch at 96 px, through the API), the file
 * browser's entries on a folder and a zip and the forms they prefill, bad input told
 * before start, the mapping table renaming and dropping labels, the annotate job with a
 * corrupt image among good ones, its preview pictures and its zip; light and dark
 * screenshots under ui-tests/screenshots/annotate-*.png (checked by eye).
 */
import {
  expect,
  test,
  type APIRequestContext,
  type Page
} from '@playwright/test';
import { execFileSync } from 'child_process';
import * as path from 'path';

import {
  failOnPageErrors,
  openLab,
  openPanel,
  openSidebar,
  PYTHON,
  ROOT,
  setTheme,
  shot,
  TINY_HYPERPARAMETERS,
  TOKEN,
  workspace
} from './helpers';

test.describe.configure({ mode: 'serial' });
failOnPageErrors();

let trainJob = { id: '', dir: '' };
let annotateJob = '';

const auth = { Authorization: `token ${TOKEN}` };

/** A job as GET jobs/{id} gives it (the fields read here). */
interface IJobReply {
  id: string;
  dir: string;
  state: string;
  message: string;
  outputs: Record<string, unknown>;
}

async function waitForJob(
  request: APIRequestContext,
  id: string,
  timeout: number
): Promise<IJobReply> {
  let job = {} as IJobReply;
  await expect
    .poll(
      async () => {
        const reply = await request.get(`/cvat-train/api/jobs/${id}`, {
          headers: auth
        });
        job = await reply.json();
        return job.state;
      },
      { timeout, intervals: [500, 1000] }
    )
    .toMatch(/succeeded|failed|cancelled/);
  return job;
}

test.beforeAll(async ({ request }) => {
  test.setTimeout(300_000);
  execFileSync(PYTHON, [
    path.join(__dirname, '..', 'scripts', 'make_annotate_data.py'),
    ROOT
  ]);
  // a tiny model to annotate with, trained through the API
  const reply = await request.post('/cvat-train/api/jobs', {
    headers: auth,
    data: {
      kind: 'train',
      template: 'ssdlite320-mobilenet-v3',
      dataset: 'annotate/train.zip',
      parameters: { epochs: '1', hyperparameters: TINY_HYPERPARAMETERS },
      checkpoint: null,
      device: 'cpu'
    }
  });
  expect(reply.status(), await reply.text()).toBe(201);
  const job = await reply.json();
  const done = await waitForJob(request, job.id, 280_000);
  expect(done.state, done.message).toBe('succeeded');
  trainJob = { id: job.id, dir: job.dir };
});

async function openFolder(page: Page, name: string) {
  await openSidebar(page, 'filebrowser');
  const listing = page.locator('.jp-DirListing-content');
  await listing
    .locator('.jp-DirListing-itemText', { hasText: new RegExp(`^${name}$`) })
    .dblclick();
  return listing;
}

async function contextMenu(page: Page, itemName: string) {
  const listing = page.locator('.jp-DirListing-content');
  await listing
    .locator('.jp-DirListing-itemText', {
      hasText: new RegExp(`^${itemName.replace('.', '\\.')}$`)
    })
    .click({ button: 'right' });
  const menu = page.locator('.lm-Menu').last();
  await expect(menu).toBeVisible();
  return menu;
}

const entry = (page: Page, label: string) =>
  page.locator('.lm-Menu-itemLabel', { hasText: new RegExp(`^${label}$`) });

const annotateTab = (page: Page) => page.locator('.jp-CvatTrain-annotate');

test('the file browser offers validate, train and auto-annotate on a folder and a zip, and prefills their forms', async ({
  page
}) => {
  await openLab(page);
  await page.goto(
    `/lab/workspaces/${workspace()}/tree/annotate?token=${TOKEN}`
  );
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
  await openSidebar(page, 'filebrowser');
  // a folder
  await contextMenu(page, 'batch');
  for (const label of [
    'Validate CVAT export',
    'Train a model on this export…',
    'Auto-annotate with a model…'
  ]) {
    await expect(entry(page, label)).toBeVisible();
  }
  await shot(page, 'annotate-01-context-menu-folder-light');
  await entry(page, 'Auto-annotate with a model…').click();
  const form = annotateTab(page);
  await expect(form).toBeVisible();
  await expect(form.locator('#jp-CvatTrain-annotateImages')).toHaveValue(
    'annotate/batch'
  );
  await expect(form.locator('.jp-CvatTrain-lookup').first()).toContainText(
    'A folder with 5 images'
  );

  // a zip: train on it (the Train form prefilled), auto-annotate it (the tab prefilled)
  await openSidebar(page, 'filebrowser');
  await contextMenu(page, 'train.zip');
  for (const label of [
    'Validate CVAT export',
    'Train a model on this export…',
    'Auto-annotate with a model…'
  ]) {
    await expect(entry(page, label)).toBeVisible();
  }
  await shot(page, 'annotate-02-context-menu-zip-light');
  await entry(page, 'Train a model on this export…').click();
  const panel = page.locator('#jupyter-cvat-train-panel');
  await expect(panel.locator('#jp-CvatTrain-trainDataset')).toHaveValue(
    'annotate/train.zip'
  );
  await openSidebar(page, 'filebrowser');
  await contextMenu(page, 'batch.zip');
  await entry(page, 'Auto-annotate with a model…').click();
  await expect(form.locator('#jp-CvatTrain-annotateImages')).toHaveValue(
    'annotate/batch.zip'
  );
  await expect(form.locator('.jp-CvatTrain-lookup').first()).toContainText(
    'A zip with 5 images'
  );
  // not on a file that is neither a folder nor a zip
  await openSidebar(page, 'filebrowser');
  await page.keyboard.press('Escape');
  await openFolder(page, 'batch');
  const menu = await contextMenu(page, 'new_0.jpg');
  await expect(menu).toBeVisible();
  await expect(entry(page, 'Auto-annotate with a model…')).toBeHidden();
  await page.keyboard.press('Escape');
});

test("a train job's view opens Auto-annotate with its model; bad input is told before start", async ({
  page
}) => {
  await openLab(page);
  const panel = await openPanel(page);
  const row = panel.locator(
    `.jp-CvatTrain-job[data-job-id="${trainJob.id}"] .jp-CvatTrain-jobOpen`
  );
  await row.click();
  const view = page.locator(
    `.jp-CvatTrain-jobView[data-job-id="${trainJob.id}"]`
  );
  await expect(view).toBeVisible();
  await view.locator('.jp-CvatTrain-autoAnnotate').click();
  const form = annotateTab(page);
  await expect(form).toBeVisible();
  const choice = form.locator('#jp-CvatTrain-annotateModelChoice');
  await expect(choice).toHaveValue(`${trainJob.dir}/output/model`);
  await expect(form.locator('.jp-CvatTrain-lookup').nth(1)).toContainText(
    'The model has 3 labels'
  );

  // an images folder with no image
  const images = form.locator('#jp-CvatTrain-annotateImages');
  await images.fill('annotate/empty');
  await expect(
    form.locator('#jp-CvatTrain-annotateImages-error')
  ).toContainText('no images found in annotate/empty');
  const start = form.locator('.jp-CvatTrain-annotateStart');
  await expect(start).toBeDisabled();
  // a model folder without classes.csv
  await images.fill('annotate/batch');
  await choice.selectOption('__path__');
  await form
    .locator('#jp-CvatTrain-annotateModel')
    .fill('annotate/not-a-model');
  await expect(form.locator('#jp-CvatTrain-annotateModel-error')).toContainText(
    'has no classes.csv'
  );
  await expect(start).toBeDisabled();
  await expect(start).toHaveAttribute('title', /The model cannot be used/);
  await shot(page, 'annotate-03-bad-input-light');

  // a CVAT export as input: its labels are the targets; a target it lacks is flagged
  await choice.selectOption(`${trainJob.dir}/output/model`);
  await images.fill('annotate/train.zip');
  await expect(form.locator('.jp-CvatTrain-lookup').first()).toContainText(
    'A CVAT export (coco) with 12 images'
  );
  const circle = form.locator(
    '.jp-CvatTrain-mapping tr[data-model="circle"] input'
  );
  await expect(circle).toHaveValue('circle');
  await circle.fill('ring');
  await expect(
    form.locator('.jp-CvatTrain-mapping tr[data-model="circle"]')
  ).toContainText('The export has no label "ring"');
  await expect(start).toBeDisabled();
  await expect(start).toHaveAttribute('title', /no label for circle → ring/);
  await expect(form.locator('#jp-CvatTrain-annotateKeep')).toBeEnabled();
  await shot(page, 'annotate-04-mapping-flagged-light');
});

test('auto-annotate a folder: the mapping renames and drops labels, a corrupt image is listed, previews and the zip are shown', async ({
  page,
  request
}) => {
  test.setTimeout(300_000);
  await openLab(page);
  const panel = await openPanel(page);
  await panel
    .locator(
      `.jp-CvatTrain-job[data-job-id="${trainJob.id}"] .jp-CvatTrain-jobOpen`
    )
    .click();
  await page
    .locator(`.jp-CvatTrain-jobView[data-job-id="${trainJob.id}"]`)
    .locator('.jp-CvatTrain-autoAnnotate')
    .click();
  const form = annotateTab(page);
  await form.locator('#jp-CvatTrain-annotateImages').fill('annotate/batch');
  await expect(form.locator('.jp-CvatTrain-lookup').first()).toContainText(
    'A folder with 5 images'
  );
  await expect(form.locator('#jp-CvatTrain-annotateKeep')).toBeDisabled();
  const row = (label: string) =>
    form.locator(`.jp-CvatTrain-mapping tr[data-model="${label}"]`);
  await expect(row('circle').locator('input')).toHaveValue('circle');
  await row('circle').locator('input').fill('ring');
  await row('triangle').locator('button').click();
  await expect(row('triangle')).toContainText('dropped');
  await expect(form.locator('.jp-CvatTrain-mappingNotes')).toContainText(
    'Dropped model labels: triangle'
  );
  await form.locator('#jp-CvatTrain-annotateThreshold').fill('0');
  await expect(form.locator('.jp-CvatTrain-thresholdValue')).toHaveText('0.00');
  await form.locator('#jp-CvatTrain-annotateMaxDet').fill('5');
  await form.locator('#jp-CvatTrain-annotatePreview').fill('2');
  await form.locator('#jp-CvatTrain-annotateFormat').selectOption('coco');
  await form.locator('#jp-CvatTrain-annotateDevice').selectOption('cpu');
  await shot(page, 'annotate-05-form-light');
  const start = form.locator('.jp-CvatTrain-annotateStart');
  await expect(start).toBeEnabled();
  await start.click();

  const view = page.locator('.jp-CvatTrain-jobView[data-job-id*="annotate"]');
  await expect(view).toBeVisible();
  annotateJob = (await view.getAttribute('data-job-id')) ?? '';
  await expect(view).toHaveAttribute('data-state', 'succeeded', {
    timeout: 240_000
  });
  // the notification offers the zip
  const toast = page.locator('.Toastify__toast', {
    hasText: `annotate ${annotateJob} succeeded`
  });
  await expect(
    toast.getByRole('button', { name: 'Show in file browser' })
  ).toBeVisible();
  // the corrupt image is listed with its reason, the others were annotated
  const failed = view.locator('.jp-CvatTrain-failedImages');
  await expect(failed).toContainText('broken.jpg');
  await expect(failed).toContainText('reading');
  await expect(view.locator('.jp-CvatTrain-annotateTotals')).toContainText(
    'on 4 of 5 images (1 could not be read)'
  );
  // per-label counts: the renamed label, not the dropped one
  const counts = view.locator('.jp-CvatTrain-labelCounts');
  await expect(counts).toContainText('ring');
  await expect(counts).toContainText('square');
  await expect(counts).not.toContainText('triangle');
  await expect(counts).not.toContainText('circle');
  // the previews are pictures that loaded
  const pictures = view.locator('.jp-CvatTrain-preview img');
  await expect(pictures).toHaveCount(2);
  await expect
    .poll(() =>
      pictures.evaluateAll(imgs =>
        imgs.map(i => (i as HTMLImageElement).naturalWidth)
      )
    )
    .toEqual([96, 96]);
  // the zip exists, holds the renamed labels; download gives its bytes
  const job = await waitForJob(request, annotateJob, 10_000);
  const zipPath = job.outputs.output as string;
  expect(zipPath).toBe(`${job.dir}/output/annotations.zip`);
  expect(job.outputs.labels).toEqual(['ring', 'square']);
  expect(job.outputs.dropped_labels).toEqual(['triangle']);
  const categories = execFileSync(PYTHON, [
    '-c',
    'import json, sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); ' +
      'print(",".join(c["name"] for c in json.loads(z.read("annotations/instances_default.json"))["categories"]))',
    path.join(ROOT, zipPath)
  ])
    .toString()
    .trim();
  expect(categories).toBe('ring,square');
  await expect(view.locator('.jp-CvatTrain-outputPath')).toHaveText(zipPath);
  const download = page.waitForEvent('download');
  await view.locator('.jp-CvatTrain-download').click();
  expect((await download).suggestedFilename()).toBe('annotations.zip');
  await view.locator('.jp-CvatTrain-previews').scrollIntoViewIfNeeded();
  await shot(page, 'annotate-06-job-light');
  // show in file browser: the browser goes to the zip's folder
  await view.locator('.jp-CvatTrain-showOutput').click();
  await expect(
    page.locator('.jp-DirListing-itemText', { hasText: /^annotations\.zip$/ })
  ).toBeVisible();
  // Run again: the form comes back with the job's settings and mapping
  await page
    .locator('.lm-TabBar-tab', { hasText: /^Auto-annotate$/ })
    .first()
    .click();
  await form.locator('#jp-CvatTrain-annotateThreshold').fill('0.5');
  await form.locator('#jp-CvatTrain-annotatePreview').fill('4');
  await row('circle').locator('input').fill('circle');
  await row('triangle').locator('input').fill('triangle');
  await page
    .locator('.lm-TabBar-tab', { hasText: /^annotate:/ })
    .first()
    .click();
  await view.locator('.jp-CvatTrain-rerun').click();
  await expect(form.locator('#jp-CvatTrain-annotateImages')).toHaveValue(
    'annotate/batch'
  );
  await expect(form.locator('.jp-CvatTrain-thresholdValue')).toHaveText('0.00');
  await expect(form.locator('#jp-CvatTrain-annotatePreview')).toHaveValue('2');
  await expect(form.locator('#jp-CvatTrain-annotateFormat')).toHaveValue(
    'coco'
  );
  await expect(row('circle').locator('input')).toHaveValue('ring');
  await expect(row('triangle').locator('input')).toHaveValue('');
  await expect(row('square').locator('input')).toHaveValue('square');
});

test('dark theme: the Auto-annotate tab and the annotate job view', async ({
  page
}) => {
  expect(annotateJob).not.toBe('');
  await openLab(page);
  // the Auto-annotate tab came back with the layout
  await expect(
    page.locator('.lm-TabBar-tab', { hasText: /^Auto-annotate$/ })
  ).toHaveCount(1);
  await setTheme(page, 'JupyterLab Dark');
  await page
    .locator('.lm-TabBar-tab', { hasText: /^annotate:/ })
    .first()
    .click();
  const view = page.locator(
    `.jp-CvatTrain-jobView[data-job-id="${annotateJob}"]`
  );
  await expect(view).toBeVisible();
  await expect(view.locator('.jp-CvatTrain-preview img')).toHaveCount(2);
  await view.locator('.jp-CvatTrain-previews').scrollIntoViewIfNeeded();
  await shot(page, 'annotate-07-job-dark');
  await openSidebar(page, 'filebrowser');
  await page.goto(
    `/lab/workspaces/${workspace()}/tree/annotate?token=${TOKEN}`
  );
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
  await openSidebar(page, 'filebrowser');
  await contextMenu(page, 'batch');
  await entry(page, 'Auto-annotate with a model…').click();
  const form = annotateTab(page);
  await expect(form.locator('.jp-CvatTrain-mapping')).toBeVisible();
  await form
    .locator('.jp-CvatTrain-mapping tr[data-model="circle"] input')
    .fill('ring');
  await expect(form.locator('.jp-CvatTrain-lookup').first()).toContainText(
    'A folder with 5 images'
  );
  await expect(form.locator('.jp-CvatTrain-annotateStart')).toBeEnabled();
  await shot(page, 'annotate-08-form-dark');
  await setTheme(page, 'JupyterLab Light');
});
