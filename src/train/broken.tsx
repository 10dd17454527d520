/**
 * Broken templates in the Train form's catalog area: `GET templates` answers `broken`,
 * one message per template file the catalog skipped (`FILE:LINE: problem`, one line per
 * problem). They show as a collapsed "N broken templates" note listing where and what,
 * so a user who dropped a template file learns why it is not in the list.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import React from 'react';

/** One problem of a broken template: where (`FILE:LINE`, or `FILE`) and the error. */
export interface IBrokenLine {
  where: string;
  error: string;
}

const WHERE = /^(.+?\.ya?ml(?::\d+)?): (.*)$/i;

/** The problems in the server's `broken` messages, one per line, in order. */
export function brokenLines(messages: readonly string[]): IBrokenLine[] {
  const out: IBrokenLine[] = [];
  for (const message of messages) {
    for (const line of String(message).split('\n')) {
      if (!line.trim()) {
        continue;
      }
      const m = WHERE.exec(line);
      out.push(m ? { where: m[1], error: m[2] } : { where: '', error: line });
    }
  }
  return out;
}

/** `FILE:LINE` with the file's name only (the sidebar is narrow; the title has it all). */
export function shortWhere(where: string): string {
  return where.slice(where.lastIndexOf('/') + 1);
}

/** The collapsed note; nothing when no template is broken. */
export function BrokenTemplates(props: {
  broken: readonly string[];
  trans: TranslationBundle;
}): JSX.Element | null {
  const { broken, trans } = props;
  if (broken.length === 0) {
    return null;
  }
  return (
    <details className="jp-CvatTrain-broken">
      <summary>
        {trans._n('%1 broken template', '%1 broken templates', broken.length)}
      </summary>
      <ul>
        {brokenLines(broken).map((b, i) => (
          <li key={i}>
            {b.where ? (
              <code title={b.where}>{shortWhere(b.where)}</code>
            ) : null}
            {b.where ? ': ' : null}
            <span className="jp-CvatTrain-brokenError">{b.error}</span>
          </li>
        ))}
      </ul>
    </details>
  );
}
