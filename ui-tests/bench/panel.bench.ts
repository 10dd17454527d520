/**
 * Panel figures with 200 finished jobs and one running (a real training job):
 * - page load → the job list shown (200 rows), median of 3 loads; also from JupyterLab's
 *   splash gone, and to the first GET jobs reply (the rest is JupyterLab showing the panel);
 * - a line appended to the running job's job.log → shown in the job view, p50/p95 of 40;
 * - the Jupyter server's CPU while 5 tabs follow the running job, % of one core.
 * Prints one JSON line `BENCH {...}`. Goals: list < 1 s, log p95 < 300 ms, CPU < 10 %.
 */
import { expect, test, type Page } from '@playwright/test';
import { appendFileSync, readdirSync, readFileSync } from 'fs';
import * as path from 'path';

import { openLab, openPanel, ROOT, TOKEN } from '../tests/helpers';

const HEADERS = { Authorization: `token ${TOKEN}` };

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** utime + stime of a process, in seconds (Linux /proc). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf-8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks (100/s on Linux)
}

function serverPid(): number {
  const runtime = path.join(ROOT, 'runtime');
  const file = readdirSync(runtime).find(f => /^jpserver-\d+\.json$/.test(f));
  return Number(/jpserver-(\d+)\.json/.exec(file ?? '')?.[1]);
}

async function openJob(page: Page, jobId: string) {
  const panel = await openPanel(page);
  await panel
    .locator(`.jp-CvatTrain-job[data-job-id="${jobId}"] .jp-CvatTrain-jobOpen`)
    .click();
  const view = page.locator(`.jp-CvatTrain-jobView[data-job-id="${jobId}"]`);
  await expect(view).toBeVisible();
  return view;
}

test('panel benchmark', async ({ page, context, request }) => {
  const onlyList = !!process.env.BENCH_ONLY_LIST;
  const results: Record<string, number> = {};

  // 1. load → list (the running job comes later: 200 finished ones here, then 201)
  const loads: number[] = [];
  const afterSplash: number[] = [];
  const jobsReplies: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    let firstReply = 0;
    const onReply = (r: { url(): string }) => {
      if (!firstReply && /cvat-train\/api\/jobs(\?|$)/.test(r.url())) {
        firstReply = Date.now();
      }
    };
    page.on('response', onReply);
    await openLab(page);
    const t1 = Date.now();
    const panel = await openPanel(page);
    await expect(panel.locator('.jp-CvatTrain-job')).toHaveCount(200, {
      timeout: 60_000
    });
    const t2 = Date.now();
    loads.push(t2 - t0);
    afterSplash.push(t2 - t1);
    jobsReplies.push(firstReply - t1);
    page.off('response', onReply);
  }
  results.first_jobs_reply_after_lab_ready_ms = quantile(jobsReplies, 0.5);
  results.list_after_page_load_ms = quantile(loads, 0.5);
  results.list_after_lab_ready_ms = quantile(afterSplash, 0.5);

  if (onlyList) {
    process.stdout.write('BENCH ' + JSON.stringify(results) + '\n');
    return;
  }
  // 2. one running job: a long training run
  const reply = await request.post('/cvat-train/api/jobs', {
    headers: HEADERS,
    data: {
      kind: 'train',
      template: 'ssdlite320-mobilenet-v3',
      dataset: 'data/sample.zip',
      parameters: {
        epochs: '1000',
        hyperparameters:
          'batch_size: 4\nimage_size: 96\npretrained: false\nnum_workers: 0'
      }
    }
  });
  expect(reply.status()).toBe(201);
  const job = await reply.json();
  const logPath = path.join(ROOT, job.dir, 'job.log');
  await expect
    .poll(
      async () =>
        (
          await (
            await request.get(`/cvat-train/api/jobs/${job.id}`, {
              headers: HEADERS
            })
          ).json()
        ).state,
      {
        timeout: 120_000
      }
    )
    .toBe('running');

  const view = await openJob(page, job.id);
  const latencies: number[] = [];
  for (let i = 0; i < 40; i++) {
    const marker = `bench-line-${i}-${Date.now()}`;
    const t0 = Date.now();
    appendFileSync(logPath, marker + '\n');
    await page.waitForFunction(
      m =>
        Array.from(document.querySelectorAll('.jp-CvatTrain-logLine')).some(
          n => n.textContent === m
        ),
      marker,
      { polling: 'raf', timeout: 30_000 }
    );
    latencies.push(Date.now() - t0);
    await page.waitForTimeout(50);
  }
  results.log_line_p50_ms = quantile(latencies, 0.5);
  results.log_line_p95_ms = quantile(latencies, 0.95);
  await expect(view).toBeVisible();

  // 3. five tabs follow the running job; the server's CPU over 30 s
  const pages = [page];
  for (let i = 0; i < 4; i++) {
    const p = await context.newPage();
    await openLab(p);
    await openJob(p, job.id);
    pages.push(p);
  }
  const pid = serverPid();
  const c0 = cpuSeconds(pid);
  const w0 = Date.now();
  await page.waitForTimeout(30_000);
  results.server_cpu_percent_5_tabs =
    Math.round(((cpuSeconds(pid) - c0) / ((Date.now() - w0) / 1000)) * 1000) /
    10;

  await request.delete(`/cvat-train/api/jobs/${job.id}`, { headers: HEADERS });
  process.stdout.write('BENCH ' + JSON.stringify(results) + '\n');
});
