import type { Finding, ValidationReport } from '../api';
import {
  fewAnnotationsWarning,
  groupFindings,
  trainBlockedReason
} from '../datasets/report';

const finding = (
  code: string,
  severity: 'error' | 'warning',
  item: string
): Finding => ({
  code,
  severity,
  message: `${code} in ${item}`,
  item,
  hint: 'fix it'
});

const report = (over: Partial<ValidationReport>): ValidationReport => ({
  path: 'x.zip',
  format: 'coco',
  images: 10,
  annotations: 500,
  labels: {},
  subsets: {},
  errors: [],
  warnings: [],
  box_size: {},
  ok: true,
  ...over
});

describe('the validation report', () => {
  it('groups findings by code, errors first, larger groups first', () => {
    const groups = groupFindings(
      report({
        ok: false,
        errors: [
          finding('missing-image', 'error', 'a'),
          finding('bad-box', 'error', 'b'),
          finding('missing-image', 'error', 'c')
        ],
        warnings: [
          finding('degenerate-box', 'warning', 'd'),
          finding('degenerate-box', 'warning', 'e'),
          finding('degenerate-box', 'warning', 'f')
        ]
      })
    );
    expect(groups.map(g => [g.severity, g.code, g.findings.length])).toEqual([
      ['error', 'missing-image', 2],
      ['error', 'bad-box', 1],
      ['warning', 'degenerate-box', 3]
    ]);
  });

  it('blocks training on errors only, and warns under 100 annotations', () => {
    expect(trainBlockedReason(report({}))).toBeNull();
    expect(
      trainBlockedReason(report({ warnings: [finding('w', 'warning', 'x')] }))
    ).toBeNull();
    expect(
      trainBlockedReason(
        report({ ok: false, errors: [finding('e', 'error', 'x')] })
      )
    ).toMatch(/1 error/);
    expect(fewAnnotationsWarning(report({ annotations: 99 }))).toMatch(
      /Only 99 annotations/
    );
    expect(fewAnnotationsWarning(report({ annotations: 0 }))).toMatch(
      /no annotations/
    );
    expect(fewAnnotationsWarning(report({ annotations: 100 }))).toBeNull();
    expect(
      fewAnnotationsWarning(report({ format: null, annotations: 0 }))
    ).toBeNull();
  });
});
