/**
 * After a sync down ends, the file browser's listing is refreshed when the folder it
 * shows and the sync's workspace folder are the same, or one contains the other (the
 * listing may then show new or replaced files). The browser polls on its own too; this
 * makes the files appear as the job ends.
 */
import type { Job } from '../api';

/** `path` without leading and trailing slashes ('' for the server root). */
function trimSlashes(path: string): string {
  return path.replace(/^\/+|\/+$/g, '');
}

/**
 * Whether the end of `job` should refresh a file browser showing `browserPath` (a
 * folder relative to the server root, '' for the root): a sync down that is not a
 * preview, whose workspace (relative to the root, as the API gives it) is the folder
 * shown, inside it, or above it. A workspace outside the root (an absolute path) or a
 * job without its spec never refreshes.
 */
export function syncDownTouches(job: Job, browserPath: string): boolean {
  const spec = job.spec;
  if (job.kind !== 'sync' || !spec || spec.direction !== 'down') {
    return false;
  }
  if (spec.dry_run === true || typeof spec.workspace !== 'string') {
    return false;
  }
  if (spec.workspace.startsWith('/')) {
    return false;
  }
  const workspace = trimSlashes(spec.workspace);
  const shown = trimSlashes(browserPath.replace(/^[^/:]*:/, '')); // drive prefix
  if (shown === '' || workspace === '' || workspace === '.') {
    return true;
  }
  return (
    shown === workspace ||
    shown.startsWith(workspace + '/') ||
    workspace.startsWith(shown + '/')
  );
}
