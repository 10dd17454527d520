/**
 * The Train catalog's note on broken templates (src/train/broken.tsx): the server's
 * `broken` messages split into FILE:LINE and error, and the collapsed note rendered.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

import { BrokenTemplates, brokenLines } from '../train/broken';

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

const BROKEN = [
  "/root/cvat-train-templates/b.yaml:4: {{parameters.nope}} names no parameter; declared: none\n/root/cvat-train-templates/b.yaml:2: dump_format 'x' is not a known format",
  "/root/cvat-train-templates/shadow.yml: template name 'ssdlite320-mobilenet-v3' is taken; rename it",
  'something without a file'
];

describe('broken templates', () => {
  it('splits each message into its lines, FILE:LINE and the error', () => {
    expect(brokenLines(BROKEN)).toEqual([
      {
        where: '/root/cvat-train-templates/b.yaml:4',
        error: '{{parameters.nope}} names no parameter; declared: none'
      },
      {
        where: '/root/cvat-train-templates/b.yaml:2',
        error: "dump_format 'x' is not a known format"
      },
      {
        where: '/root/cvat-train-templates/shadow.yml',
        error: "template name 'ssdlite320-mobilenet-v3' is taken; rename it"
      },
      { where: '', error: 'something without a file' }
    ]);
  });

  it('renders a collapsed note counting the files, nothing when none', () => {
    const html = renderToStaticMarkup(
      <BrokenTemplates broken={BROKEN} trans={trans} />
    );
    expect(html).toContain('<details class="jp-CvatTrain-broken">');
    expect(html).not.toContain('open');
    expect(html).toContain('<summary>3 broken templates</summary>');
    expect(html).toContain(
      '<code title="/root/cvat-train-templates/b.yaml:4">b.yaml:4</code>'
    );
    expect(html.match(/<li>/g)).toHaveLength(4);
    expect(
      renderToStaticMarkup(
        <BrokenTemplates broken={[BROKEN[1]]} trans={trans} />
      )
    ).toContain('<summary>1 broken template</summary>');
    expect(
      renderToStaticMarkup(<BrokenTemplates broken={[]} trans={trans} />)
    ).toBe('');
  });
});
