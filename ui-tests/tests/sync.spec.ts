/**
 * The Sync section in a real browser against a real `jupyter lab` and a real S3
 * endpoint (moto's server on 127.0.0.1, started by playwright.config.ts; the Jupyter
 * server is allowed to sign requests to it and has test credentials in its
 * environment): test the connection, preview a sync up (nothing moves), sync a folder up
 * and down into another folder (same files, same bytes), a delete asks first, a wrong
 * endpoint and a missing bucket are explained, and the file browser's folder menu
 * prefills the section. Screenshots under ui-tests/screenshots/sync-*.png.
 */
import {
  expect,
  test,
  type APIRequestContext,
  type Locator,
  type Page
} from '@playwright/test';
import { randomBytes } from 'crypto';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync
} from 'fs';
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

const MOTO = `http://127.0.0.1:${process.env.CVAT_UI_MOTO_PORT}`;
const BUCKET = `ui-sync-${randomBytes(4).toString('hex')}`;
const STORAGE = `s3://${BUCKET}/run`;
const WS = 'sync-ws';
const DOWN = 'sync-down';
const FILES: Record<string, number> = {
  'images/a.jpg': 1200,
  'images/b.jpg': 800,
  'labels/classes.txt': 12,
  'annotations.xml': 3000
};

test.describe.configure({ mode: 'serial' });

failOnPageErrors();

test.beforeAll(async ({ playwright }) => {
  for (const [name, size] of Object.entries(FILES)) {
    const file = path.join(ROOT, WS, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, randomBytes(size));
  }
  mkdirSync(path.join(ROOT, DOWN), { recursive: true });
  const s3 = await playwright.request.newContext();
  expect((await s3.put(`${MOTO}/${BUCKET}`)).ok()).toBe(true);
  await s3.dispose();
});

/** The bucket's objects under `run/`: key (without the prefix) -> size. */
async function bucketObjects(
  request: APIRequestContext
): Promise<Record<string, number>> {
  const reply = await request.get(`${MOTO}/${BUCKET}?list-type=2&prefix=run/`);
  expect(reply.ok()).toBe(true);
  const xml = await reply.text();
  const out: Record<string, number> = {};
  for (const m of xml.matchAll(
    /<Key>run\/([^<]*)<\/Key>[\s\S]*?<Size>(\d+)<\/Size>/g
  )) {
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Files under a folder of the server root: relative path -> bytes (hex). */
function tree(folder: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, prefix: string) => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) {
        walk(full, `${prefix}${name}/`);
      } else {
        out[prefix + name] = readFileSync(full).toString('hex');
      }
    }
  };
  walk(path.join(ROOT, folder), '');
  return out;
}

/** Open the panel with the Sync section in view (the Train form folded away). */
async function openSync(page: Page): Promise<Locator> {
  await openLab(page);
  const panel = await openPanel(page);
  const train = panel.locator('.jp-CvatTrain-sectionToggle', {
    hasText: /^Train$/
  });
  if ((await train.getAttribute('aria-expanded')) === 'true') {
    await train.click();
  }
  const section = panel.locator('.jp-CvatTrain-sync');
  await section.scrollIntoViewIfNeeded();
  return section;
}

async function fill(
  section: Locator,
  fields: { workspace?: string; storage?: string; endpoint?: string }
) {
  if (fields.workspace !== undefined) {
    await section.locator('#jp-CvatTrain-syncWorkspace').fill(fields.workspace);
  }
  if (fields.storage !== undefined) {
    await section.locator('#jp-CvatTrain-syncStorage').fill(fields.storage);
  }
  if (fields.endpoint !== undefined) {
    await section.locator('#jp-CvatTrain-syncEndpoint').fill(fields.endpoint);
  }
}

/** The ids of the sync jobs that are not previews, from the API. */
async function syncJobs(request: APIRequestContext): Promise<string[]> {
  const { jobs } = (await api(request, 'jobs')) as {
    jobs: { id: string; kind: string; spec: Record<string, unknown> | null }[];
  };
  return jobs.filter(j => j.kind === 'sync' && !j.spec?.dry_run).map(j => j.id);
}

/**
 * Click `button` (a sync start) and wait until the new sync job's view, opened by the
 * start, shows its end summary.
 */
async function startAndFinish(
  page: Page,
  request: APIRequestContext,
  button: Locator,
  confirm?: Locator
) {
  const before = new Set(await syncJobs(request));
  await button.click();
  if (confirm) {
    await confirm.click();
  }
  let jobId = '';
  await expect(async () => {
    const fresh = (await syncJobs(request)).filter(id => !before.has(id));
    expect(fresh).toHaveLength(1);
    jobId = fresh[0];
  }).toPass({ timeout: 30_000 });
  const view = page.locator(`.jp-CvatTrain-jobView[data-job-id="${jobId}"]`);
  await expect(view).toHaveAttribute('data-state', 'succeeded', {
    timeout: 90_000
  });
  await expect(view.locator('.jp-CvatTrain-syncSummary')).toBeVisible();
  return view;
}

test('test connection names the identity; preview shows the plan and moves nothing', async ({
  page,
  request
}) => {
  const section = await openSync(page);
  await fill(section, { workspace: WS, storage: STORAGE, endpoint: MOTO });
  await section.locator('.jp-CvatTrain-syncTest').click();
  const check = section.locator('.jp-CvatTrain-syncCheck');
  await expect(check).toHaveClass(/jp-mod-ok/);
  await expect(check.locator('.jp-CvatTrain-syncIdentity')).toContainText(
    'environment variables'
  );
  await expect(check.locator('.jp-CvatTrain-syncIdentity')).toContainText(
    '…y-id'
  );
  await expect(check).not.toContainText('ui-test-secret');
  for (const step of ['credentials', 'endpoint', 'bucket', 'list', 'write']) {
    await expect(check.locator(`[data-step="${step}"]`)).toHaveAttribute(
      'data-status',
      'ok'
    );
  }
  await section.locator('.jp-CvatTrain-syncPreviewUp').click();
  const preview = section.locator('.jp-CvatTrain-syncPreview');
  await expect(preview.locator('.jp-CvatTrain-planTable tbody tr')).toHaveCount(
    4,
    { timeout: 60_000 }
  );
  await expect(preview.locator('.jp-CvatTrain-syncTotals')).toContainText(
    'Would copy 4, update 0, delete 0'
  );
  await expect(preview.locator('tr[data-op="copy"]').first()).toContainText(
    'annotations.xml'
  ); // largest first
  await section.locator('.jp-CvatTrain-syncPreview').scrollIntoViewIfNeeded();
  await shot(page, 'sync-preview-light');
  expect(await bucketObjects(request)).toEqual({});
});

test('sync a folder up, then down into another folder: same files, same bytes', async ({
  page,
  request
}) => {
  const section = await openSync(page);
  await fill(section, { workspace: WS, storage: STORAGE, endpoint: MOTO });
  let view = await startAndFinish(
    page,
    request,
    section.locator('.jp-CvatTrain-syncUp')
  );
  await expect(view.locator('[data-count="copied"] td')).toHaveText('4');
  await expect(view.locator('[data-count="failed"] td')).toHaveText('0');
  await shot(page, 'sync-job-up-light');
  expect(await bucketObjects(request)).toEqual(FILES);

  await openPanel(page);
  await fill(section, { workspace: DOWN });
  view = await startAndFinish(
    page,
    request,
    section.locator('.jp-CvatTrain-syncDown')
  );
  await expect(view.locator('[data-count="copied"] td')).toHaveText('4');
  expect(tree(DOWN)).toEqual(tree(WS));
  // each pair is offered again, once (other spec files may have added their own)
  await openPanel(page);
  for (const folder of [WS, DOWN]) {
    await expect(
      section.locator('#jp-CvatTrain-syncRecent option', {
        hasText: `${folder} ⇄ ${STORAGE}`
      })
    ).toHaveCount(1);
  }
});

test('a sync that deletes asks first, naming how many files', async ({
  page,
  request
}) => {
  expect(
    (
      await request.put(`${MOTO}/${BUCKET}/run/extra.bin`, {
        data: Buffer.from('extra')
      })
    ).ok()
  ).toBe(true);
  const section = await openSync(page);
  await fill(section, { workspace: WS, storage: STORAGE, endpoint: MOTO });
  await section.locator('.jp-CvatTrain-syncDelete').check();
  await section.locator('.jp-CvatTrain-syncUp').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('delete 1 file');
  await expect(dialog).toContainText(STORAGE);
  await shot(page, 'sync-delete-confirm-light');
  await dialog.locator('button', { hasText: 'Cancel' }).click();
  await expect(dialog).toBeHidden();
  expect(Object.keys(await bucketObjects(request))).toContain('extra.bin');

  const view = await startAndFinish(
    page,
    request,
    section.locator('.jp-CvatTrain-syncUp'),
    dialog.locator('button', { hasText: /^Delete 1 file and sync$/ })
  );
  await expect(view.locator('[data-count="deleted"] td')).toHaveText('1');
  expect(await bucketObjects(request)).toEqual(FILES);
});

test('a wrong endpoint and a missing bucket are explained with the fix', async ({
  page
}) => {
  const section = await openSync(page);
  await fill(section, {
    workspace: WS,
    storage: STORAGE,
    endpoint: 'http://127.0.0.1:1'
  });
  await section.locator('.jp-CvatTrain-syncTest').click();
  await expect(section.locator('.jp-CvatTrain-error').first()).toContainText(
    'allowed_endpoint_urls'
  );
  await section.locator('.jp-CvatTrain-syncUp').click();
  await expect(section.locator('.jp-CvatTrain-syncProblem')).toContainText(
    'is not an endpoint this server may send requests to'
  );
  await shot(page, 'sync-wrong-endpoint-light');

  await fill(section, {
    storage: 's3://no-such-bucket-here/x',
    endpoint: MOTO
  });
  await section.locator('.jp-CvatTrain-syncTest').click();
  const bucket = section.locator('[data-step="bucket"]');
  await expect(bucket).toHaveAttribute('data-status', 'failed');
  await expect(bucket).toContainText('Create the bucket first');
  await shot(page, 'sync-missing-bucket-light');
});

test("the file browser's folder menu opens the Sync section prefilled", async ({
  page
}) => {
  await openLab(page);
  await openSidebar(page, 'filebrowser');
  const listing = page.locator('.jp-DirListing-content');
  await listing
    .locator('.jp-DirListing-itemText', { hasText: new RegExp(`^${WS}$`) })
    .click({ button: 'right' });
  const up = page.locator('.lm-Menu-itemLabel', {
    hasText: /^Sync to object storage…$/
  });
  const down = page.locator('.lm-Menu-itemLabel', {
    hasText: /^Sync from object storage…$/
  });
  await expect(up).toBeVisible();
  await expect(down).toBeVisible();
  await shot(page, 'sync-context-menu-light');
  await down.click();
  const panel = page.locator('#jupyter-cvat-train-panel');
  await expect(panel.locator('#jp-CvatTrain-syncWorkspace')).toHaveValue(WS);
  await expect(panel.locator('#jp-CvatTrain-syncStorage')).toHaveValue(STORAGE);
  await expect(panel.locator('#jp-CvatTrain-syncEndpoint')).toHaveValue(MOTO);
  await expect(panel.locator('.jp-CvatTrain-syncDown')).toHaveClass(
    /jp-mod-accept/
  );
  // not offered on a file
  await openSidebar(page, 'filebrowser');
  await page.keyboard.press('Escape');
  await listing
    .locator('.jp-DirListing-itemText', { hasText: new RegExp(`^${WS}$`) })
    .dblclick();
  await listing
    .locator('.jp-DirListing-itemText', { hasText: /^annotations\.xml$/ })
    .click({ button: 'right' });
  await expect(page.locator('.lm-Menu')).toBeVisible();
  await expect(up).toBeHidden();
  await page.keyboard.press('Escape');
});

test('dark theme: the section with a check and a preview, and a job view', async ({
  page,
  request
}) => {
  const section = await openSync(page);
  await setTheme(page, 'JupyterLab Dark');
  try {
    await fill(section, { workspace: WS, storage: STORAGE, endpoint: MOTO });
    await section.locator('.jp-CvatTrain-syncTest').click();
    await expect(section.locator('.jp-CvatTrain-syncCheck')).toBeVisible();
    await shot(page, 'sync-check-dark');
    await section.locator('.jp-CvatTrain-syncPreviewDown').click();
    await expect(
      section.locator('.jp-CvatTrain-syncPreview .jp-CvatTrain-syncTotals')
    ).toContainText('Would copy 0', { timeout: 60_000 });
    await shot(page, 'sync-preview-dark');
    await startAndFinish(
      page,
      request,
      section.locator('.jp-CvatTrain-syncUp')
    );
    await shot(page, 'sync-job-dark');
  } finally {
    await setTheme(page, 'JupyterLab Light');
  }
});
