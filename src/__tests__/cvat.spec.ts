import { ApiRequestError } from '../api';
import type { JobsModel } from '../jobs/model';
import {
  autoAnnotateSpec,
  CvatModel,
  defaultPullOutput,
  fieldOfError,
  parseTaskId,
  PULL_FORMATS,
  pullSpec,
  pushSpec
} from '../cvat/model';

/** An API refusal as requestAPI throws it (status and the server's message). */
function refusal(status: number, message: string): ApiRequestError {
  const response = { status, statusText: '' } as Response;
  return new ApiRequestError(response, message, {
    message,
    code: status,
    details: null
  });
}

describe('parseTaskId', () => {
  it('takes a whole number >= 1 and says what is wrong otherwise', () => {
    expect(parseTaskId(' 42 ')).toBe(42);
    expect(parseTaskId('')).toMatch(/Give the CVAT task id/);
    expect(parseTaskId('0')).toMatch(/"0" is not a task id/);
    expect(parseTaskId('1.5')).toMatch(/"1.5" is not a task id/);
    expect(parseTaskId('-3')).toMatch(/not a task id/);
    expect(parseTaskId('abc')).toMatch(/not a task id/);
  });
});

describe('pullSpec', () => {
  it('builds a cvat-pull spec, the output defaulting to cvat-task-<id>.zip', () => {
    expect(
      pullSpec({ taskId: '7', format: 'coco', output: '', overwrite: false })
    ).toEqual({
      spec: {
        kind: 'cvat-pull',
        task_id: 7,
        output: defaultPullOutput(7),
        format: 'coco',
        include_images: true,
        overwrite: false
      }
    });
    expect(
      pullSpec({
        taskId: '7',
        format: 'cvat',
        output: ' data/t7.zip ',
        overwrite: true
      }).spec
    ).toMatchObject({ output: 'data/t7.zip', overwrite: true });
  });

  it('names each wrong field', () => {
    const built = pullSpec({
      taskId: 'x',
      format: 'nope',
      output: 'data/t7.tar',
      overwrite: false
    });
    expect(built.spec).toBeUndefined();
    expect(Object.keys(built.errors ?? {}).sort()).toEqual([
      'format',
      'output',
      'task_id'
    ]);
    expect(built.errors?.output).toMatch(/must name a \.zip/);
  });

  it('offers exactly the formats the validation reads', () => {
    expect(PULL_FORMATS.map(f => f.id).sort()).toEqual([
      'coco',
      'cvat',
      'labelme',
      'mot',
      'tfrecord',
      'voc',
      'yolo'
    ]);
  });
});

describe('pushSpec', () => {
  it('builds a cvat-push spec with replace or append', () => {
    expect(
      pushSpec({ taskId: '3', source: 'runs/j1', replace: true }).spec
    ).toEqual({
      kind: 'cvat-push',
      task_id: 3,
      source: 'runs/j1',
      replace: true
    });
  });

  it('asks for the source and the task', () => {
    const built = pushSpec({ taskId: '', source: ' ', replace: false });
    expect(built.errors?.task_id).toMatch(/task id/);
    expect(built.errors?.source).toMatch(/annotate job/);
  });
});

describe('autoAnnotateSpec', () => {
  it('builds a cvat-auto-annotate spec; an empty threshold is the model default', () => {
    expect(
      autoAnnotateSpec({
        taskId: '9',
        model: 'runs/t/output/model',
        threshold: '',
        replace: false
      }).spec
    ).toEqual({
      kind: 'cvat-auto-annotate',
      task_id: 9,
      model: 'runs/t/output/model',
      threshold: null,
      replace: false
    });
    expect(
      autoAnnotateSpec({
        taskId: '9',
        model: 'm',
        threshold: '0.25',
        replace: true
      }).spec
    ).toMatchObject({ threshold: 0.25, replace: true });
  });

  it('refuses a threshold outside [0, 1] and a missing model', () => {
    for (const t of ['1.5', '-0.1', 'high']) {
      const built = autoAnnotateSpec({
        taskId: '9',
        model: '',
        threshold: t,
        replace: false
      });
      expect(built.errors?.threshold).toMatch(/from 0 to 1/);
      expect(built.errors?.model).toMatch(/trained model/);
    }
  });
});

describe('fieldOfError', () => {
  it('puts a server refusal at the field its message names', () => {
    expect(
      fieldOfError(refusal(400, "model: 'x' is not a trained model folder"), [
        'task_id',
        'model',
        'threshold'
      ])
    ).toEqual({
      field: 'model',
      message: "model: 'x' is not a trained model folder"
    });
    expect(
      fieldOfError(refusal(404, 'source: no such file'), ['task_id', 'source'])
        .field
    ).toBe('source');
  });

  it('puts a 409 of a pull at its output, and anything else at the form', () => {
    expect(
      fieldOfError(refusal(409, "'t.zip' exists"), ['task_id', 'output']).field
    ).toBe('output');
    expect(
      fieldOfError(refusal(409, 'busy'), ['task_id', 'source']).field
    ).toBe('');
    expect(fieldOfError(new Error('network down'), ['task_id']).field).toBe('');
    expect(fieldOfError(refusal(400, 'other: x'), ['task_id']).field).toBe('');
  });
});

describe('CvatModel forms', () => {
  // the jobs store is not reached: every start below stops at the form's own checks
  const model = () => new CvatModel({} as JobsModel);

  it('shows the pull form first, one form at a time, and reopens push when prefilled', () => {
    const cvat = model();
    expect(cvat.focus).toBe('');
    cvat.toggled('push', true);
    expect(cvat.focus).toBe('push');
    cvat.toggled('pull', false); // pull was folded by the change: no effect
    expect(cvat.focus).toBe('push');
    cvat.toggled('push', false);
    expect(cvat.focus).toBe('none');
    cvat.prefillPush('cvat-train-runs/a1');
    expect(cvat.focus).toBe('push');
    expect(cvat.push.source).toBe('cvat-train-runs/a1');
  });

  it('keeps the field errors of a start that the form refused, until the form changes', async () => {
    const cvat = model();
    cvat.setPull({ taskId: 'x' });
    expect(await cvat.startPull()).toBeNull();
    expect(cvat.errors('pull').task_id).toMatch(/not a task id/);
    expect(cvat.errors('push')).toEqual({});
    cvat.setPull({ taskId: '1' });
    expect(cvat.errors('pull')).toEqual({});
    expect(await cvat.startAutoAnnotate()).toBeNull();
    expect(Object.keys(cvat.errors('autoAnnotate')).sort()).toEqual([
      'model',
      'task_id'
    ]);
  });
});
