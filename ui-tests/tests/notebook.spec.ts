/**
 * The live job view in a notebook, in a real browser against the real `jupyter lab` of
 * playwright.config.ts (token and XSRF on) and its real Python kernel: a cell starts a
 * short training with `job = %cvat_train train ...` and displays the Job; its output is the live
 * card (progress moves, the log and the chart fill in), it comes back from the saved
 * output after a page reload with the kernel shut down, and ends green. A job id the
 * server lacks is named. Screenshots light and dark under ui-tests/screenshots/notebook-*.
 */
import {
  expect,
  test,
  type APIRequestContext,
  type Locator,
  type Page
} from '@playwright/test';
import { execFileSync } from 'child_process';
import { existsSync } from 'fs';
import * as path from 'path';

import {
  failOnPageErrors,
  PYTHON,
  ROOT,
  SCREENSHOTS,
  setTheme,
  shot,
  TOKEN
} from './helpers';

const NOTEBOOK = 'notebook-job-view.ipynb';
const DATASET = 'notebook-data/sample.zip';
const MIME = 'application/vnd.jupyter-cvat-train.job+json';
/** Tiny: 12 images of 96 px, no pretrained weights (panel.spec.ts trains the same way). */
const HYPERPARAMETERS = [
  'batch_size=4',
  'image_size=96',
  'pretrained=false',
  'num_workers=0',
  'precise_bn_batches=1',
  'warmup_iters=1'
].join(',');

const source = (text: string) =>
  text.split(/(?<=\n)/).filter(line => line.length > 0);

const NOTEBOOK_JSON = {
  nbformat: 4,
  nbformat_minor: 5,
  metadata: {
    kernelspec: {
      name: 'python3',
      display_name: 'Python 3 (ipykernel)',
      language: 'python'
    },
    language_info: { name: 'python' }
  },
  cells: [
    {
      cell_type: 'code',
      id: 'ready',
      metadata: {},
      execution_count: null,
      outputs: [],
      source: ['print("kernel ready")']
    },
    {
      cell_type: 'code',
      id: 'train',
      metadata: {},
      execution_count: null,
      outputs: [],
      source: source(
        [
          '%load_ext jupyter_cvat_train',
          '',
          `job = %cvat_train train ${DATASET} --hp ${HYPERPARAMETERS} --epochs 6 --device cpu`,
          'job'
        ].join('\n')
      )
    },
    {
      cell_type: 'code',
      id: 'elsewhere',
      metadata: {},
      execution_count: null,
      outputs: [],
      source: source(
        [
          'from IPython.display import display',
          '',
          `display({"${MIME}": {"jobId": "20260101-000000-train-elsewhere", "name": "a job of another runs root", "kind": "train"},`,
          '         "text/plain": "a job of another runs root"}, raw=True)'
        ].join('\n')
      )
    }
  ]
};

test.describe.configure({ mode: 'serial' });
failOnPageErrors();

test.beforeAll(async ({ request }) => {
  if (!existsSync(path.join(ROOT, DATASET))) {
    execFileSync(PYTHON, [
      '-c',
      'import sys; from jupyter_cvat_train.datasets import generate_sample; ' +
        'generate_sample(sys.argv[1], images=12, width=96, height=96)',
      path.join(ROOT, DATASET)
    ]);
  }
  const reply = await request.put(`/api/contents/${NOTEBOOK}`, {
    headers: { Authorization: `token ${TOKEN}` },
    data: { type: 'notebook', format: 'json', content: NOTEBOOK_JSON }
  });
  expect(reply.ok()).toBe(true);
});

async function openNotebook(page: Page): Promise<Locator> {
  await page.goto(`/lab/workspaces/notebook/tree/${NOTEBOOK}?token=${TOKEN}`);
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
  const notebook = page.locator('.jp-NotebookPanel:visible');
  await expect(notebook.locator('.jp-Cell').nth(1)).toContainText(
    '%cvat_train train'
  );
  return notebook;
}

async function shutDownKernels(request: APIRequestContext): Promise<void> {
  const headers = { Authorization: `token ${TOKEN}` };
  const kernels = (await (
    await request.get('/api/kernels', { headers })
  ).json()) as { id: string }[];
  for (const kernel of kernels) {
    const reply = await request.delete(`/api/kernels/${kernel.id}`, {
      headers
    });
    expect(reply.status()).toBe(204);
  }
}

test('a cell shows the live job view; after a reload without a kernel it comes back and ends green', async ({
  page,
  request
}) => {
  test.setTimeout(600_000);
  let notebook = await openNotebook(page);
  const cells = notebook.locator('.jp-Cell');
  const run = async (index: number) => {
    await cells.nth(index).locator('.jp-InputArea-editor').click();
    await page.keyboard.press('Shift+Enter');
  };
  // the kernel of the notebook's kernelspec starts: a run before the session has its
  // kernel runs nothing, so the harmless first cell runs until the kernel answers it
  await expect(async () => {
    // a run before the session has its kernel asks which kernel: the notebook's
    const dialog = page.locator('.jp-Dialog', { hasText: 'Select Kernel' });
    if (await dialog.isVisible()) {
      await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
      await expect(dialog).toHaveCount(0);
    }
    await run(0);
    await expect(cells.nth(0).locator('.jp-OutputArea-output')).toContainText(
      'kernel ready',
      { timeout: 10_000 }
    );
  }).toPass({ timeout: 180_000 });
  // then the training cell and the cell of a job id the server lacks, once each
  await run(1);
  await run(2);

  let card = notebook
    .locator('.jp-Cell')
    .nth(1)
    .locator('.jp-CvatTrain-jobOutputCard');
  await expect(card).toHaveAttribute('data-phase', 'known', {
    timeout: 120_000
  });
  const jobId = (await card.getAttribute('data-job-id')) ?? '';
  expect(jobId).toMatch(/train/);
  // the server lists the kernel's job: one runs root
  const listed = await request.get(`/cvat-train/api/jobs/${jobId}`, {
    headers: { Authorization: `token ${TOKEN}` }
  });
  expect(listed.ok()).toBe(true);

  // the live view moves: two different progress values while the job runs
  const progress = card.locator('[role="progressbar"]');
  const seen = new Set<string>();
  await expect
    .poll(
      async () => {
        const state = await card.getAttribute('data-state');
        if (state === 'running' && (await progress.count()) > 0) {
          seen.add((await progress.getAttribute('aria-valuetext')) ?? '');
        }
        return seen.size >= 2 ? 'moved' : state;
      },
      { timeout: 240_000, intervals: [100] }
    )
    .toBe('moved');
  await expect(card.locator('.jp-CvatTrain-logLine').first()).toBeVisible();
  await expect(card.locator('.jp-CvatTrain-cancel')).toBeEnabled();
  // the job id the server does not have is named, no spinner
  const elsewhere = notebook
    .locator('.jp-Cell')
    .nth(2)
    .locator('.jp-CvatTrain-jobOutputCard');
  await expect(elsewhere).toHaveAttribute('data-phase', 'missing');
  await expect(elsewhere).toContainText(
    "is not in this server's runs root, or deleted"
  );
  await shot(page, 'notebook-running-light');
  await elsewhere.screenshot({
    path: path.join(SCREENSHOTS, 'notebook-missing-light.png')
  });

  // save (the outputs were made here: the notebook is signed as trusted), stop the
  // kernel, reload: the card comes back from the saved output alone
  await page.keyboard.press('Control+s');
  await expect(
    page.locator('.jp-mod-current .jp-mod-dirty, .lm-TabBar-tab.jp-mod-dirty')
  ).toHaveCount(0);
  await shutDownKernels(request);
  await page.reload();
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
  notebook = page.locator('.jp-NotebookPanel:visible');
  card = notebook
    .locator('.jp-Cell')
    .nth(1)
    .locator(`.jp-CvatTrain-jobOutputCard[data-job-id="${jobId}"]`);
  await expect(card).toHaveAttribute('data-phase', 'known');
  await expect(card.locator('.jp-CvatTrain-logLine').first()).toBeVisible();
  await expect(card).toHaveAttribute('data-state', 'succeeded', {
    timeout: 300_000
  });
  await expect(card.locator('.jp-CvatTrain-jobOutputMessage')).toBeVisible();
  await expect(card.locator('.jp-CvatTrain-cancel')).toBeDisabled();
  // the chart has its epochs
  await expect(card.locator('.jp-CvatTrain-chart .u-over')).toBeVisible();
  await expect(
    card.locator('.jp-CvatTrain-chart .jp-CvatTrain-empty')
  ).toHaveCount(0);
  await card.scrollIntoViewIfNeeded();
  await shot(page, 'notebook-succeeded-light');

  // Open job view: the job's tab, on the same store
  await card.locator('.jp-CvatTrain-openJob').click();
  await expect(
    page.locator(`.jp-CvatTrain-jobView[data-job-id="${jobId}"]`)
  ).toBeVisible();
  await expect(
    page.locator(`.jp-CvatTrain-jobView[data-job-id="${jobId}"]`)
  ).toHaveAttribute('data-state', 'succeeded');
  await page.locator('.lm-TabBar-tab', { hasText: NOTEBOOK }).first().click();

  await setTheme(page, 'JupyterLab Dark');
  try {
    await expect(card).toBeVisible();
    await card.scrollIntoViewIfNeeded();
    await shot(page, 'notebook-succeeded-dark');
  } finally {
    await setTheme(page, 'JupyterLab Light'); // the next spec files start light
  }
});

test('an untrusted notebook shows the static snapshot, not the live card', async ({
  page,
  request
}) => {
  // written through the contents API, not run here: its outputs are not signed
  const name = 'notebook-untrusted.ipynb';
  const reply = await request.put(`/api/contents/${name}`, {
    headers: { Authorization: `token ${TOKEN}` },
    data: {
      type: 'notebook',
      format: 'json',
      content: {
        ...NOTEBOOK_JSON,
        cells: [
          {
            cell_type: 'code',
            id: 'shown',
            metadata: {},
            execution_count: 1,
            source: ['job'],
            outputs: [
              {
                output_type: 'display_data',
                metadata: {},
                data: {
                  [MIME]: {
                    jobId: '20260101-000000-train-static',
                    name: 'a saved job',
                    kind: 'train'
                  },
                  'text/html':
                    '<div class="cvat-train-job"><b>a saved job</b> succeeded (static snapshot)</div>',
                  'text/plain': 'a saved job: succeeded'
                }
              }
            ]
          }
        ]
      }
    }
  });
  expect(reply.ok()).toBe(true);
  await page.goto(
    `/lab/workspaces/notebook-untrusted/tree/${name}?token=${TOKEN}`
  );
  await page.locator('#jupyterlab-splash').waitFor({ state: 'detached' });
  // its own workspace: only this notebook, the current tab
  await expect(
    page.locator('.jp-mod-current.lm-TabBar-tab', { hasText: name })
  ).toBeVisible();
  const notebook = page.locator('.jp-NotebookPanel:visible', {
    hasText: 'succeeded (static snapshot)'
  });
  await expect(notebook).toHaveCount(1);
  await expect(notebook.locator('.jp-OutputArea-output')).toHaveCount(1);
  await expect(notebook.locator('.jp-CvatTrain-jobOutputCard')).toHaveCount(0);
  await shot(page, 'notebook-untrusted-light');
});
