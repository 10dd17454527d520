/**
 * A custom training template (the user's own code) in the panel: dropped into the test
 * server root's cvat-train-templates/ before the lab opens, it shows in the Train
 * catalog beside the built-in ones, its form renders from its parameters, and a run
 * from the form succeeds with the user's script's lines in the job view. Screenshots
 * under ui-tests/screenshots/custom-template-*.png (light and dark).
 */
import { expect, test } from '@playwright/test';
import { execFileSync } from 'child_process';
import { mkdirSync, rmSync, writeFileSync } from 'fs';
import * as path from 'path';

import {
  openLab,
  openPanel,
  openSidebar,
  PYTHON,
  REPO_ROOT,
  ROOT,
  setTheme,
  shot
} from './helpers';

const NAME = 'ui-custom-baseline';
// a broken user template: listed under the catalog as a collapsed note, with its lines
const BROKEN_FILE = 'ui-broken-template.yaml';
// a template file being edited in the root folder: its form preview
const DRAFT_DIR = 'ui-template-drafts';
const DRAFT = 'ui-preview-template.yaml';
const draftText = (dumpFormat: string) =>
  [
    'name: ui-preview',
    'displayName: Draft trainer (form preview)',
    'task: detection',
    'framework: python',
    `code: {path: ${JSON.stringify(path.join(REPO_ROOT, 'examples', 'custom-template'))}}`,
    `dump_format: ${dumpFormat}`,
    'command: python -u train.py --data {{inputs.dataset}} --output {{output}} --epochs {{parameters.epochs}}',
    'annotate: python -u annotate.py --images {{inputs.images}} --model {{inputs.model}} --output {{output}}/annotations.json',
    'parameters:',
    '  - {name: epochs, value: "2", displayName: Epochs, type: input.number, hint: Passes over the data}',
    '  - {name: size, value: "m", displayName: Size, type: select.select, options: [{name: small, value: s}, {name: medium, value: m}]}',
    ''
  ].join('\n');

test.describe.configure({ mode: 'serial' });

test.beforeAll(() => {
  execFileSync(PYTHON, [
    path.join(__dirname, '..', 'scripts', 'make_data.py'),
    ROOT
  ]);
  const folder = path.join(ROOT, 'cvat-train-templates');
  mkdirSync(folder, { recursive: true });
  const code = path.join(REPO_ROOT, 'examples', 'custom-template');
  writeFileSync(
    path.join(folder, `${NAME}.yaml`),
    [
      `name: ${NAME}`,
      'displayName: My own trainer (custom code)',
      'description: The example baseline script, run as a train job.',
      'task: detection',
      'framework: python',
      `code: {path: ${JSON.stringify(code)}}`,
      'dump_format: cvat_coco',
      'command: python -u train.py --data {{inputs.dataset}} --output {{output}} --epochs {{parameters.epochs}} --note {{parameters.note}}',
      'parameters:',
      '  - {name: epochs, value: "2", displayName: Epochs, type: input.number}',
      '  - {name: note, value: "", displayName: A note, type: input.text}',
      'outputs: {model: model.json}',
      ''
    ].join('\n')
  );
  writeFileSync(
    path.join(folder, BROKEN_FILE),
    [
      'name: ui-broken',
      'code: {path: .}',
      'dump_format: cvat_xml9',
      'command: python x.py {{parameters.nope}}',
      ''
    ].join('\n')
  );
});

test.afterAll(() => {
  // the server root is shared with the other spec files: leave no broken template behind
  rmSync(path.join(ROOT, 'cvat-train-templates', BROKEN_FILE), { force: true });
  rmSync(path.join(ROOT, DRAFT_DIR), { force: true, recursive: true });
});

test('a template file being edited has a form preview that follows its saves', async ({
  page
}) => {
  test.setTimeout(120_000);
  mkdirSync(path.join(ROOT, DRAFT_DIR), { recursive: true });
  writeFileSync(path.join(ROOT, DRAFT_DIR, DRAFT), draftText('cvat_coco'));
  const errors: string[] = [];
  page.on('pageerror', e => errors.push(e.message));
  await openLab(page);
  await openSidebar(page, 'filebrowser');
  // a folder of its own: a listing that changes under the pointer selects another item
  const listing = page.locator('.jp-DirListing-content');
  await listing
    .locator('.jp-DirListing-itemText', {
      hasText: new RegExp(`^${DRAFT_DIR}$`)
    })
    .dblclick();
  const item = listing
    .locator('.jp-DirListing-itemText', {
      hasText: new RegExp(`^${DRAFT.replace(/\./g, '\\.')}$`)
    })
    .first();
  // opened in the editor first: the preview then opens beside it
  await item.dblclick();
  const editor = page.locator('.jp-FileEditor .cm-content').first();
  await expect(editor).toBeVisible();
  await expect(
    listing.locator('.jp-DirListing-item.jp-mod-selected')
  ).toContainText(DRAFT);
  await item.click({ button: 'right' });
  const entry = page.locator('.lm-Menu-itemLabel', {
    hasText: /^Preview training form$/
  });
  await expect(entry).toBeVisible();
  await entry.click();
  const preview = page.locator(
    `.jp-CvatTrain-formPreview[data-path="${DRAFT_DIR}/${DRAFT}"]`
  );
  const form = preview.locator(
    '.jp-CvatTrain-form[data-template="ui-preview"]'
  );
  await expect(form).toBeVisible();
  await expect(form.locator('input[id$="epochs"]')).toHaveValue('2');
  await expect(form).toContainText('Passes over the data');
  await expect(preview.locator('.jp-CvatTrain-previewCommands')).toContainText(
    'command: python -u train.py'
  );
  await expect(preview.locator('.jp-CvatTrain-previewCommands')).toContainText(
    'annotate: python -u annotate.py'
  );
  await shot(page, 'custom-template-preview-light');

  // edit the file in the editor and save: the preview shows the problems, then the form again
  await expect(editor).toBeVisible();
  const saveAs = async (text: string) => {
    await editor.click();
    await page.keyboard.press('Control+a');
    await page.keyboard.insertText(text);
    await page.keyboard.press('Control+s');
  };
  await saveAs(draftText('cvat_xml9'));
  const problems = preview.locator('.jp-CvatTrain-previewErrors');
  await expect(problems).toContainText(`${DRAFT}:6`);
  await expect(problems).toContainText(
    "dump_format 'cvat_xml9' is not a known format"
  );
  await expect(form).toHaveCount(0);
  await shot(page, 'custom-template-preview-errors-light');
  await setTheme(page, 'JupyterLab Dark');
  await shot(page, 'custom-template-preview-errors-dark');
  await saveAs(draftText('cvat_coco'));
  await expect(form).toBeVisible();
  await expect(problems).toHaveCount(0);
  await shot(page, 'custom-template-preview-dark');
  await setTheme(page, 'JupyterLab Light');
  expect(errors).toEqual([]);
});

test('broken templates show under the catalog with file:line and error', async ({
  page
}) => {
  const errors: string[] = [];
  page.on('pageerror', e => errors.push(e.message));
  await openLab(page);
  const panel = await openPanel(page);
  await panel.locator('#jp-CvatTrain-datasetPath').fill('data/sample.zip');
  await panel.locator('.jp-CvatTrain-validate').click();
  await expect(panel.locator('.jp-CvatTrain-report')).toBeVisible();
  await panel.locator('.jp-CvatTrain-trainOn').click();
  const note = panel.locator('.jp-CvatTrain-broken');
  await expect(note).toBeVisible();
  await expect(note.locator('summary')).toHaveText(/^\d+ broken templates?$/);
  const item = note.locator('li', { hasText: `${BROKEN_FILE}:3` });
  await expect(item).toBeHidden(); // collapsed
  await note.locator('summary').click();
  await expect(item).toBeVisible();
  await expect(item).toContainText(
    "dump_format 'cvat_xml9' is not a known format"
  );
  await expect(
    note.locator('li', { hasText: `${BROKEN_FILE}:4` })
  ).toContainText('{{parameters.nope}} names no parameter');
  // the broken template is not in the catalog, the others are
  await expect(
    panel.locator('.jp-CvatTrain-template[data-template="ui-broken"]')
  ).toHaveCount(0);
  await expect(
    panel.locator(`.jp-CvatTrain-template[data-template="${NAME}"]`)
  ).toBeVisible();
  await note.scrollIntoViewIfNeeded();
  await shot(page, 'custom-template-broken-light');
  await setTheme(page, 'JupyterLab Dark');
  await note.scrollIntoViewIfNeeded();
  await shot(page, 'custom-template-broken-dark');
  await setTheme(page, 'JupyterLab Light');
  expect(errors).toEqual([]);
});

test('a user template is in the catalog, its form renders and it trains', async ({
  page
}) => {
  test.setTimeout(180_000);
  const errors: string[] = [];
  page.on('pageerror', e => errors.push(e.message));
  await openLab(page);
  const panel = await openPanel(page);
  await panel.locator('#jp-CvatTrain-datasetPath').fill('data/sample.zip');
  await panel.locator('.jp-CvatTrain-validate').click();
  await expect(panel.locator('.jp-CvatTrain-report')).toBeVisible();
  await panel.locator('.jp-CvatTrain-trainOn').click();
  const entry = panel.locator(
    `.jp-CvatTrain-template[data-template="${NAME}"]`
  );
  await expect(entry).toContainText('My own trainer (custom code)');
  await expect(entry).toContainText('python');
  await entry.click();
  const form = panel.locator(`.jp-CvatTrain-form[data-template="${NAME}"]`);
  await expect(form).toBeVisible();
  await expect(form.locator('input[id$="epochs"]')).toHaveValue('2');
  await form.locator('input[id$="note"]').fill('1; rm -rf ~');
  await form.scrollIntoViewIfNeeded();
  await shot(page, 'custom-template-form-light');
  await panel.locator('.jp-CvatTrain-start').click();
  const view = page.locator('.jp-CvatTrain-jobView[data-job-id]');
  await expect(view).toBeVisible();
  await expect(view).toHaveAttribute('data-state', 'succeeded', {
    timeout: 120_000
  });
  await expect(view).toContainText('wrote model.json');
  // no epoch chart, and no fine-tune / auto-annotate from the user's own model format
  await expect(view.locator('.jp-CvatTrain-metrics')).toHaveCount(0);
  await expect(view.locator('.jp-CvatTrain-finetune')).toBeDisabled();
  await expect(view.locator('.jp-CvatTrain-autoAnnotate')).toBeDisabled();
  await shot(page, 'custom-template-job-light');
  await setTheme(page, 'JupyterLab Dark');
  await form.scrollIntoViewIfNeeded();
  await shot(page, 'custom-template-form-dark');
  await setTheme(page, 'JupyterLab Light');
  expect(errors).toEqual([]);
});
