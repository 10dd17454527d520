/**
 * A job's log, windowed (only the lines in view are in the DOM, so long logs stay fast),
 * following the end while the user has not scrolled up; "Follow" brings it back.
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import React, { useEffect, useLayoutEffect, useRef, useState } from 'react';

const LINE_HEIGHT = 18; // px; matches .jp-CvatTrain-logLine in style/base.css
const OVERSCAN = 20;

export interface ILogViewProps {
  lines: readonly string[];
  /** Line number of lines[0] minus one (lines dropped from the front). */
  dropped: number;
  trans: TranslationBundle;
  /** A note under the log (e.g. reconnecting), or ''. */
  note?: string;
}

export function LogView(props: ILogViewProps): JSX.Element {
  const { lines, trans } = props;
  const ref = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  const [scroll, setScroll] = useState({ top: 0, height: 300 });
  const total = lines.length;

  useLayoutEffect(() => {
    const node = ref.current;
    if (node && follow) {
      node.scrollTop = node.scrollHeight;
      setScroll({ top: node.scrollTop, height: node.clientHeight });
    }
  }, [total, follow, lines[total - 1]]);

  useEffect(() => {
    const node = ref.current;
    if (!node || typeof ResizeObserver === 'undefined') {
      return;
    }
    const observer = new ResizeObserver(() =>
      setScroll({ top: node.scrollTop, height: node.clientHeight })
    );
    observer.observe(node);
    return () => observer.disconnect();
  }, []);

  const onScroll = () => {
    const node = ref.current;
    if (!node) {
      return;
    }
    const atEnd =
      node.scrollHeight - node.scrollTop - node.clientHeight < LINE_HEIGHT;
    if (follow !== atEnd) {
      setFollow(atEnd);
    }
    setScroll({ top: node.scrollTop, height: node.clientHeight });
  };

  const first = Math.max(0, Math.floor(scroll.top / LINE_HEIGHT) - OVERSCAN);
  const last = Math.min(
    total,
    Math.ceil((scroll.top + scroll.height) / LINE_HEIGHT) + OVERSCAN
  );
  const shown = [];
  for (let i = first; i < last; i++) {
    shown.push(
      <div
        key={i + props.dropped}
        className="jp-CvatTrain-logLine"
        style={{ top: i * LINE_HEIGHT }}
        data-line={i + props.dropped + 1}
      >
        {lines[i]}
      </div>
    );
  }
  return (
    <div className="jp-CvatTrain-log">
      <div className="jp-CvatTrain-logBar">
        <span>
          {props.dropped > 0
            ? trans.__(
                '%1 lines (the first %2 not kept here; the job folder has job.log)',
                total + props.dropped,
                props.dropped
              )
            : trans._n('%1 line', '%1 lines', total)}
        </span>
        {props.note ? (
          <span className="jp-CvatTrain-logNote">{props.note}</span>
        ) : null}
        <button
          className="jp-mod-styled jp-CvatTrain-follow"
          aria-pressed={follow}
          disabled={follow}
          title={
            follow
              ? trans.__('Following the end of the log')
              : trans.__('Scroll to the end and follow new lines')
          }
          onClick={() => setFollow(true)}
        >
          {follow ? trans.__('Following') : trans.__('Follow')}
        </button>
      </div>
      <div
        ref={ref}
        className="jp-CvatTrain-logScroll"
        role="log"
        aria-live="off"
        aria-label={trans.__('Job log')}
        tabIndex={0}
        onScroll={onScroll}
      >
        <div
          className="jp-CvatTrain-logSizer"
          style={{ height: total * LINE_HEIGHT }}
        >
          {shown}
        </div>
        {total === 0 ? (
          <div className="jp-CvatTrain-empty">{trans.__('No log yet.')}</div>
        ) : null}
      </div>
    </div>
  );
}
