/**
 * The per-epoch chart of a training job: loss (left axis) and mAP@[.5:.95] / mAP@.5
 * (right axis, 0..1), drawn with uPlot in the theme's colours (read from the `--jp-*`
 * variables, and again when the theme changes).
 */
import type { TranslationBundle } from '@jupyterlab/translation';
import React, { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';

import type { EpochMetrics } from '../jobs/metrics';

function cssVar(name: string, fallback: string): string {
  const value = getComputedStyle(document.body).getPropertyValue(name).trim();
  return value || fallback;
}

/** A counter that changes when JupyterLab's theme does (body's data-jp-theme-name). */
function useThemeVersion(): number {
  const [version, setVersion] = useState(0);
  useEffect(() => {
    const observer = new MutationObserver(() => setVersion(v => v + 1));
    observer.observe(document.body, {
      attributes: true,
      attributeFilter: ['data-jp-theme-name', 'data-jp-theme-light']
    });
    return () => observer.disconnect();
  }, []);
  return version;
}

export function MetricsChart(props: {
  series: readonly EpochMetrics[];
  trans: TranslationBundle;
}): JSX.Element {
  const { series, trans } = props;
  const target = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const theme = useThemeVersion();
  const [width, setWidth] = useState(480);

  useEffect(() => {
    const node = target.current;
    if (!node || typeof ResizeObserver === 'undefined') {
      return;
    }
    const observer = new ResizeObserver(() =>
      setWidth(Math.max(240, node.clientWidth))
    );
    observer.observe(node);
    return () => observer.disconnect();
  }, []);

  const data: uPlot.AlignedData = [
    series.map(m => m.epoch),
    series.map(m => m.loss),
    series.map(m => m.map),
    series.map(m => m.map50)
  ];

  // (Re)build on a theme change or a new width; otherwise only the data is set.
  useEffect(() => {
    const node = target.current;
    if (!node) {
      return;
    }
    const text = cssVar('--jp-ui-font-color1', '#222');
    const grid = cssVar('--jp-border-color2', '#ddd');
    const font = `11px ${cssVar('--jp-ui-font-family', 'sans-serif')}`;
    const axis = {
      stroke: text,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid },
      font
    };
    const options: uPlot.Options = {
      width,
      height: 220,
      scales: { x: { time: false }, loss: {}, map: { range: [0, 1] } },
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: trans.__('Epoch') },
        {
          label: trans.__('Loss'),
          scale: 'loss',
          stroke: cssVar('--jp-warn-color1', '#f57c00'),
          width: 2,
          points: { show: true }
        },
        {
          label: trans.__('mAP@[.5:.95]'),
          scale: 'map',
          stroke: cssVar('--jp-brand-color1', '#1976d2'),
          width: 2,
          points: { show: true }
        },
        {
          label: trans.__('mAP@.5'),
          scale: 'map',
          stroke: cssVar('--jp-success-color1', '#388e3c'),
          width: 2,
          dash: [6, 4],
          points: { show: true }
        }
      ],
      axes: [
        {
          ...axis,
          label: trans.__('Epoch'),
          incrs: [1, 2, 5, 10, 20, 50, 100]
        },
        { ...axis, scale: 'loss', label: trans.__('Loss') },
        { ...axis, scale: 'map', side: 1, label: 'mAP', grid: { show: false } }
      ]
    };
    plot.current?.destroy();
    plot.current = new uPlot(options, data, node);
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
  }, [theme, width]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [series]);

  return (
    <div className="jp-CvatTrain-chart">
      <div
        ref={target}
        className="jp-CvatTrain-chartCanvas"
        role="img"
        aria-label={trans.__('Loss and mAP per epoch')}
      />
      {series.length === 0 ? (
        <div className="jp-CvatTrain-empty">
          {trans.__('No epoch has ended yet.')}
        </div>
      ) : null}
    </div>
  );
}
