/**
 * The validation report's findings as the Datasets section shows them: grouped by code,
 * errors first, each group with its count, and the few-annotations warning the panel adds
 * (Onepanel warned under 100 annotations).
 */
import type { Finding, ValidationReport } from '../api';

/** Annotations under which the report warns that training will be weak. */
export const FEW_ANNOTATIONS = 100;

/** The findings of one code. */
export interface IFindingGroup {
  code: string;
  severity: 'error' | 'warning';
  findings: Finding[];
}

/** Findings grouped by code: error groups first, then by size (largest first), then code. */
export function groupFindings(report: ValidationReport): IFindingGroup[] {
  const groups = new Map<string, IFindingGroup>();
  for (const finding of [
    ...(report.errors ?? []),
    ...(report.warnings ?? [])
  ]) {
    const key = `${finding.severity}\u0000${finding.code}`;
    let group = groups.get(key);
    if (!group) {
      group = { code: finding.code, severity: finding.severity, findings: [] };
      groups.set(key, group);
    }
    group.findings.push(finding);
  }
  return [...groups.values()].sort(
    (a, b) =>
      (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1) ||
      b.findings.length - a.findings.length ||
      a.code.localeCompare(b.code)
  );
}

/**
 * Why training on this export is refused (its error count), or null when it may be
 * trained on (warnings do not block).
 */
export function trainBlockedReason(report: ValidationReport): string | null {
  const errors = report.errors?.length ?? 0;
  if (report.ok && errors === 0) {
    return null;
  }
  return errors === 1
    ? 'The export has 1 error: fix it, then validate again.'
    : `The export has ${errors} errors: fix them, then validate again.`;
}

/** The few-annotations warning, or null when there are enough (or none can be read). */
export function fewAnnotationsWarning(report: ValidationReport): string | null {
  if (report.format === null) {
    return null;
  }
  if (report.annotations === 0) {
    return 'This export has no annotations: a model cannot learn from it.';
  }
  if (report.annotations < FEW_ANNOTATIONS) {
    return `Only ${report.annotations} annotations: with fewer than ${FEW_ANNOTATIONS}, the trained model will likely be poor. Annotate more images if you can.`;
  }
  return null;
}
