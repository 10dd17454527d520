/**
 * The form preview of a template file (src/train/preview.tsx): a `POST templates/check`
 * reply as the preview shows it (the Train section's form, the commands, or the
 * FILE:LINE errors). Its rendering (FormComponent, ESM-only) is checked in the browser.
 */
import type { Template, TemplateCheck } from '../api';
import { templateToForm } from '../train/form';
import { previewState, shellJoin } from '../train/previewModel';

const TEMPLATE = {
  name: 'my-trainer',
  displayName: 'My trainer',
  task: 'detection',
  framework: 'pytorch',
  parameters: [
    { name: 'epochs', value: '2', displayName: 'Epochs', type: 'input.number' },
    { name: 'note', value: '', displayName: 'A note', type: 'input.text' }
  ]
} as unknown as Template;

describe('the template form preview', () => {
  it('quotes argv like a shell line', () => {
    expect(shellJoin(['python', '-u', 'a b.py', "it's", ''])).toBe(
      `python -u 'a b.py' 'it'"'"'s' ''`
    );
  });

  it('shows a good template as the Train form with its commands', () => {
    const reply: TemplateCheck = {
      path: 'drafts/t.yaml',
      ok: true,
      template: TEMPLATE,
      commands: {
        command: ['python', '-u', 'train.py', '--note', ''],
        annotate: null,
        shell: true
      }
    };
    const state = previewState(reply);
    expect(state.kind).toBe('ok');
    if (state.kind !== 'ok') {
      return;
    }
    expect(state.form).toEqual(templateToForm(TEMPLATE));
    expect(state.commands).toEqual([
      "command: python -u train.py --note '' (through /bin/sh, values quoted)"
    ]);
    const family = previewState({ ...reply, commands: {} });
    expect(family.kind === 'ok' && family.commands).toEqual([]);
  });

  it('shows a broken template as its FILE:LINE problems', () => {
    const state = previewState({
      path: 'drafts/b.yml',
      ok: false,
      errors: [
        "drafts/b.yml:3: dump_format 'x' is not a known format",
        'drafts/b.yml:4: {{parameters.n}} names no parameter'
      ]
    });
    expect(state).toEqual({
      kind: 'broken',
      lines: [
        {
          where: 'drafts/b.yml:3',
          error: "dump_format 'x' is not a known format"
        },
        {
          where: 'drafts/b.yml:4',
          error: '{{parameters.n}} names no parameter'
        }
      ]
    });
  });
});
