// Labelled form fields with a place for their error, and the mapping of the API's
// field errors ("target_episode: must be ..." / data.errors) onto those places.

import { ApiError, describe } from './api.js';
import { h, uid } from './dom.js';

// One labelled control. `control` is 'input' (default), 'select' or 'textarea'.
export function field({ name, label, control = 'input', hint, options, attrs = {} }) {
  const id = uid(`f-${name}`);
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  let el;
  if (control === 'select') {
    el = h('select', { id, name, ...attrs },
      options.map(([value, text]) => h('option', { value }, text)));
  } else {
    el = h(control, { id, name, ...attrs });
  }
  el.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
  const wrapper = h('div', { class: ['field', `field-${name}`] },
    h('label', { for: id }, label),
    el,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, hidden: true }));
  return { wrapper, control: el };
}

export function clearErrors(form) {
  for (const p of form.querySelectorAll('.field-error')) {
    p.hidden = true;
    p.textContent = '';
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const top = form.querySelector('.form-error');
  if (top) {
    top.hidden = true;
    top.textContent = '';
  }
}

function showAt(form, name, text) {
  const control = form.elements.namedItem(name);
  if (!(control instanceof Element)) return null;
  const p = control.closest('.field')?.querySelector('.field-error');
  if (!p) return null;
  p.textContent = p.textContent ? `${p.textContent} ${text}` : text;
  p.hidden = false;
  control.setAttribute('aria-invalid', 'true');
  return control;
}

// Put each error of `error` next to its field (the first part of a dotted path names
// the control: hyperparameters.tau -> hyperparameters); what fits no field goes in the
// form's .form-error box. Focuses the first field at fault.
export function showErrors(form, error) {
  clearErrors(form);
  const leftover = [];
  let first = null;
  const fieldErrors = error instanceof ApiError ? error.fieldErrors : [];
  for (const { field: path, message } of fieldErrors) {
    const [name, ...rest] = String(path).split('.');
    const text = rest.length ? `${rest.join('.')}: ${message}` : message;
    const control = showAt(form, name, text);
    if (control) first ??= control;
    else leftover.push(`${path}: ${message}`);
  }
  const top = form.querySelector('.form-error');
  if (top && (leftover.length || !fieldErrors.length)) {
    const whole = error instanceof ApiError && error.status < 500 ? error.message : describe(error);
    top.textContent = leftover.length ? leftover.join('; ') : whole;
    top.hidden = false;
  }
  (first ?? top)?.focus?.();
}

export function formError() {
  return h('p', { class: 'form-error error', role: 'alert', tabindex: '-1', hidden: true });
}
