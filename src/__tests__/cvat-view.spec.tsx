/**
 * The CVAT section's connection answer and the cvat jobs' part of the job view
 * (src/cvat/), rendered to static markup.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import type { Job } from '../api';
import { jobSubject } from '../components/JobBits';
import { CvatJobView, pulledExport } from '../cvat/CvatJobView';
import { ConnectionView } from '../cvat/ConnectionView';
import type { IPanelContext } from '../panel/context';

// react-dom ships no types here (no @types/react-dom): the one function used, typed
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { renderToStaticMarkup } = require('react-dom/server') as {
  renderToStaticMarkup: (element: React.ReactElement) => string;
};

const fill = (text: string, args: unknown[]) =>
  args.reduce<string>((t, a, i) => t.replace(`%${i + 1}`, String(a)), text);
const trans = {
  __: (text: string, ...args: unknown[]) => fill(text, args),
  _n: (one: string, many: string, n: number, ...args: unknown[]) =>
    fill(n === 1 ? one : many, [n, ...args])
} as unknown as TranslationBundle;
const ctx = { trans } as unknown as IPanelContext;

function job(fields: Partial<Job>): Job {
  return {
    id: 'j1',
    kind: 'cvat-pull',
    state: 'succeeded',
    dir: 'cvat-train-runs/j1',
    created_at: '2026-12-03T07:00:00Z',
    started_at: null,
    ended_at: null,
    message: '',
    progress: null,
    outputs: {},
    spec: { task_id: 7, output: 'data/t7.zip', format: 'coco' },
    ...fields
  } as Job;
}

describe('ConnectionView', () => {
  it('shows host, user and CVAT version when connected', () => {
    const html = renderToStaticMarkup(
      <ConnectionView
        connection={{
          ok: true,
          host: 'https://cvat.example',
          user: 'ann',
          source: 'environment',
          server_version: '2.30.0',
          message: 'connected'
        }}
        trans={trans}
      />
    );
    expect(html).toContain('jp-mod-ok');
    for (const text of ['https://cvat.example', 'ann', '2.30.0']) {
      expect(html).toContain(text);
    }
  });

  it('shows the reason and where the variables are read when not', () => {
    const html = renderToStaticMarkup(
      <ConnectionView
        connection={{
          ok: false,
          host: null,
          user: null,
          source: null,
          server_version: null,
          message: 'no CVAT host configured: set CVAT_HOST'
        }}
        trans={trans}
      />
    );
    expect(html).toContain('jp-mod-failed');
    expect(html).toContain('Not connected: no CVAT host configured');
    expect(html).toContain('environment of the Jupyter server');
  });
});

describe('CvatJobView', () => {
  it('offers Validate and Train on the export of a pull that succeeded', () => {
    const done = job({
      outputs: { validation: { images: 12, annotations: 30, errors: 0 } }
    });
    expect(pulledExport(done)).toBe('data/t7.zip');
    const html = renderToStaticMarkup(<CvatJobView job={done} ctx={ctx} />);
    expect(html).toContain('CVAT task 7 → data/t7.zip (coco)');
    expect(html).toContain('jp-CvatTrain-cvatValidate');
    expect(html).toMatch(/<button[^>]*jp-CvatTrain-cvatTrainOn"[^>]*>/);
    expect(html).not.toMatch(/jp-CvatTrain-cvatTrainOn"[^>]*disabled/);
  });

  it('disables Train on an export with validation errors', () => {
    const html = renderToStaticMarkup(
      <CvatJobView
        job={job({
          outputs: { validation: { images: 2, annotations: 0, errors: 3 } }
        })}
        ctx={ctx}
      />
    );
    expect(html).toMatch(
      /disabled=""[^>]*jp-CvatTrain-cvatTrainOn|jp-CvatTrain-cvatTrainOn"[^>]*disabled/
    );
  });

  it('offers nothing for a failed pull, and names where the variables are read', () => {
    const failed = job({
      state: 'failed',
      message: 'no CVAT host configured: set CVAT_HOST'
    });
    expect(pulledExport(failed)).toBe('');
    const html = renderToStaticMarkup(<CvatJobView job={failed} ctx={ctx} />);
    expect(html).not.toContain('jp-CvatTrain-cvatValidate');
    expect(html).toContain('environment of the Jupyter server');
  });

  it('titles a push and an auto-annotate job with their task', () => {
    const push = renderToStaticMarkup(
      <CvatJobView
        job={job({
          kind: 'cvat-push',
          spec: { task_id: 3, source: 'runs/a1', replace: true }
        })}
        ctx={ctx}
      />
    );
    expect(push).toContain('runs/a1 → CVAT task 3 (replace)');
    const aa = renderToStaticMarkup(
      <CvatJobView
        job={job({
          kind: 'cvat-auto-annotate',
          spec: { task_id: 4, model: 'runs/t/output/model', replace: false }
        })}
        ctx={ctx}
      />
    );
    expect(aa).toContain(
      'Auto-annotate CVAT task 4 with runs/t/output/model (add)'
    );
  });
});

describe('jobSubject of the cvat kinds', () => {
  it('names the task and the file', () => {
    expect(jobSubject(job({}))).toBe('task 7 → t7.zip');
    expect(
      jobSubject(
        job({ kind: 'cvat-push', spec: { task_id: 3, source: 'runs/a1/' } })
      )
    ).toBe('a1 → task 3');
    expect(
      jobSubject(job({ kind: 'cvat-auto-annotate', spec: { task_id: 4 } }))
    ).toBe('task 4');
  });
});
