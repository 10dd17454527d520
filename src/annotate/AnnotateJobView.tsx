/**
 * What the job view shows of an annotate job, below its header and progress: the images
 * that could not be read (with the reason; live from the job's warnings, then from its
 * summary), the annotations per label, the preview pictures (boxes and polygons drawn
 * by the job), and the output zip with "Show in file browser" and "Download".
 *
 * Files come through `jobs/{id}/files/…` when they lie in the job's output folder, else
 * through the Contents API (inside the root); both with the token and XSRF header.
 */
import React, { useEffect, useState } from 'react';

import { LabelCounts } from '../components/LabelCounts';

import type { Job, JobEvent } from '../api';
import type { IPanelContext } from '../panel/context';
import { fetchJobFile, saveBlob } from './api';
import { fileRoute } from './mapping';

/** The annotate summary (annotate/pipeline.py), as much as the view reads of it. */
interface ISummary {
  output?: string;
  format?: string;
  partial?: boolean;
  images_total?: number;
  images_done?: number;
  images_failed?: number;
  failed?: { image: string; stage: string; error: string }[];
  counts?: Record<string, number>;
  annotations?: number;
  dropped_labels?: string[];
  mapping?: Record<string, string>;
  previews?: string[];
  seconds?: number;
  images_per_s?: number | null;
}

/** The images that failed: the summary's list, else the job's image_failed warnings. */
export function failedImages(
  summary: ISummary | null,
  events: readonly JobEvent[]
): { image: string; stage: string; error: string }[] {
  if (summary?.failed) {
    return summary.failed;
  }
  return events
    .filter(e => e.type === 'warning' && e.kind === 'image_failed')
    .map(e => ({
      image: String(e.image ?? ''),
      stage: String(e.stage ?? ''),
      error: String(e.message ?? '')
    }));
}

function summaryOf(job: Job, events: readonly JobEvent[]): ISummary | null {
  if (job.outputs && typeof job.outputs.images_total === 'number') {
    return job.outputs as ISummary;
  }
  // while it runs (or when outputs are missing): the last summary event, paths aside
  const last = [...events].reverse().find(e => e.type === 'summary');
  return last
    ? { ...(last as ISummary), previews: [], output: undefined }
    : null;
}

function Preview(props: {
  job: Job;
  path: string;
  ctx: IPanelContext;
}): JSX.Element {
  const { job, path, ctx } = props;
  const [url, setUrl] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    let objectUrl: string | null = null;
    fetchJobFile(job, path)
      .then(blob => {
        if (live) {
          objectUrl = URL.createObjectURL(blob);
          setUrl(objectUrl);
        }
      })
      .catch((error: Error) => live && setProblem(error.message));
    return () => {
      live = false;
      if (objectUrl) {
        URL.revokeObjectURL(objectUrl);
      }
    };
  }, [job.id, path]);
  const name = path.split('/').pop() ?? path;
  return (
    <figure className="jp-CvatTrain-preview">
      {url ? (
        <img
          src={url}
          alt={ctx.trans.__(
            'Preview of %1 with its predicted annotations',
            name
          )}
        />
      ) : (
        <div className="jp-CvatTrain-previewMissing">
          {problem ?? ctx.trans.__('Loading…')}
        </div>
      )}
      <figcaption>{name}</figcaption>
    </figure>
  );
}

/** The annotate part of a job view. */
export function AnnotateDetails(props: {
  job: Job;
  events: readonly JobEvent[];
  ctx: IPanelContext;
}): JSX.Element {
  const { job, events, ctx } = props;
  const { trans } = ctx;
  const [problem, setProblem] = useState<string | null>(null);
  const summary = summaryOf(job, events);
  const failed = failedImages(summary, events);
  const counts = Object.entries(summary?.counts ?? {});
  const output = summary?.output ?? null;
  const reachable = output ? fileRoute(job, output) !== null : false;
  const download = async () => {
    if (!output) {
      return;
    }
    setProblem(null);
    try {
      saveBlob(await fetchJobFile(job, output), output.split('/').pop() ?? '');
    } catch (error) {
      setProblem((error as Error).message);
    }
  };
  return (
    <section
      className="jp-CvatTrain-annotateResult"
      aria-label={trans.__('Annotations')}
    >
      {output ? (
        <div className="jp-CvatTrain-output">
          <h3>{trans.__('Output')}</h3>
          <code className="jp-CvatTrain-outputPath">{output}</code>
          {summary?.partial ? (
            <div className="jp-CvatTrain-warningNote">
              {trans.__(
                'Partial: %1 of %2 images were done before the job was cancelled.',
                summary.images_done ?? 0,
                summary.images_total ?? 0
              )}
            </div>
          ) : null}
          <div className="jp-CvatTrain-actions">
            <button
              className="jp-mod-styled jp-CvatTrain-showOutput"
              disabled={!reachable}
              title={
                reachable
                  ? trans.__('Show the zip in the file browser')
                  : trans.__('The zip is outside the server root')
              }
              onClick={() => ctx.showInBrowser(output)}
            >
              {trans.__('Show in file browser')}
            </button>
            <button
              className="jp-mod-styled jp-CvatTrain-download"
              disabled={!reachable}
              title={trans.__('Download the annotations zip')}
              onClick={() => void download()}
            >
              {trans.__('Download')}
            </button>
          </div>
          {problem ? (
            <div className="jp-CvatTrain-error" role="alert">
              {problem}
            </div>
          ) : null}
        </div>
      ) : null}
      {summary ? (
        <p className="jp-CvatTrain-annotateTotals">
          {trans.__(
            '%1 annotations on %2 of %3 images (%4 could not be read)',
            summary.annotations ?? 0,
            summary.images_done ?? 0,
            summary.images_total ?? 0,
            summary.images_failed ?? failed.length
          )}
          {summary.images_per_s
            ? ' · ' + trans.__('%1 images/s', summary.images_per_s.toFixed(1))
            : ''}
        </p>
      ) : null}
      {failed.length > 0 ? (
        <table className="jp-CvatTrain-table jp-CvatTrain-failedImages">
          <caption>
            {trans._n(
              '%1 image could not be annotated (the others were)',
              '%1 images could not be annotated (the others were)',
              failed.length
            )}
          </caption>
          <thead>
            <tr>
              <th scope="col">{trans.__('Image')}</th>
              <th scope="col">{trans.__('Stage')}</th>
              <th scope="col">{trans.__('Reason')}</th>
            </tr>
          </thead>
          <tbody>
            {failed.map(f => (
              <tr key={f.image + f.stage}>
                <td>{f.image}</td>
                <td>{f.stage}</td>
                <td>{f.error}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <LabelCounts
        counts={counts}
        className="jp-CvatTrain-labelCounts"
        trans={trans}
      />
      {summary?.dropped_labels && summary.dropped_labels.length > 0 ? (
        <div className="jp-CvatTrain-dim">
          {trans.__(
            'Model labels dropped: %1',
            summary.dropped_labels.join(', ')
          )}
        </div>
      ) : null}
      {summary?.previews && summary.previews.length > 0 ? (
        <div className="jp-CvatTrain-previews">
          <h3>{trans.__('Previews')}</h3>
          <div className="jp-CvatTrain-previewGrid">
            {summary.previews.map(p => (
              <Preview key={p} job={job} path={p} ctx={ctx} />
            ))}
          </div>
        </div>
      ) : null}
    </section>
  );
}
