/**
 * What the sidebar's sections share: the export being looked at (Datasets → Train), its
 * last report, and a prefill for the Train form (Run again, Fine-tune, Resume).
 */
import { ISignal, Signal } from '@lumino/signaling';

import { validateDataset, type TrainSpec, type ValidationReport } from '../api';

/** A Train form prefill: the spec to show, and which action asked for it. */
export interface ITrainPrefill {
  spec: Partial<TrainSpec>;
  reason: 'rerun' | 'finetune' | 'resume' | 'dataset' | 'draft';
  /** A serial, so that the same prefill twice still reaches the form. */
  serial: number;
}

export class PanelState {
  /** Emitted when any field changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get datasetPath(): string {
    return this._datasetPath;
  }
  set datasetPath(path: string) {
    if (path !== this._datasetPath) {
      this._datasetPath = path;
      this._problem = '';
      this._changed.emit();
    }
  }

  /** The report of the last validation, or null. */
  get report(): ValidationReport | null {
    return this._report;
  }
  set report(report: ValidationReport | null) {
    this._report = report;
    this._changed.emit();
  }

  /** Whether a validation is under way. */
  get validating(): boolean {
    return this._validating;
  }

  /** Why the last validation gave no report ('' when it did). */
  get problem(): string {
    return this._problem;
  }

  /**
   * Validate the export at `datasetPath` (POST datasets/validate): `report` or `problem`
   * is set when it answers.
   */
  async validate(): Promise<void> {
    const path = this._datasetPath.trim();
    if (!path) {
      this._problem =
        'Give the path of a CVAT export (a zip or a folder) under the server root.';
      this._changed.emit();
      return;
    }
    this._validating = true;
    this._problem = '';
    this._report = null;
    this._changed.emit();
    try {
      this._report = await validateDataset({ path });
    } catch (error) {
      this._problem = (error as Error)?.message || String(error);
    } finally {
      this._validating = false;
      this._changed.emit();
    }
  }

  get prefill(): ITrainPrefill | null {
    return this._prefill;
  }

  /** Ask the Train form to show `spec`. */
  prefillTrain(
    spec: Partial<TrainSpec>,
    reason: ITrainPrefill['reason']
  ): void {
    this._prefill = { spec, reason, serial: (this._prefill?.serial ?? 0) + 1 };
    this._changed.emit();
  }

  private _datasetPath = '';
  private _report: ValidationReport | null = null;
  private _validating = false;
  private _problem = '';
  private _prefill: ITrainPrefill | null = null;
  private _changed = new Signal<this, void>(this);
}
