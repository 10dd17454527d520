/**
 * What the job view draws from a training job's events (events.jsonl): the per-epoch
 * `metrics` events (loss, mAP@[.5:.95], mAP@.5, AP per label) and the best epoch.
 */
import type { JobEvent } from '../api';

/** One epoch's figures; null where the event did not carry a number. */
export interface EpochMetrics {
  epoch: number;
  epochs: number | null;
  loss: number | null;
  map: number | null;
  map50: number | null;
  perLabel: Record<string, number | null>;
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** The EpochMetrics of a `metrics` event, or null for any other or malformed event. */
export function epochOf(event: JobEvent): EpochMetrics | null {
  if (event.type !== 'metrics') {
    return null;
  }
  const epoch = num(event.epoch);
  if (epoch === null) {
    return null;
  }
  const perLabel: Record<string, number | null> = {};
  const raw = event.per_label;
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    for (const [label, ap] of Object.entries(raw as Record<string, unknown>)) {
      perLabel[label] = num(ap);
    }
  }
  return {
    epoch,
    epochs: num(event.epochs),
    loss: num(event.loss),
    map: num(event.map),
    map50: num(event.map_50),
    perLabel
  };
}

/** The per-epoch series of `events`, by epoch; a repeated epoch keeps its last figures. */
export function epochSeries(events: readonly JobEvent[]): EpochMetrics[] {
  const byEpoch = new Map<number, EpochMetrics>();
  for (const event of events) {
    const m = epochOf(event);
    if (m) {
      byEpoch.set(m.epoch, m);
    }
  }
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}

/** The epoch with the highest mAP@[.5:.95] (the first of equals), or null. */
export function bestEpoch(
  series: readonly EpochMetrics[]
): EpochMetrics | null {
  let best: EpochMetrics | null = null;
  for (const m of series) {
    if (
      m.map !== null &&
      (best === null || best.map === null || m.map > best.map)
    ) {
      best = m;
    }
  }
  return best;
}
