/**
 * The model of the template form preview (src/train/preview.tsx): a `POST
 * templates/check` reply as what the tab shows. No widgets here, so jest can load it.
 */
import type { Template, TemplateCheck } from '../api';
import { brokenLines, type IBrokenLine } from './broken';
import { templateToForm, type ITemplateForm } from './form';

/** What the preview shows. */
export type PreviewState =
  | { kind: 'loading' }
  | {
      kind: 'ok';
      template: Template;
      form: ITemplateForm;
      /** "command: …", "annotate: …" lines of a custom template (none for a family's). */
      commands: string[];
    }
  | { kind: 'broken'; lines: IBrokenLine[] }
  | { kind: 'error'; message: string };

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./<>-]+$/;

/** ``argv`` as one line a POSIX shell would split back into it (like Python's shlex.join). */
export function shellJoin(argv: readonly string[]): string {
  return argv
    .map(word =>
      word && SAFE_WORD.test(word) ? word : `'${word.replace(/'/g, "'\"'\"'")}'`
    )
    .join(' ');
}

/** The preview of a `POST templates/check` reply. */
export function previewState(reply: TemplateCheck): PreviewState {
  if (!reply.ok || !reply.template) {
    const errors = reply.errors ?? [];
    return {
      kind: 'broken',
      lines: brokenLines(
        errors.length ? errors : [`${reply.path}: not a usable template`]
      )
    };
  }
  const c = reply.commands ?? {};
  const commands: string[] = [];
  if (c.command) {
    commands.push(
      `command: ${shellJoin(c.command)}` +
        (c.shell ? ' (through /bin/sh, values quoted)' : '')
    );
  }
  if (c.annotate) {
    commands.push(`annotate: ${shellJoin(c.annotate)}`);
  }
  return {
    kind: 'ok',
    template: reply.template,
    form: templateToForm(reply.template),
    commands
  };
}
