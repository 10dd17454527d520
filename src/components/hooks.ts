/** React hooks over Lumino signals: re-render a component when a model changes. */
import type { ISignal } from '@lumino/signaling';
import { useEffect, useReducer, useState } from 'react';

/** Re-render whenever `signal` is emitted (for as long as the component is mounted). */
export function useSignal<T>(
  signal: ISignal<T, unknown> | null | undefined
): void {
  const [, bump] = useReducer((n: number) => n + 1, 0);
  useEffect(() => {
    if (!signal) {
      return;
    }
    const slot = () => bump();
    signal.connect(slot);
    return () => {
      signal.disconnect(slot);
    };
  }, [signal]);
}

/** The current time, refreshed every `intervalMs` (for durations that tick). */
export function useNow(intervalMs = 1000, active = true): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) {
      return;
    }
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs, active]);
  return now;
}
