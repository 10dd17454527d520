/**
 * The notebook side of the frontend: a renderer for job outputs
 * (`application/vnd.jupyter-cvat-train.job+json`, what a `Job` object of the Python API
 * displays) that shows the live job card.
 *
 * Why a factory added by the main plugin rather than a `jupyterlab.mimeExtension`: a
 * MIME extension is activated apart from the other plugins and can reach no service, so
 * it would need its own job store and its own websocket per job. Added from the main
 * plugin (which asks for IRenderMimeRegistry), the renderer shares the app's one
 * JobsModel with the panel, the job tabs and the status bar: one stream per job
 * whatever number of outputs show it, and the same commands. Notebooks copy the app's
 * registry when they open, after the plugins activated, so every notebook has it.
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { JobOutputRenderer, type IJobOutputContext } from './JobOutput';
import { JOB_MIME_TYPE } from './payload';

export { JOB_MIME_TYPE, parseJobPayload } from './payload';
export type { IJobPayload } from './payload';
export { JobOutputRenderer, type IJobOutputContext } from './JobOutput';

/**
 * The factory's rank: below text/html's 50 (and markdown, images, text), so a trusted
 * output shows the live card, not the bundle's static HTML snapshot.
 */
export const JOB_OUTPUT_RANK = 20;

/**
 * Register the job output renderer with the app's rendermime registry.
 *
 * `safe: false`: the renderer makes authenticated calls and offers actions (Cancel), so
 * in an untrusted notebook JupyterLab picks the bundle's `text/html` or `text/plain`.
 */
export function registerJobOutput(
  registry: IRenderMimeRegistry,
  ctx: IJobOutputContext
): void {
  registry.addFactory(
    {
      safe: false,
      mimeTypes: [JOB_MIME_TYPE],
      defaultRank: JOB_OUTPUT_RANK,
      createRenderer: () => new JobOutputRenderer(ctx)
    },
    JOB_OUTPUT_RANK
  );
}
