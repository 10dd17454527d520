/**
 * A template's parameters (Onepanel's schema: `{name, value, displayName, type, hint,
 * options, visibility, required}`) as a JSON Schema form for `FormComponent`, and the
 * form's values back as the `parameters` of `POST jobs`.
 *
 * Types: input.text → string; input.number → number (text when the default is not a
 * number); input.radio → string with a radio widget; select.select → string with
 * `oneOf` consts; textarea.textarea → string with a textarea widget; any other type →
 * string. Visibility: public → editable, protected → read-only, internal and private →
 * not in the form (the server uses the template's value). `displayName` → title, `hint`
 * → description (plain text: rjsf renders it as a text node), `value` → default.
 */
import type { Template, TemplateParameter } from '../api';

/** A JSON Schema (the subset this module writes). */
export interface IFieldSchema {
  type: 'string' | 'number';
  title: string;
  description?: string;
  default?: string | number;
  readOnly?: boolean;
  oneOf?: { const: string; title: string }[];
}

/** The form of one template. */
export interface ITemplateForm {
  schema: {
    type: 'object';
    required: string[];
    properties: Record<string, IFieldSchema>;
  };
  uiSchema: Record<string, Record<string, unknown>>;
  /** The defaults, by field name. */
  formData: Record<string, string | number>;
  /** The names of the fields shown, in the template's order. */
  fields: string[];
}

/** The `{value, title}` choices of a select/radio parameter (Onepanel: `{name, value}`). */
export function parameterOptions(
  parameter: TemplateParameter
): { const: string; title: string }[] {
  const options = Array.isArray(parameter.options) ? parameter.options : [];
  const out: { const: string; title: string }[] = [];
  for (const option of options) {
    const value = option?.value ?? option?.name;
    if (value === undefined || value === null) {
      continue;
    }
    const text = String(value);
    out.push({ const: text, title: String(option?.name ?? text) });
  }
  return out;
}

function isShown(parameter: TemplateParameter): boolean {
  const visibility = parameter.visibility ?? 'public';
  return visibility === 'public' || visibility === 'protected';
}

function numberOrNull(value: string): number | null {
  if (value.trim() === '') {
    return null;
  }
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

/** The form of `template`: schema, uiSchema and defaults (see the module's doc). */
export function templateToForm(template: Template): ITemplateForm {
  const form: ITemplateForm = {
    schema: { type: 'object', required: [], properties: {} },
    uiSchema: {},
    formData: {},
    fields: []
  };
  for (const parameter of template.parameters ?? []) {
    if (
      !parameter ||
      typeof parameter.name !== 'string' ||
      !isShown(parameter)
    ) {
      continue;
    }
    const name = parameter.name;
    const value =
      parameter.value === null || parameter.value === undefined
        ? ''
        : String(parameter.value);
    const field: IFieldSchema = {
      type: 'string',
      title: parameter.displayName || name
    };
    if (typeof parameter.hint === 'string' && parameter.hint) {
      field.description = parameter.hint;
    }
    const ui: Record<string, unknown> = {};
    switch (parameter.type) {
      case 'input.number': {
        const n = numberOrNull(value);
        if (n !== null || value.trim() === '') {
          field.type = 'number';
          if (n !== null) {
            field.default = n;
          }
        } else {
          field.default = value;
        }
        break;
      }
      case 'select.select':
      case 'input.radio': {
        const options = parameterOptions(parameter);
        if (options.length > 0) {
          field.oneOf = options;
        }
        if (parameter.type === 'input.radio') {
          ui['ui:widget'] = 'radio';
        }
        field.default = value;
        break;
      }
      case 'textarea.textarea':
        ui['ui:widget'] = 'textarea';
        ui['ui:options'] = {
          rows: Math.min(14, Math.max(3, value.split('\n').length + 1))
        };
        field.default = value;
        break;
      default:
        field.default = value;
    }
    if (parameter.visibility === 'protected') {
      field.readOnly = true;
      ui['ui:readonly'] = true;
    }
    if (parameter.required) {
      form.schema.required.push(name);
    }
    form.schema.properties[name] = field;
    if (Object.keys(ui).length > 0) {
      form.uiSchema[name] = ui;
    }
    if (field.default !== undefined) {
      form.formData[name] = field.default;
    }
    form.fields.push(name);
  }
  return form;
}

/**
 * The `parameters` of `POST jobs` from the form's values: the shown fields, as text (the
 * server parses them as the CLI does); empty fields left out (the template's default).
 */
export function formToParameters(
  form: ITemplateForm,
  formData: Record<string, unknown>
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of form.fields) {
    const value = formData[name];
    if (value === undefined || value === null) {
      continue;
    }
    const text = typeof value === 'string' ? value : String(value);
    if (text.trim() !== '') {
      out[name] = text;
    }
  }
  return out;
}

/**
 * Where an error message of `POST jobs` belongs: the server's messages start with the
 * field they concern (`dataset: ...`, `parameters: ...`, `checkpoint: ...`). Returns
 * that field when it is one of `fields`, else null (shown above the form).
 */
export function fieldOfError(
  message: string,
  fields: readonly string[]
): string | null {
  const match = /^([A-Za-z_][A-Za-z0-9_]*)\s*:/.exec(message);
  if (!match) {
    return null;
  }
  return fields.includes(match[1]) ? match[1] : null;
}

/**
 * The form field a `parameters: ...` error of `POST jobs` is about: a shown field the
 * message names as a word (e.g. `epochs`), else the first textarea (the hyperparameters
 * text, where unknown keys and wrong types come from), else null.
 */
export function parameterErrorField(
  message: string,
  form: ITemplateForm
): string | null {
  const textareas = form.fields.filter(
    name => form.uiSchema[name]?.['ui:widget'] === 'textarea'
  );
  for (const name of form.fields) {
    if (
      !textareas.includes(name) &&
      new RegExp(`\\b${escapeRegExp(name)}\\b`).test(message)
    ) {
      return name;
    }
  }
  return textareas[0] ?? null;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The form values of a job's stored `parameters` (job.json), for Run again / Fine-tune:
 * an object {field: value}; or, as the server stores a form with a textarea, a list of
 * hyperparameter texts followed by an object of the other fields; or one text. Texts go
 * to the first textarea field; values of fields the form does not show are left out.
 */
export function parametersToFormData(
  form: ITemplateForm,
  parameters: unknown
): Record<string, string | number> {
  const values: Record<string, string | number> = { ...form.formData };
  const textarea = form.fields.find(
    name => form.uiSchema[name]?.['ui:widget'] === 'textarea'
  );
  const texts: string[] = [];
  const take = (object: Record<string, unknown>) => {
    for (const [key, value] of Object.entries(object)) {
      if (!form.fields.includes(key) || value === null || value === undefined) {
        continue;
      }
      const n = Number(value);
      values[key] =
        form.schema.properties[key].type === 'number' &&
        String(value).trim() !== '' &&
        Number.isFinite(n)
          ? n
          : String(value);
    }
  };
  for (const item of Array.isArray(parameters) ? parameters : [parameters]) {
    if (typeof item === 'string') {
      texts.push(item);
    } else if (item && typeof item === 'object' && !Array.isArray(item)) {
      take(item as Record<string, unknown>);
    }
  }
  if (textarea && texts.length > 0) {
    values[textarea] = texts.join('\n');
  }
  return values;
}
