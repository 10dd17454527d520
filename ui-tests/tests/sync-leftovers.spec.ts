/**
 * Follow-ups of the Sync section in a real browser against a real `jupyter lab`: a sync
 * down (from a file:// storage folder inside the server root) shows its new files in the
 * file browser that shows its workspace, and the sync job's view offers only the
 * actions of a sync job (no TensorBoard, Run again, Resume, Fine-tune or Auto-annotate).
 * Screenshots under ui-tests/screenshots/sync-leftovers-*.png, light and dark.
 */
import { expect, test, type APIRequestContext } from '@playwright/test';
import { randomBytes } from 'crypto';
import { mkdirSync, rmSync, writeFileSync } from 'fs';
import * as path from 'path';

import {
  api,
  failOnPageErrors,
  openLab,
  openPanel,
  openSidebar,
  ROOT,
  setTheme,
  shot
} from './helpers';

const STORE = 'h6-store';
const DOWN = 'h6-down';
const FILES = ['first.txt', 'second.bin'];

failOnPageErrors();

test.beforeAll(() => {
  mkdirSync(path.join(ROOT, DOWN), { recursive: true });
  for (const name of FILES) {
    const file = path.join(ROOT, STORE, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, randomBytes(100));
  }
});

// The file browser's folder is kept in the workspace and shown again by the next page
// load; a folder that is gone is restored as the root, which the other spec files expect.
test.afterAll(() => {
  rmSync(path.join(ROOT, DOWN), { recursive: true, force: true });
  rmSync(path.join(ROOT, STORE), { recursive: true, force: true });
});

async function syncJobIds(request: APIRequestContext): Promise<string[]> {
  const { jobs } = (await api(request, 'jobs')) as {
    jobs: { id: string; kind: string }[];
  };
  return jobs.filter(j => j.kind === 'sync').map(j => j.id);
}

test('a sync down refreshes the file browser; its job view has only the sync actions', async ({
  page,
  request
}) => {
  await openLab(page);
  // the file browser shows the (empty) workspace folder
  await openSidebar(page, 'filebrowser');
  const listing = page.locator('.jp-DirListing-content');
  await listing
    .locator('.jp-DirListing-itemText', { hasText: new RegExp(`^${DOWN}$`) })
    .dblclick();
  await expect(page.locator('.jp-BreadCrumbs')).toContainText(DOWN);
  await expect(listing.locator('.jp-DirListing-item')).toHaveCount(0);

  const panel = await openPanel(page);
  const train = panel.locator('.jp-CvatTrain-sectionToggle', {
    hasText: /^Train$/
  });
  if ((await train.getAttribute('aria-expanded')) === 'true') {
    await train.click();
  }
  const section = panel.locator('.jp-CvatTrain-sync');
  await section.scrollIntoViewIfNeeded();
  await section.locator('#jp-CvatTrain-syncWorkspace').fill(DOWN);
  await section
    .locator('#jp-CvatTrain-syncStorage')
    .fill(`file://${path.join(ROOT, STORE)}`);
  await section.locator('#jp-CvatTrain-syncEndpoint').fill('');
  const before = new Set(await syncJobIds(request));
  await section.locator('.jp-CvatTrain-syncDown').click();
  let jobId = '';
  await expect(async () => {
    const fresh = (await syncJobIds(request)).filter(id => !before.has(id));
    expect(fresh).toHaveLength(1);
    jobId = fresh[0];
  }).toPass({ timeout: 30_000 });
  const view = page.locator(`.jp-CvatTrain-jobView[data-job-id="${jobId}"]`);
  await expect(view).toHaveAttribute('data-state', 'succeeded', {
    timeout: 90_000
  });
  await expect(view.locator('[data-count="copied"] td')).toHaveText('2');

  // only the actions of a sync job
  await expect(view.locator('.jp-CvatTrain-actions button')).toHaveText([
    'Cancel',
    'Show output folder'
  ]);
  for (const trainOnly of [
    'tensorboard',
    'rerun',
    'resume',
    'finetune',
    'autoAnnotate'
  ]) {
    await expect(view.locator(`.jp-CvatTrain-${trainOnly}`)).toHaveCount(0);
  }
  await shot(page, 'sync-leftovers-job-light');

  // the file browser lists the new files
  await openSidebar(page, 'filebrowser');
  for (const name of FILES) {
    await expect(
      listing.locator('.jp-DirListing-itemText', {
        hasText: new RegExp(`^${name.replace('.', '\\.')}$`)
      })
    ).toBeVisible();
  }
  await shot(page, 'sync-leftovers-browser-light');

  await setTheme(page, 'JupyterLab Dark');
  try {
    await shot(page, 'sync-leftovers-browser-dark');
    await openPanel(page);
    await expect(view).toBeVisible();
    await shot(page, 'sync-leftovers-job-dark');
  } finally {
    await setTheme(page, 'JupyterLab Light');
  }
});
