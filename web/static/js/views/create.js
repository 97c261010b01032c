// The new-run form, filled from a preset served by GET /presets/ (configs/*.yaml).
// What the user leaves empty is not sent, so the service's defaults apply. The service
// checks everything (the environment included) and its field errors appear next to the
// fields; the form does no validation of its own that could disagree with it.

import { get, post } from '../api.js';
import { ALGORITHMS, h } from '../dom.js';
import { clearErrors, field, formError, showErrors } from '../forms.js';

const NUMBER = { inputmode: 'decimal', autocomplete: 'off' };

// [name, label, hint, attrs]; the order of the form.
const RUN_FIELDS = [
  ['name', 'Name', 'Optional, to recognise the run.', { autocomplete: 'off', maxlength: 200 }],
  ['target_episode', 'Target episodes', 'The run ends after this many training episodes.', NUMBER],
  ['num_workers', 'Rollout workers', 'Processes collecting experience in parallel.', NUMBER],
  ['stop_reward', 'Stop at evaluation reward', 'Optional: complete early when a greedy evaluation reaches it.', NUMBER],
  ['seed', 'Seed', 'Optional; random when empty.', NUMBER],
];
const ENV_FIELDS = [
  ['env_id', 'Environment', 'A Gymnasium id, e.g. CartPole-v1.', { autocomplete: 'off' }],
];
const HYPER_FIELDS = [
  ['learning_rate', 'Learning rate', null, NUMBER],
  ['batch_size', 'Batch size', null, NUMBER],
  ['buffer_size', 'Replay buffer size', null, NUMBER],
  ['gamma', 'Discount (gamma)', null, NUMBER],
];
const JSON_FIELDS = {
  env_params: ['Environment parameters (JSON)', 'Passed to gym.make, e.g. {"max_episode_steps": 200}.'],
  hyperparameters: ['Algorithm hyperparameters (JSON)', "The algorithm's config fields, e.g. {\"hidden\": [64, 64]}."],
};
const NUMERIC = new Set(['target_episode', 'num_workers', 'stop_reward', 'seed', 'learning_rate',
  'batch_size', 'buffer_size', 'gamma']);

function inputs(list) {
  return list.map(([name, label, hint, attrs]) => field({ name, label, hint, attrs }));
}

function jsonField(name) {
  const [label, hint] = JSON_FIELDS[name];
  return field({ name, label, hint, control: 'textarea',
    attrs: { rows: 6, spellcheck: 'false', class: 'mono', autocomplete: 'off' } });
}

// A number when the text is one; otherwise the text itself, for the service to judge
// (and name the field).
function numberOrText(text) {
  const value = Number(text);
  return text.trim() !== '' && Number.isFinite(value) ? value : text;
}

function jsonOrText(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function requestBody(form, extras = {}) {
  const body = { ...extras };
  for (const el of form.elements) {
    if (!el.name || el.type === 'submit' || el.name === 'preset') continue;
    const text = el.value.trim();
    if (text === '') continue;
    if (NUMERIC.has(el.name)) body[el.name] = numberOrText(text);
    else if (el.name in JSON_FIELDS) body[el.name] = jsonOrText(text);
    else body[el.name] = text;
  }
  return body;
}

// Fill the form; returns the preset's values that have no field here (sent as they are).
function fill(form, values) {
  const names = new Set([...form.elements].map((el) => el.name).filter(Boolean));
  const extras = Object.fromEntries(Object.entries(values).filter(([key]) => !names.has(key)));
  for (const el of form.elements) {
    if (!el.name || el.name === 'preset' || el.type === 'submit') continue;
    const value = values[el.name];
    if (el.name in JSON_FIELDS) {
      el.value = value && Object.keys(value).length ? JSON.stringify(value, null, 2) : '';
    } else if (el.tagName === 'SELECT') {
      el.value = value ?? el.options[0].value;
    } else {
      el.value = value ?? '';
    }
  }
  return extras;
}

export async function renderCreate(view, { navigate }) {
  view.append(h('h1', {}, 'New training run'));
  const { presets } = await get('/presets/');
  const presetField = field({ name: 'preset', label: 'Preset', control: 'select',
    hint: 'Fills the form from a file in configs/; change anything before starting.',
    options: [['', 'No preset'], ...presets.map((p) => [p.name, `${p.name} — ${p.description}`])] });
  const algorithm = field({ name: 'algorithm', label: 'Algorithm', control: 'select',
    options: ALGORITHMS.map((a) => [a, a.toUpperCase()]) });
  const submit = h('button', { type: 'submit' }, 'Start training');
  const form = h('form', { class: 'card run-form', novalidate: true },
    formError(),
    presetField.wrapper,
    h('fieldset', {}, h('legend', {}, 'Run'), algorithm.wrapper,
      inputs(RUN_FIELDS).map((f) => f.wrapper)),
    h('fieldset', {}, h('legend', {}, 'Environment'),
      inputs(ENV_FIELDS).map((f) => f.wrapper), jsonField('env_params').wrapper),
    h('fieldset', {}, h('legend', {}, 'Hyperparameters'),
      inputs(HYPER_FIELDS).map((f) => f.wrapper), jsonField('hyperparameters').wrapper),
    h('div', { class: 'actions' }, submit));

  const byName = new Map(presets.map((p) => [p.name, p]));
  const extrasNote = h('p', { class: 'hint', hidden: true });
  presetField.wrapper.append(extrasNote);
  let extras = {};
  const choose = (name) => {
    clearErrors(form);
    extras = fill(form, byName.get(name)?.values ?? { algorithm: 'dqn', env_id: 'CartPole-v1' });
    const keys = Object.keys(extras);
    extrasNote.textContent = keys.length ? `Also sent as the preset has them: ${keys.join(', ')}.` : '';
    extrasNote.hidden = !keys.length;
  };
  presetField.control.addEventListener('change', () => choose(presetField.control.value));
  const initial = byName.has('dqn_cartpole') ? 'dqn_cartpole' : (presets[0]?.name ?? '');
  presetField.control.value = initial;
  choose(initial);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    submit.textContent = 'Starting…';
    try {
      const data = await post('/train/', requestBody(form, extras));
      navigate(`/models/${data.id}`);
    } catch (err) {
      showErrors(form, err);
    } finally {
      submit.disabled = false;
      submit.textContent = 'Start training';
    }
  });
  view.append(form);
}
