/**
 * Where a job runs, for the job list and the job view: a job whose spec says
 * `"backend": "ray"` ran as a Ray job on the server's cluster; a job without it ran
 * where the server sent it (this machine unless CvatTrainApp.job_backend says ray).
 */
import type { Job } from '../api';

/** 'ray' for a job whose spec names the Ray backend, else null (nothing to show). */
export function jobBackend(job: Pick<Job, 'spec'>): 'ray' | null {
  return job.spec?.backend === 'ray' ? 'ray' : null;
}
