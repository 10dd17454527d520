/**
 * A template's parameters → the JSON Schema form and back; where POST jobs' errors go.
 */
import type { Template } from '../api';
import {
  fieldOfError,
  formToParameters,
  parameterErrorField,
  parametersToFormData,
  templateToForm
} from '../train/form';

const template: Template = {
  name: 't',
  family: 'ssdlite',
  defaults: {},
  hyperparameter_keys: {},
  parameters: [
    {
      name: 'epochs',
      value: '',
      displayName: 'Epochs',
      type: 'input.number',
      visibility: 'public',
      hint: 'Passes <b>over</b> data'
    },
    {
      name: 'size',
      value: '320',
      type: 'input.number',
      visibility: 'protected'
    },
    {
      name: 'mode',
      value: 'fast',
      type: 'input.radio',
      options: [
        { name: 'Fast', value: 'fast' },
        { name: 'Good', value: 'good' }
      ]
    },
    {
      name: 'backbone',
      value: 'r50',
      type: 'select.select',
      required: true,
      options: [{ name: 'ResNet-50', value: 'r50' }, { value: 'r101' }]
    },
    {
      name: 'hyperparameters',
      value: 'batch_size: 16\nlr: 0.01',
      type: 'textarea.textarea',
      visibility: 'public'
    },
    { name: 'secret', value: 'x', type: 'input.text', visibility: 'private' },
    { name: 'inner', value: 'y', type: 'input.text', visibility: 'internal' },
    // a type this panel does not know (a user's template): shown as text
    { name: 'note', value: 'hello', type: 'color.picker' as 'input.text' },
    { name: 'ratio', value: 'auto', type: 'input.number' }
  ]
};

describe('templateToForm', () => {
  const form = templateToForm(template);
  const props = form.schema.properties;

  it('shows public and protected parameters in order, hides internal and private ones', () => {
    expect(form.fields).toEqual([
      'epochs',
      'size',
      'mode',
      'backbone',
      'hyperparameters',
      'note',
      'ratio'
    ]);
    expect(props.secret).toBeUndefined();
    expect(props.inner).toBeUndefined();
  });

  it('maps each type to a schema and a widget', () => {
    expect(props.epochs).toEqual({
      type: 'number',
      title: 'Epochs',
      description: 'Passes <b>over</b> data'
    });
    expect(props.size).toMatchObject({
      type: 'number',
      default: 320,
      readOnly: true
    });
    expect(form.uiSchema.size['ui:readonly']).toBe(true);
    expect(props.mode.oneOf).toEqual([
      { const: 'fast', title: 'Fast' },
      { const: 'good', title: 'Good' }
    ]);
    expect(form.uiSchema.mode['ui:widget']).toBe('radio');
    expect(props.backbone.oneOf).toEqual([
      { const: 'r50', title: 'ResNet-50' },
      { const: 'r101', title: 'r101' }
    ]);
    expect(form.schema.required).toEqual(['backbone']);
    expect(form.uiSchema.hyperparameters['ui:widget']).toBe('textarea');
    expect(props.note).toEqual({
      type: 'string',
      title: 'note',
      default: 'hello'
    }); // unknown type: text
    expect(props.ratio).toMatchObject({ type: 'string', default: 'auto' }); // not a number: text
  });

  it('fills the defaults (an empty number has none) and keeps hints as plain text', () => {
    expect(form.formData).toEqual({
      size: 320,
      mode: 'fast',
      backbone: 'r50',
      hyperparameters: 'batch_size: 16\nlr: 0.01',
      note: 'hello',
      ratio: 'auto'
    });
    expect(props.epochs.description).toBe('Passes <b>over</b> data');
  });

  it('sends the shown fields as text, leaving empty ones to the template', () => {
    expect(
      formToParameters(form, {
        ...form.formData,
        epochs: 3,
        note: '  ',
        secret: 'z'
      })
    ).toEqual({
      epochs: '3',
      size: '320',
      mode: 'fast',
      backbone: 'r50',
      hyperparameters: 'batch_size: 16\nlr: 0.01',
      ratio: 'auto'
    });
  });
});

describe('errors at their field', () => {
  const form = templateToForm(template);
  it('reads the field from the message prefix', () => {
    expect(
      fieldOfError("dataset: 'x' does not exist", ['dataset', 'checkpoint'])
    ).toBe('dataset');
    expect(
      fieldOfError('checkpoint: missing.pt does not exist', [
        'dataset',
        'checkpoint'
      ])
    ).toBe('checkpoint');
    expect(fieldOfError('the server is busy', ['dataset'])).toBeNull();
    expect(fieldOfError('kind: unknown', ['dataset'])).toBeNull();
  });
  it('puts a parameters error on the field it names, else on the hyperparameters text', () => {
    expect(
      parameterErrorField('parameters: epochs must be a whole number', form)
    ).toBe('epochs');
    expect(
      parameterErrorField(
        "parameters: unknown key 'foo'; valid keys: batch_size, lr",
        form
      )
    ).toBe('hyperparameters');
  });
});

describe('a stored spec back into the form (Run again)', () => {
  const form = templateToForm(template);
  it('reads the list the server stores: texts to the textarea, the object to the fields', () => {
    const values = parametersToFormData(form, [
      'batch_size: 4',
      'lr: 0.1',
      { epochs: '3', mode: 'good', secret: 'no' }
    ]);
    expect(values).toMatchObject({
      hyperparameters: 'batch_size: 4\nlr: 0.1',
      epochs: 3,
      mode: 'good',
      size: 320
    });
    expect(values.secret).toBeUndefined();
  });
  it('reads a plain object or one text, and ignores what is neither', () => {
    expect(parametersToFormData(form, { epochs: '' }).epochs).toBe('');
    expect(parametersToFormData(form, 'a: 1').hyperparameters).toBe('a: 1');
    expect(parametersToFormData(form, 42)).toEqual(form.formData);
    expect(parametersToFormData(form, null)).toEqual(form.formData);
  });
});
