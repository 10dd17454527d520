import type { Job } from '../api';
import { failedImages } from '../annotate/AnnotateJobView';
import {
  annotatePrefillOf,
  checkMapping,
  fileRoute,
  initialMapping,
  mappingSpec,
  mergeMapping,
  trainedModels
} from '../annotate/mapping';

describe('the class mapping table', () => {
  it('prefills by case-insensitive name against an export, dropping the rest', () => {
    expect(
      initialMapping(['wbc', 'RBC', 'Platelets'], ['WBC', 'RBC', 'Other'])
    ).toEqual([
      { model: 'wbc', target: 'WBC' },
      { model: 'RBC', target: 'RBC' },
      { model: 'Platelets', target: '' }
    ]);
  });

  it('keeps the names without target labels (plain images)', () => {
    expect(initialMapping(['a', 'b'], null)).toEqual([
      { model: 'a', target: 'a' },
      { model: 'b', target: 'b' }
    ]);
  });

  it("keeps the user's choices when the labels change", () => {
    const rows = mergeMapping(
      [
        { model: 'a', target: 'x' },
        { model: 'gone', target: 'y' }
      ],
      ['a', 'b'],
      null
    );
    expect(rows).toEqual([
      { model: 'a', target: 'x' },
      { model: 'b', target: 'b' }
    ]);
  });

  it('flags a target the export does not have, lists dropped and unmapped labels', () => {
    const check = checkMapping(
      [
        { model: 'wbc', target: 'cell' },
        { model: 'rbc', target: 'cell' },
        { model: 'plt', target: '' },
        { model: 'x', target: 'Nope ' }
      ],
      ['Cell', 'Other']
    );
    expect(check.unknown).toEqual(['x → Nope']);
    expect(check.dropped).toEqual(['plt']);
    expect(check.unmappedTargets).toEqual(['Other']);
    expect(check.kept).toBe(3);
    // without an export any name is allowed
    expect(checkMapping([{ model: 'x', target: 'new' }], null).unknown).toEqual(
      []
    );
  });

  it('sends every row, many-to-one and drops included', () => {
    expect(
      mappingSpec([
        { model: 'wbc', target: ' cell ' },
        { model: 'rbc', target: 'cell' },
        { model: 'plt', target: '' }
      ])
    ).toEqual({ wbc: 'cell', rbc: 'cell', plt: '' });
  });
});

const job = (over: Partial<Job>): Job => ({
  id: 'j',
  kind: 'train',
  state: 'succeeded',
  message: '',
  progress: { done: 1, total: 1, unit: 'epochs' },
  created_at: null,
  started_at: null,
  ended_at: null,
  dir: 'cvat-train-runs/j',
  outputs: {},
  spec: { template: 'ssdlite', dataset: 'data/a.zip' },
  ...over
});

describe('the models and files of jobs', () => {
  it('offers the models of train jobs that succeeded, newest first', () => {
    const models = trainedModels([
      job({ id: '20240101-a', dir: 'runs/a', outputs: { map: 0.5 } }),
      job({ id: '20240102-b', dir: 'runs/b' }),
      job({ id: '20240103-c', state: 'failed' }),
      job({ id: '20240104-d', kind: 'annotate' })
    ]);
    expect(models.map(m => m.path)).toEqual([
      'runs/b/output/model',
      'runs/a/output/model'
    ]);
    expect(models[1].label).toContain('mAP 0.500');
  });

  it("routes a file through the job's output folder, the Contents API, or not at all", () => {
    const j = { id: 'j', dir: 'runs/j' };
    expect(fileRoute(j, 'runs/j/output/p/0.png')).toEqual({
      kind: 'job',
      rel: 'p/0.png'
    });
    expect(fileRoute(j, 'data/out.zip')).toEqual({
      kind: 'contents',
      path: 'data/out.zip'
    });
    expect(fileRoute(j, '/elsewhere/out.zip')).toBeNull();
  });

  it('lists failed images from the summary, else from the live warnings', () => {
    const failed = [{ image: 'a.jpg', stage: 'reading', error: 'bad' }];
    expect(failedImages({ failed }, [])).toEqual(failed);
    expect(
      failedImages(null, [
        { type: 'progress', done: 1 },
        {
          type: 'warning',
          kind: 'image_failed',
          image: 'b.jpg',
          stage: 'reading',
          message: 'b.jpg: reading failed'
        }
      ])
    ).toEqual([
      { image: 'b.jpg', stage: 'reading', error: 'b.jpg: reading failed' }
    ]);
  });
});

describe('Run again of an annotate job', () => {
  it("prefills the form from the job's spec, without its output", () => {
    expect(
      annotatePrefillOf({
        kind: 'annotate',
        images: 'data/batch',
        model: 'runs/j/output/model',
        output: 'runs/k/output/annotations.zip',
        threshold: 0.25,
        max_detections: 7,
        format: 'yolo',
        keep_existing: false,
        preview: 2,
        device: 'cpu',
        mapping: { circle: 'ring', triangle: '' }
      })
    ).toEqual({
      images: 'data/batch',
      model: 'runs/j/output/model',
      threshold: 0.25,
      maxDetections: 7,
      format: 'yolo',
      keepExisting: false,
      preview: 2,
      device: 'cpu',
      mapping: { circle: 'ring', triangle: '' }
    });
    expect(
      annotatePrefillOf({ model_dir: 'm', mapping: ['a=b', 'c=', 'junk'] })
    ).toEqual({ model: 'm', mapping: { a: 'b', c: '' } });
  });
});
